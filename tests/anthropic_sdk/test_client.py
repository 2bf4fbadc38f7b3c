"""``anygate.Anthropic`` / ``anygate.AsyncAnthropic``: the official SDK's own usage, served in-process.

Each test is code written for the official client (stream helpers, ``parse``, the tool runner, beta
messages, models, count_tokens, its exceptions), run against the built-in mock model and against fake
OpenAI-shaped and Anthropic upstreams on loopback; the upstream tests check what the upstream received
too.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pydantic
import pytest
from anthropic import beta_tool

import anygate
from anygate.protocol.errors import STATUS_TO_ERROR_TYPE
from anygate.providers.mock import MockProvider
from tests.conftest import UPSTREAM_KEY
from tests.fakes import anthropic_answers
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.providers.openai_support import chunk

HELLO = [{"role": "user", "content": "Hello"}]
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


@pytest.fixture
def upstream(shared_upstream: FakeUpstream) -> FakeUpstream:
    shared_upstream.reset()
    return shared_upstream


@pytest.fixture
def mock_client() -> Iterator[anygate.Anthropic]:
    with anygate.Anthropic() as client:
        yield client


def _config(upstream: FakeUpstream, kind: str) -> dict[str, Any]:
    """One model, ``up``, over the fake upstream (OpenAI- or Anthropic-shaped); no gateway retries."""
    model = "openai/gpt-4o" if kind == "openai" else "anthropic/claude-upstream"
    api_base = f"{upstream.url}/v1" if kind == "openai" else upstream.url
    return {
        "model_list": [
            {
                "model_name": "up",
                "litellm_params": {"model": model, "api_base": api_base, "api_key": UPSTREAM_KEY},
            },
            {"model_name": "local", "litellm_params": {"model": "mock/local"}},
        ],
        "router_settings": {"num_retries": 0},
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the mock model -----------------------------------------------------------------------------------


def test_create_and_stream_helpers_on_the_mock(mock_client: anygate.Anthropic) -> None:
    message = mock_client.messages.create(
        model="mock/demo", max_tokens=100, messages=[{"role": "user", "content": "Tell me a joke"}]
    )
    assert isinstance(message, anthropic.types.Message) and message.model == "mock/demo"
    assert "atoms" in message.content[0].text  # type: ignore[union-attr]
    with mock_client.messages.stream(model="mock/demo", max_tokens=100, messages=HELLO) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 3 and "".join(texts) == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 1


async def test_async_stream_helpers_on_the_mock() -> None:
    async with anygate.AsyncAnthropic() as client:
        async with client.messages.stream(model="mock/demo", max_tokens=100, messages=HELLO) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(texts) == final.content[0].text  # type: ignore[union-attr]
        events = [event.type async for event in await client.messages.create(
            model="mock/demo", max_tokens=100, messages=HELLO, stream=True
        )]  # fmt: skip
        assert events[0] == "message_start" and events[-1] == "message_stop"


class City(pydantic.BaseModel):
    name: str
    population: int


class Trip(pydantic.BaseModel):
    traveller: str
    start: City
    stops: list[City]
    nights: int


def test_parse_with_a_pydantic_model_on_the_mock(mock_client: anygate.Anthropic) -> None:
    parsed = mock_client.messages.parse(
        model="mock/demo",
        max_tokens=500,
        messages=[{"role": "user", "content": "Plan a trip"}],
        output_format=Trip,
    )
    assert isinstance(parsed.parsed_output, Trip)
    assert isinstance(parsed.parsed_output.start, City) and parsed.parsed_output.stops


def test_tool_runner_on_the_mock(mock_client: anygate.Anthropic) -> None:
    calls: list[str] = []

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name.
        """
        calls.append(city)
        return f"Sunny in {city}"

    runner = mock_client.beta.messages.tool_runner(
        model="mock/demo",
        max_tokens=200,
        tools=[get_weather],
        messages=[{"role": "user", "content": "Use get_weather for Paris"}],
    )
    final = runner.until_done()
    assert calls == ["example city"]
    assert final.stop_reason == "end_turn"
    assert "returned: Sunny in example city" in final.content[0].text  # type: ignore[union-attr]


def test_beta_messages_count_tokens_and_copies(mock_client: anygate.Anthropic) -> None:
    message = mock_client.beta.messages.create(
        model="mock/demo", max_tokens=50, messages=HELLO, betas=["context-management-2025-06-27"]
    )
    assert message.model == "mock/demo" and message.stop_reason == "end_turn"
    count = mock_client.messages.count_tokens(model="mock/demo", messages=HELLO)
    assert count.input_tokens > 0
    copy = mock_client.with_options(max_retries=0, timeout=5)
    assert copy.gateway is mock_client.gateway
    assert copy.messages.create(model="mock/demo", max_tokens=20, messages=HELLO).model == "mock/demo"


def test_models_list_and_retrieve_with_a_config(upstream: FakeUpstream) -> None:
    config = _config(upstream, "openai")
    config["model_list"].append({"model_name": "third", "litellm_params": {"model": "mock/third"}})
    with anygate.Anthropic(config=config) as client:
        assert [model.id for model in client.models.list(limit=2)] == ["up", "local", "third"]
        page = client.models.list(limit=2)
        assert page.has_more and page.first_id == "up" and page.last_id == "local"
        assert client.models.retrieve("local").display_name == "local"
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("nope")
    with anygate.Anthropic() as client:  # without a config, any <provider>/<model> name
        assert client.models.retrieve("openai/gpt-4o").id == "openai/gpt-4o"
        assert list(client.models.list()) == []


def test_config_file_path(tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: demo\n    litellm_params:\n      model: mock/x\n")
    with anygate.Anthropic(config=str(path)) as client:
        assert client.messages.create(model="demo", max_tokens=20, messages=HELLO).model == "demo"
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="mock/other", max_tokens=20, messages=HELLO)


# --- OpenAI-shaped and Anthropic upstreams ------------------------------------------------------------


def _script_answer(upstream: FakeUpstream, kind: str, text: str) -> None:
    if kind == "openai":
        upstream.handle(
            CHAT,
            lambda received: (
                Sse(sse_data(chunk({"content": text}), chunk(finish_reason="stop")))
                if received.json().get("stream")
                else Json(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": "gpt-4o",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
                    }
                )
            ),
        )
    else:
        upstream.handle(
            MESSAGES,
            lambda received: (
                Sse(anthropic_answers.stream_frames(text))
                if received.json().get("stream")
                else Json(anthropic_answers.message(text))
            ),
        )


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_create_and_stream_over_an_upstream(upstream: FakeUpstream, kind: str) -> None:
    _script_answer(upstream, kind, "Hi from upstream")
    with anygate.Anthropic(config=_config(upstream, kind), max_retries=0) as client:
        message = client.messages.create(model="up", max_tokens=20, messages=HELLO)
        with client.messages.stream(model="up", max_tokens=20, messages=HELLO) as stream:
            streamed = "".join(stream.text_stream)
            start_model = stream.get_final_message().model
    assert message.content[0].text == "Hi from upstream" == streamed  # type: ignore[union-attr]
    assert message.model == "up" == start_model, "answers name the model the client asked for"
    path = CHAT if kind == "openai" else MESSAGES
    received = upstream.requests_to(path)
    assert len(received) == 2 and received[1].json()["stream"] is True
    if kind == "openai":
        assert received[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert received[0].json()["model"] == "gpt-4o"
    else:
        assert received[0].headers["x-api-key"] == UPSTREAM_KEY
        assert received[0].json()["model"] == "claude-upstream"


async def test_async_client_without_config_uses_the_callers_key(upstream: FakeUpstream) -> None:
    _script_answer(upstream, "openai", "Hello async")
    async with anygate.AsyncAnthropic(api_key=UPSTREAM_KEY, api_base=f"{upstream.url}/v1") as client:
        message = await client.messages.create(model="openai/gpt-4o-mini", max_tokens=20, messages=HELLO)
    assert message.model == "openai/gpt-4o-mini" and message.content[0].text == "Hello async"  # type: ignore[union-attr]
    received = upstream.requests_to(CHAT)[0]
    assert received.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert received.json()["model"] == "gpt-4o-mini"


def test_beta_headers_reach_an_anthropic_upstream(upstream: FakeUpstream) -> None:
    _script_answer(upstream, "anthropic", "beta")
    with anygate.Anthropic(config=_config(upstream, "anthropic"), max_retries=0) as client:
        client.beta.messages.create(
            model="up", max_tokens=20, messages=HELLO, betas=["context-management-2025-06-27"]
        )
        count_answer = Json({"input_tokens": 42})
        upstream.script("/v1/messages/count_tokens", count_answer)
        assert client.messages.count_tokens(model="up", messages=HELLO).input_tokens == 42
    received = upstream.requests_to(MESSAGES)[0]
    assert received.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert "x-stainless-retry-count" not in received.headers


_OPENAI_ERROR = {"error": {"message": "upstream says no", "type": "invalid_request_error"}}

ERROR_CASES = [
    # (upstream status, the exception, the status the client sees)
    (400, anthropic.BadRequestError, 400),
    (401, anthropic.AuthenticationError, 401),
    (403, anthropic.PermissionDeniedError, 403),
    (404, anthropic.NotFoundError, 404),
    (413, anthropic.RequestTooLargeError, 413),
    (429, anthropic.RateLimitError, 429),
    (500, anthropic.InternalServerError, 500),
    (529, anthropic.OverloadedError, 529),
]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(("status", "exception", "client_status"), ERROR_CASES)
def test_every_status_is_its_official_exception(
    upstream: FakeUpstream,
    kind: str,
    status: int,
    exception: type[anthropic.APIStatusError],
    client_status: int,
) -> None:
    if kind == "openai":
        upstream_status = 503 if status == 529 else status  # OpenAI-shaped servers say 503 for overloaded
        upstream.script(CHAT, Json(_OPENAI_ERROR, status=upstream_status))
    else:
        error_type = STATUS_TO_ERROR_TYPE.get(status, "api_error")
        upstream.script(
            MESSAGES, Json(anthropic_answers.error(error_type, "upstream says no"), status=status)
        )
    with anygate.Anthropic(config=_config(upstream, kind), max_retries=0) as client:
        with pytest.raises(exception) as caught:
            client.messages.create(model="up", max_tokens=20, messages=HELLO)
    assert caught.value.status_code == client_status
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "error"
    assert UPSTREAM_KEY not in str(caught.value.body)


def test_a_gateway_error_is_an_exception_before_any_upstream_call(mock_client: anygate.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        mock_client.messages.create(model="mock/demo", max_tokens=-1, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError):
        mock_client.messages.create(model="no-provider-here", max_tokens=5, messages=HELLO)


def test_a_bug_in_the_gateway_is_an_internal_server_error_in_process(
    mock_client: anygate.Anthropic, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As over HTTP: a logged 500 ``api_error``, not the bug's own exception escaping into the caller."""

    def broken(*args: object) -> object:
        raise KeyError("content")

    monkeypatch.setattr(MockProvider, "answer", broken)
    for call in (mock_client.messages.create, anygate.anthropic.messages.create):
        with pytest.raises(anthropic.InternalServerError) as caught:
            call(model="mock/demo", max_tokens=5, messages=HELLO)
        assert caught.value.status_code == 500 and caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "failed inside the gateway" in caplog.text and "KeyError" in caplog.text


def test_no_key_fails_before_any_request(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with anygate.Anthropic(max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError, match="OPENAI_API_KEY"):
            client.messages.create(model="openai/gpt-4o", max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError, match="OPENAI_API_KEY"):
        anygate.anthropic.messages.create(model="openai/gpt-4o", max_tokens=5, messages=HELLO)
    assert upstream.received == []


def test_an_unreachable_upstream_is_a_connection_error() -> None:
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    config = {
        "model_list": [
            {"model_name": "up", "litellm_params": {"model": "openai/x", "api_base": dead, "api_key": "k"}}
        ],
        "router_settings": {"num_retries": 0},
    }
    with anygate.Anthropic(config=config, max_retries=0) as client:
        with pytest.raises(anthropic.APIConnectionError) as caught:
            client.messages.create(model="up", max_tokens=5, messages=HELLO)
    assert not isinstance(caught.value, anthropic.APITimeoutError)


@pytest.mark.parametrize("stream", [False, True])
def test_the_clients_timeout_is_an_api_timeout_error(upstream: FakeUpstream, stream: bool) -> None:
    if stream:
        upstream.script(MESSAGES, Sse(anthropic_answers.stream_frames("slow"), first_delay=2.0))
    else:
        upstream.script(MESSAGES, Json(anthropic_answers.message("late"), delay=2.0))
    with anygate.Anthropic(config=_config(upstream, "anthropic"), max_retries=0, timeout=0.3) as client:
        with pytest.raises(anthropic.APITimeoutError):
            if stream:
                with client.messages.stream(model="up", max_tokens=5, messages=HELLO) as events:
                    list(events.text_stream)
            else:
                client.messages.create(model="up", max_tokens=5, messages=HELLO)


def test_the_sdk_retries_what_the_gateway_gave_up_on(upstream: FakeUpstream) -> None:
    upstream.script(
        CHAT,
        Json(_OPENAI_ERROR, status=500),
        Json({"id": "c", "object": "chat.completion", "model": "gpt-4o", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "second time"}, "finish_reason": "stop"}
        ], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
    )  # fmt: skip
    with anygate.Anthropic(config=_config(upstream, "openai"), max_retries=1) as client:
        message = client.messages.create(model="up", max_tokens=5, messages=HELLO)
    assert message.content[0].text == "second time"  # type: ignore[union-attr]
    assert len(upstream.requests_to(CHAT)) == 2


def test_arguments_that_cannot_apply_are_refused() -> None:
    with pytest.raises(TypeError, match="api_key"):
        anygate.Anthropic(config={"model_list": []}, api_key="sk-x")
    with pytest.raises(TypeError, match="http_client"):
        anygate.Anthropic(http_client=anthropic.DefaultHttpxClient())


def test_a_stream_that_stalls_midway_raises_the_read_timeout_as_over_http(upstream: FakeUpstream) -> None:
    """The official client raises ``httpx2.ReadTimeout`` when a stream it is reading stalls (it retries
    only before the answer); in-process the same."""
    upstream.script(MESSAGES, Sse(anthropic_answers.stream_frames("slow"), pause=2.0))
    with anygate.Anthropic(config=_config(upstream, "anthropic"), max_retries=0, timeout=0.3) as client:
        with pytest.raises(httpx2.ReadTimeout):
            with client.messages.stream(model="up", max_tokens=5, messages=HELLO) as events:
                list(events.text_stream)

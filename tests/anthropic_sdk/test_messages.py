"""The in-process SDK surface: ``anygate.anthropic.messages`` and ``Gateway.from_config(...).messages``.

No gateway server here: the calls run in the test's process, against a fake Anthropic upstream on a real
port or the built-in mock model, and must return and raise exactly what the official SDK would.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path

import anthropic
import orjson
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStartEvent

import anygate
from tests.conftest import RECORDINGS, UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream, Json, Sse

HELLO = [{"role": "user", "content": "Hello"}]
BASIC_STREAM = (RECORDINGS / "anthropic/basic_response.sse").read_bytes()
UPSTREAM_MESSAGE = {
    "id": "msg_01sdk",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-haiku-20240307",
    "content": [{"type": "text", "text": "Hi from upstream"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 4},
}


@pytest.fixture
def upstream(shared_upstream: FakeUpstream) -> FakeUpstream:
    shared_upstream.reset()
    return shared_upstream


def _error(error_type: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _expected_event_types(recording: bytes) -> list[str]:
    return [
        line.removeprefix(b"event: ").decode()
        for line in recording.splitlines()
        if line.startswith(b"event: ") and line != b"event: ping"
    ]


# --- Anthropic upstream -------------------------------------------------------------------------------


async def test_acreate_returns_the_official_message(upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages", Json(UPSTREAM_MESSAGE))
    message = await anygate.anthropic.messages.acreate(
        model="anthropic/claude-3-haiku-20240307",
        messages=HELLO,
        max_tokens=100,
        api_key=UPSTREAM_KEY,
        api_base=upstream.url,
        extra_headers={"anthropic-beta": "some-beta-2025"},
        temperature=0.5,
    )
    assert isinstance(message, Message)
    assert message.content[0].text == "Hi from upstream"  # type: ignore[union-attr]
    assert message.usage.output_tokens == 4
    [received] = upstream.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == UPSTREAM_KEY
    assert received.headers["anthropic-beta"] == "some-beta-2025"
    assert received.json() == {
        "model": "claude-3-haiku-20240307",
        "messages": HELLO,
        "max_tokens": 100,
        "temperature": 0.5,
    }


async def test_acreate_stream_yields_official_events(upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages", Sse([BASIC_STREAM[:100], BASIC_STREAM[100:]]))
    stream = await anygate.anthropic.messages.acreate(
        model="anthropic/claude-3-haiku-20240307",
        messages=HELLO,
        max_tokens=100,
        stream=True,
        api_key=UPSTREAM_KEY,
        api_base=upstream.url,
    )
    events = [event async for event in stream]
    assert [e.type for e in events] == _expected_event_types(BASIC_STREAM)
    assert isinstance(events[0], RawMessageStartEvent)
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")  # type: ignore[union-attr]
    assert text == "Hello there!"
    assert upstream.received[0].json()["stream"] is True


def test_create_is_the_synchronous_twin(upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages", Json(UPSTREAM_MESSAGE))
    message = anygate.anthropic.messages.create(
        model="anthropic/claude-3-haiku-20240307",
        messages=HELLO,
        max_tokens=100,
        api_key=UPSTREAM_KEY,
        api_base=upstream.url,
    )
    assert isinstance(message, Message) and message.id == "msg_01sdk"
    assert upstream.received[0].headers["x-api-key"] == UPSTREAM_KEY


@pytest.mark.parametrize("recording", sorted(RECORDINGS.glob("anthropic/*.sse")), ids=lambda p: p.stem)
def test_create_stream_synchronously(upstream: FakeUpstream, recording: Path) -> None:
    recorded = recording.read_bytes()
    upstream.script("/v1/messages", Sse([recorded[i : i + 50] for i in range(0, len(recorded), 50)]))
    with anygate.anthropic.messages.create(
        model="anthropic/claude-3-haiku-20240307",
        messages=HELLO,
        max_tokens=100,
        stream=True,
        api_key=UPSTREAM_KEY,
        api_base=upstream.url,
    ) as stream:
        types = [event.type for event in stream]
    assert types == _expected_event_types(recorded)


async def test_count_tokens_forwarded_async_and_sync(upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages/count_tokens", Json({"input_tokens": 321}))
    kwargs = {
        "model": "anthropic/claude-3-haiku-20240307",
        "messages": HELLO,
        "api_key": UPSTREAM_KEY,
        "api_base": upstream.url,
    }
    counted = await anygate.anthropic.messages.acount_tokens(**kwargs)
    assert isinstance(counted, MessageTokensCount) and counted.input_tokens == 321
    assert anygate.anthropic.messages.count_tokens(**kwargs).input_tokens == 321
    assert [r.path for r in upstream.received] == ["/v1/messages/count_tokens"] * 2
    assert upstream.received[0].json() == {"model": "claude-3-haiku-20240307", "messages": HELLO}
    assert upstream.received[0].headers["x-api-key"] == UPSTREAM_KEY


async def test_api_key_falls_back_to_the_provider_variable(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-environment")
    upstream.script("/v1/messages", Json(UPSTREAM_MESSAGE))
    await anygate.anthropic.messages.acreate(
        model="anthropic/claude-3-haiku-20240307", messages=HELLO, max_tokens=10, api_base=upstream.url
    )
    assert upstream.received[0].headers["x-api-key"] == "sk-from-environment"


def test_asyncio_run_leaves_no_open_connections(upstream: FakeUpstream) -> None:
    """The README's ``asyncio.run(main())``: each loop's connection pool closes with the loop (an unclosed
    aiohttp session would surface here as an unraisable ResourceWarning, which fails the test)."""
    upstream.script("/v1/messages", Json(UPSTREAM_MESSAGE))

    async def main() -> Message:
        return await anygate.anthropic.messages.acreate(  # type: ignore[no-any-return]
            model="anthropic/claude-3-haiku-20240307",
            messages=HELLO,
            max_tokens=10,
            api_key=UPSTREAM_KEY,
            api_base=upstream.url,
        )

    # In a thread of its own, as a script's main thread would be: asyncio.run there replaces no event loop
    # that the test runner left in this thread (whose collection would be reported here instead).
    ids: list[str] = []
    worker = threading.Thread(target=lambda: ids.extend(asyncio.run(main()).id for _ in range(2)))
    worker.start()
    worker.join(30)
    assert ids == ["msg_01sdk", "msg_01sdk"]
    gc.collect()


# --- exceptions ---------------------------------------------------------------------------------------


async def test_rate_limit_raises_rate_limit_error(upstream: FakeUpstream) -> None:
    upstream.script(
        "/v1/messages",
        Json(_error("rate_limit_error", "slow down"), status=429, headers={"retry-after": "40"}),
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        await anygate.anthropic.messages.acreate(
            model="anthropic/claude-3-haiku-20240307",
            messages=HELLO,
            max_tokens=10,
            api_key=UPSTREAM_KEY,
            api_base=upstream.url,
        )
    error = caught.value
    assert error.status_code == 429
    assert error.body["type"] == "error"  # type: ignore[index]
    assert error.body["error"] == {"type": "rate_limit_error", "message": "slow down"}  # type: ignore[index]
    assert error.body["request_id"] == error.request_id  # type: ignore[index]
    assert error.response.headers["retry-after"] == "40"


@pytest.mark.parametrize(
    ("status", "error_type", "exception", "expected_status"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError, 400),
        (404, "not_found_error", anthropic.NotFoundError, 404),
        (413, "request_too_large", anthropic.RequestTooLargeError, 413),
        (529, "overloaded_error", anthropic.OverloadedError, 529),
        (500, "api_error", anthropic.InternalServerError, 500),
        (401, "authentication_error", anthropic.AuthenticationError, 401),  # the caller's own key
        (403, "permission_error", anthropic.PermissionDeniedError, 403),
    ],
)
def test_upstream_errors_raise_the_sdk_exception_for_their_status(
    upstream: FakeUpstream,
    status: int,
    error_type: str,
    exception: type[anthropic.APIStatusError],
    expected_status: int,
) -> None:
    upstream.script("/v1/messages", Json(_error(error_type, "upstream failure"), status=status))
    with pytest.raises(exception) as caught:
        anygate.anthropic.messages.create(
            model="anthropic/claude-3-haiku-20240307",
            messages=HELLO,
            max_tokens=10,
            api_key=UPSTREAM_KEY,
            api_base=upstream.url,
            timeout=5,
        )
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.status_code == expected_status
    assert UPSTREAM_KEY not in str(caught.value.body)


async def test_invalid_request_raises_bad_request_before_any_call(upstream: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await anygate.anthropic.messages.acreate(
            model="anthropic/claude-3-haiku-20240307",
            messages=[{"role": "user", "content": [{"text": "no type"}]}],
            max_tokens=10,
            api_key=UPSTREAM_KEY,
            api_base=upstream.url,
        )
    assert "messages.0.content.0.type" in caught.value.message
    assert upstream.received == []


async def test_unknown_provider_raises_not_found() -> None:
    with pytest.raises(anthropic.NotFoundError):
        await anygate.anthropic.messages.acreate(model="no-such-provider/x", messages=HELLO, max_tokens=10)


async def test_stream_cut_midway_raises_during_iteration(upstream: FakeUpstream) -> None:
    cut_at = BASIC_STREAM.index(b"event: content_block_stop")
    upstream.script("/v1/messages", Sse([BASIC_STREAM[:cut_at]], cut=True))
    stream = await anygate.anthropic.messages.acreate(
        model="anthropic/claude-3-haiku-20240307",
        messages=HELLO,
        max_tokens=10,
        stream=True,
        api_key=UPSTREAM_KEY,
        api_base=upstream.url,
    )
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError):
        async for event in stream:
            seen.append(event.type)
    assert seen[0] == "message_start" and "message_stop" not in seen


# --- the mock model -----------------------------------------------------------------------------------


async def test_mock_model_in_process() -> None:
    message = await anygate.anthropic.messages.acreate(
        model="mock/demo", messages=[{"role": "user", "content": "Tell me a joke"}], max_tokens=100
    )
    assert isinstance(message, Message)
    assert "atoms" in message.content[0].text  # type: ignore[union-attr]
    assert message.model == "mock/demo"
    stream = await anygate.anthropic.messages.acreate(
        model="mock/demo",
        messages=[{"role": "user", "content": "Tell me a joke"}],
        max_tokens=100,
        stream=True,
    )
    events = [event async for event in stream]
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    streamed = "".join(e.delta.text for e in events if e.type == "content_block_delta")  # type: ignore[union-attr]
    assert streamed == message.content[0].text  # type: ignore[union-attr]
    counted = await anygate.anthropic.messages.acount_tokens(model="mock/demo", messages=HELLO)
    assert counted.input_tokens > 0


def test_mock_model_sync_stream_and_tool_turn() -> None:
    tool = {
        "name": "lookup",
        "description": "Look a word up",
        "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
    }
    with anygate.anthropic.messages.create(
        model="mock/demo",
        messages=[{"role": "user", "content": "please lookup 'gateway'"}],
        max_tokens=100,
        tools=[tool],
        stream=True,
    ) as stream:
        events = list(stream)
    start = next(e for e in events if e.type == "content_block_start")
    assert start.content_block.type == "tool_use" and start.content_block.name == "lookup"  # type: ignore[union-attr]
    partial = "".join(
        e.delta.partial_json  # type: ignore[union-attr]
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert orjson.loads(partial) == {"word": "example word"}
    assert anygate.anthropic.messages.count_tokens(model="mock/demo", messages=HELLO).input_tokens > 0


# --- a gateway from a config file ---------------------------------------------------------------------


def _write_config(tmp_path: Path, upstream: FakeUpstream) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: smart
    litellm_params:
      model: anthropic/claude-sonnet-upstream
      api_base: {upstream.url}
      api_key: os.environ/TEST_SDK_UPSTREAM_KEY
  - model_name: local
    litellm_params:
      model: mock/local
router_settings:
  num_retries: 0
"""
    )
    return path


async def test_gateway_from_config_serves_its_model_names(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SDK_UPSTREAM_KEY", "sk-configured")
    upstream.script("/v1/messages", Json(UPSTREAM_MESSAGE))
    gateway = anygate.Gateway.from_config(_write_config(tmp_path, upstream))
    try:
        message = await gateway.messages.acreate(model="smart", messages=HELLO, max_tokens=10)
        assert message.content[0].text == "Hi from upstream"
        received = upstream.received[0]
        assert received.headers["x-api-key"] == "sk-configured"
        assert received.json()["model"] == "claude-sonnet-upstream"
        local = await gateway.messages.acreate(model="local", messages=HELLO, max_tokens=30)
        assert local.model == "local"
        with pytest.raises(anthropic.NotFoundError):
            await gateway.messages.acreate(model="not-in-config", messages=HELLO, max_tokens=10)
        upstream.script("/v1/messages", Json(_error("rate_limit_error", "busy"), status=429))
        with pytest.raises(anthropic.RateLimitError):
            await gateway.messages.acreate(model="smart", messages=HELLO, max_tokens=10)
    finally:
        await gateway.aclose()


def test_gateway_from_config_sync(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SDK_UPSTREAM_KEY", "sk-configured")
    upstream.script("/v1/messages", Sse([BASIC_STREAM]))
    gateway = anygate.Gateway.from_config(str(_write_config(tmp_path, upstream)))
    try:
        with gateway.messages.create(model="smart", messages=HELLO, max_tokens=10, stream=True) as stream:
            assert [e.type for e in stream] == _expected_event_types(BASIC_STREAM)
    finally:
        gateway.close()


async def test_answers_go_back_as_they_are_and_wide_integers_become_floats_as_over_http() -> None:
    """The official client lets an answer's ``content`` (model objects) go into the next request; so does
    anygate's. Integers wider than 64 bits arrive as floats, as they do after the proxy parses JSON."""
    tools = [{"name": "lookup", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}]
    first = await anygate.anthropic.messages.acreate(
        model="mock/m", max_tokens=100, tools=tools, messages=[{"role": "user", "content": "lookup please"}]
    )
    assert first.content[-1].type == "tool_use"
    second = await anygate.anthropic.messages.acreate(
        model="mock/m",
        max_tokens=100,
        tools=tools,
        messages=(
            {"role": "user", "content": "lookup please"},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": first.content[-1].id, "content": "found"}],
            },
        ),
        metadata={"user_id": "u"},
        extra_body={"big": 2**70},
    )
    assert "lookup returned: found" in second.content[0].text


async def test_a_value_that_is_not_json_is_a_bad_request() -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await anygate.anthropic.messages.acreate(
            model="mock/m", max_tokens=10, messages=[{"role": "user", "content": object()}]
        )
    assert "not valid JSON" in caught.value.message

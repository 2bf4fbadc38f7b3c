"""OpenAI-compatible upstreams behind the proxy, driven by the official anthropic SDK.

Each recorded Chat Completions stream is replayed by a fake upstream, in uneven chunks; the SDK's own
stream accumulator must assemble it, every event must satisfy Anthropic's spec, the non-streaming answer
must equal the streamed one, and every request the upstream received must satisfy OpenAI's spec.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.providers.openai_support import (
    OPENAI_RECORDINGS,
    RECORDING_IDS,
    assert_valid_chat_request,
    assert_valid_events,
    chunk,
    decode_events,
    recording_to_completion,
)

CHAT = "/v1/chat/completions"
HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "What is the weather in SF?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def config(
    upstream: FakeUpstream, *, provider: str = "openai", model: str = "gpt-4o", general: str = ""
) -> str:
    return f"""
model_list:
  - model_name: gpt
    litellm_params:
      model: {provider}/{model}
      api_base: {upstream.url}/v1
      api_key: {UPSTREAM_KEY}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
{general}
"""


@pytest.fixture
def gateway(serve: Callable[[str], GatewayServer], upstream: FakeUpstream) -> GatewayServer:
    return serve(config(upstream))


def uneven(data: bytes) -> list[bytes]:
    """The recording cut into chunks of varying sizes that split frames, lines and UTF-8 sequences."""
    pieces, start, size = [], 0, 1
    while start < len(data):
        pieces.append(data[start : start + size])
        start += size
        size = size * 3 % 97 + 1
    return pieces


def check_upstream_requests(upstream: FakeUpstream) -> list[dict[str, Any]]:
    bodies = []
    for received in upstream.requests_to(CHAT):
        assert received.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert MASTER_KEY not in str(received.headers)
        body = received.json()
        assert_valid_chat_request(body)
        bodies.append(body)
    assert bodies
    return bodies


@pytest.mark.parametrize("path", OPENAI_RECORDINGS, ids=RECORDING_IDS)
def test_recordings_through_the_proxy(path: Path, gateway: GatewayServer, upstream: FakeUpstream) -> None:
    data = path.read_bytes()
    upstream.script(CHAT, Sse(uneven(data)), Sse(uneven(data)), Json(recording_to_completion(data)))
    client = sdk_client(gateway)
    with client.messages.stream(model="gpt", max_tokens=200, messages=HELLO, tools=[WEATHER]) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    with client.messages.with_streaming_response.create(
        model="gpt",
        max_tokens=200,
        messages=HELLO,
        tools=[WEATHER],
        stream=True,  # type: ignore[list-item]
    ) as response:
        raw = response.read()
    streamed = assert_valid_events(decode_events(raw))
    whole = client.messages.create(model="gpt", max_tokens=200, messages=HELLO, tools=[WEATHER])  # type: ignore[list-item]
    assert final.model_dump(exclude_none=True, exclude={"id"}) == whole.model_dump(
        exclude_none=True, exclude={"id"}
    )
    assert final.model == "gpt" and final.id.startswith("msg_")
    assert final.stop_reason == streamed["stop_reason"]
    assert len(final.content) == len(streamed["content"])
    bodies = check_upstream_requests(upstream)
    assert [b.get("stream") for b in bodies] == [True, True, None]
    assert bodies[0]["stream_options"] == {"include_usage": True}


def test_tool_round_trip(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    data = (OPENAI_RECORDINGS[RECORDING_IDS.index("tool_call")]).read_bytes()
    upstream.script(
        CHAT,
        Sse([data]),
        Json({"choices": [{"message": {"content": "It is 18C."}, "finish_reason": "stop"}]}),
    )
    client = sdk_client(gateway)
    with client.messages.stream(model="gpt", max_tokens=200, messages=HELLO, tools=[WEATHER]) as stream:  # type: ignore[list-item]
        first = stream.get_final_message()
    call = first.content[0]
    assert call.type == "tool_use" and call.input == {"city": "New York City"}
    messages: list[Any] = [
        *HELLO,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C", "is_error": False}],
        },
    ]
    second = client.messages.create(model="gpt", max_tokens=200, messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert second.content[0].text == "It is 18C."  # type: ignore[union-attr]
    bodies = check_upstream_requests(upstream)
    assert bodies[1]["messages"][1]["tool_calls"][0]["id"] == call.id
    assert bodies[1]["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "18C"}


def test_claude_code_shaped_request(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    upstream.script(CHAT, Sse(sse_data(chunk({"content": "ok"}), chunk(finish_reason="stop"))))
    client = sdk_client(gateway)
    with client.messages.stream(
        model="gpt",
        max_tokens=32000,
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0; cch=123;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=HELLO,
        tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
        thinking={"type": "enabled", "budget_tokens": 31999},
        metadata={"user_id": "user_abc"},
        extra_body={"context_management": {"edits": []}},
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "ok"  # type: ignore[union-attr]
    assert final.usage.output_tokens >= 1, "no usage chunk: counted locally"
    body = check_upstream_requests(upstream)[0]
    assert body["messages"][0] == {"role": "system", "content": "You are Claude Code."}
    # the gateway runs web search itself: the model is offered it as a function
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "web_search"]
    assert "context_management" not in body and body["user"] == "user_abc"
    assert "reasoning_effort" not in body, "gpt-4o is not a reasoning model"


def test_reasoning_model_gets_effort_and_thinking_comes_back(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    upstream.script(
        CHAT,
        Sse(
            sse_data(
                chunk({"reasoning_content": "Think."}),
                chunk({"content": "Answer."}),
                chunk(finish_reason="stop"),
            )
        ),
    )
    client = sdk_client(serve(config(upstream, provider="deepseek", model="deepseek-reasoner")))
    with client.messages.stream(
        model="gpt", max_tokens=100, messages=HELLO, thinking={"type": "enabled", "budget_tokens": 8000}
    ) as stream:
        final = stream.get_final_message()
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "Think."
    assert thinking.signature.startswith("anygate.v1.")
    body = check_upstream_requests(upstream)[0]
    assert body["reasoning_effort"] == "medium" and body["thinking"] == {"type": "enabled"}
    assert "max_tokens" in body and "max_completion_tokens" not in body


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (
            Sse(sse_data(chunk({"content": "Hel"}), chunk({"content": "lo"}))[:2], cut=True),
            "broken connection",
        ),
        (Sse(sse_data(chunk({"content": "Hello"}), done=False)), "no finish_reason"),
        (Sse(sse_data(chunk({"content": "Hello"}), chunk(finish_reason="stop"), done=False)), "no [DONE]"),
    ],
    ids=["cut", "no-finish", "no-done"],
)
def test_cut_off_streams_end_with_an_error_event(
    gateway: GatewayServer, upstream: FakeUpstream, answer: Sse, what: str
) -> None:
    upstream.script(CHAT, answer)
    client = sdk_client(gateway)
    with client.messages.with_streaming_response.create(
        model="gpt", max_tokens=50, messages=HELLO, stream=True
    ) as response:
        raw = response.read()
    assert b"event: message_start" in raw, what
    assert b"message_stop" not in raw and raw.rstrip().split(b"\n\n")[-1].startswith(b"event: error"), what
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="gpt", max_tokens=50, messages=HELLO) as stream,
    ):
        stream.get_final_message()


def test_pings_during_upstream_silence(serve: Callable[[str], GatewayServer], upstream: FakeUpstream) -> None:
    upstream.script(
        CHAT,
        Sse(
            sse_data(chunk({"content": "a"}), chunk({"content": "b"}), chunk(finish_reason="stop")),
            pause=0.25,
        ),
    )
    client = sdk_client(serve(config(upstream, general="  stream_ping_interval: 0.05")))
    with client.messages.with_streaming_response.create(
        model="gpt", max_tokens=50, messages=HELLO, stream=True
    ) as response:
        raw = response.read()
    events = decode_events(raw)
    assert any(e["type"] == "ping" for e in events)
    assert accumulate_text(events) == "ab"


def accumulate_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


@pytest.mark.parametrize(
    ("status", "exception", "client_status"),
    [
        (400, anthropic.BadRequestError, 400),
        (404, anthropic.NotFoundError, 404),
        (429, anthropic.RateLimitError, 429),
        (503, anthropic.OverloadedError, 529),
        (401, anthropic.InternalServerError, 500),
        (500, anthropic.InternalServerError, 500),
    ],
)
def test_upstream_errors(
    gateway: GatewayServer,
    upstream: FakeUpstream,
    status: int,
    exception: type[anthropic.APIStatusError],
    client_status: int,
) -> None:
    upstream.script(
        CHAT,
        Json(
            {"error": {"message": f"upstream failure {status} for key {UPSTREAM_KEY}"}},
            status=status,
            headers={"retry-after": "3"},
        ),
    )
    for stream in (False, True):
        with pytest.raises(exception) as caught:
            sdk_client(gateway).messages.create(model="gpt", max_tokens=50, messages=HELLO, stream=stream)
        error = caught.value
        assert error.status_code == client_status
        assert UPSTREAM_KEY not in str(error.body)
        assert error.response.headers.get("request-id", "").startswith("req_")
        if status == 429:
            assert error.response.headers["retry-after"] == "3"


def test_malformed_requests_never_reach_the_upstream(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    client = sdk_client(gateway)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="gpt", max_tokens=50, messages=[{"role": "user", "content": [{"type": "text"}]}]
        )  # type: ignore[typeddict-item]
    assert upstream.requests_to(CHAT) == []


def test_count_tokens(serve: Callable[[str], GatewayServer], upstream: FakeUpstream) -> None:
    local = sdk_client(serve(config(upstream)))
    small = local.messages.count_tokens(model="gpt", messages=HELLO)
    big = local.messages.count_tokens(model="gpt", messages=HELLO, tools=[WEATHER], system="Be brief " * 100)  # type: ignore[list-item]
    assert 5 < small.input_tokens < big.input_tokens
    assert upstream.received == []
    upstream.script("/tokenize", Json({"count": 42, "max_model_len": 8192, "tokens": []}))
    vllm = sdk_client(serve(config(upstream, provider="hosted_vllm", model="Qwen/Qwen3-8B")))
    assert vllm.messages.count_tokens(model="gpt", messages=HELLO).input_tokens == 42
    assert upstream.requests_to("/tokenize")[0].json()["messages"] == [
        {"role": "user", "content": HELLO[0]["content"]}
    ]

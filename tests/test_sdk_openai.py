"""The in-process SDK with ``model="openai/…"``: no server, the official SDK's types and exceptions."""

from __future__ import annotations

import anthropic
import pytest

import anygate
from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.providers.openai_support import (
    OPENAI_RECORDINGS,
    RECORDING_IDS,
    assert_valid_chat_request,
    chunk,
    recording_to_completion,
)

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello, can you tell me a short joke?"}]


def recording(name: str) -> bytes:
    return OPENAI_RECORDINGS[RECORDING_IDS.index(name)].read_bytes()


async def test_acreate_non_streaming(upstream: FakeUpstream) -> None:
    upstream.script(CHAT, Json(recording_to_completion(recording("text"))))
    message = await anygate.anthropic.messages.acreate(
        model="openai/gpt-4o-mini",
        messages=HELLO,
        max_tokens=100,
        api_base=f"{upstream.url}/v1",
        api_key=UPSTREAM_KEY,
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.model == "openai/gpt-4o-mini" and message.id.startswith("msg_")
    assert message.content[0].text.startswith("I'm unable")  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (14, 30)
    received = upstream.requests_to(CHAT)[0]
    assert received.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    body = received.json()
    assert_valid_chat_request(body)
    assert body["model"] == "gpt-4o-mini" and "stream" not in body


async def test_acreate_streaming_tool_call(upstream: FakeUpstream) -> None:
    upstream.script(CHAT, Sse([recording("parallel_tool_calls")]))
    stream = await anygate.anthropic.messages.acreate(
        model="openai/gpt-4o",
        messages=HELLO,
        max_tokens=100,
        stream=True,
        api_base=f"{upstream.url}/v1",
        api_key=UPSTREAM_KEY,
        tools=[{"name": "GetWeatherArgs", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": False},
    )
    events = [event async for event in stream]
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    starts = [e for e in events if e.type == "content_block_start"]
    assert [e.content_block.type for e in starts] == ["tool_use", "tool_use"]  # type: ignore[union-attr]
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "tool_use" and delta.usage.output_tokens == 60  # type: ignore[union-attr]
    body = upstream.requests_to(CHAT)[0].json()
    assert body["tool_choice"] == "required" and body["stream_options"] == {"include_usage": True}


def test_sync_create_and_count_tokens(upstream: FakeUpstream) -> None:
    upstream.script(CHAT, Sse(sse_data(chunk({"content": "Hi!"}), chunk(finish_reason="stop"))))
    common = {"api_base": f"{upstream.url}/v1", "api_key": UPSTREAM_KEY}
    events = list(
        anygate.anthropic.messages.create(
            model="openai/gpt-4o", messages=HELLO, max_tokens=10, stream=True, **common
        )
    )
    assert [e.type for e in events][-1] == "message_stop"
    count = anygate.anthropic.messages.count_tokens(model="openai/gpt-4o", messages=HELLO, **common)
    assert count.input_tokens > 5
    assert len(upstream.received) == 1, "count_tokens is local for OpenAI models"


async def test_errors_are_the_official_exceptions(upstream: FakeUpstream) -> None:
    upstream.script(
        CHAT, Json({"error": {"message": "Rate limit reached"}}, status=429, headers={"retry-after": "60"})
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        await anygate.anthropic.messages.acreate(
            model="openai/gpt-4o",
            messages=HELLO,
            max_tokens=10,
            api_base=f"{upstream.url}/v1",
            api_key=UPSTREAM_KEY,
        )
    assert caught.value.status_code == 429 and "Rate limit reached" in str(caught.value.body)
    upstream.script(
        CHAT, Json({"error": {"message": "Incorrect API key provided: sk-upstr****"}}, status=401)
    )
    with pytest.raises(anthropic.AuthenticationError) as wrong_key:  # in-process, the key is the caller's
        await anygate.anthropic.messages.acreate(
            model="openai/gpt-4o",
            messages=HELLO,
            max_tokens=10,
            api_base=f"{upstream.url}/v1",
            api_key=UPSTREAM_KEY,
        )
    assert wrong_key.value.status_code == 401
    body = str(wrong_key.value.body)
    assert UPSTREAM_KEY not in body and "rejected the API key" in body


async def test_azure_api_version_and_key_header_through_the_sdk(upstream: FakeUpstream) -> None:
    path = "/openai/deployments/my-gpt/chat/completions"
    upstream.script(path, Json(recording_to_completion(recording("text"))))
    message = await anygate.anthropic.messages.acreate(
        model="azure/my-gpt",
        messages=HELLO,
        max_tokens=100,
        api_base=upstream.url,
        api_key=UPSTREAM_KEY,
        api_version="2024-10-21",
    )
    assert message.stop_reason == "end_turn"
    received = upstream.requests_to(path)[0]
    assert received.query == "api-version=2024-10-21"
    assert received.headers["api-key"] == UPSTREAM_KEY and "authorization" not in received.headers
    assert "api_version" not in received.json()

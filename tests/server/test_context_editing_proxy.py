"""Context editing through the proxy, seen by the official SDK's beta surface.

The OpenAI-compatible upstream receives the edited conversation (cleared tool results, no
``context_management`` field), and the answer reports the applied edits where Anthropic does: in the
Message, and in the stream's ``message_delta``; streaming and non-streaming agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from tests.conftest import sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.providers.openai_support import anthropic_validator, chunk, decode_events
from tests.server.test_overflow_proxy import CHAT, config, entry
from tests.tools.test_context_editing import conversation

BETAS = ["context-management-2025-06-27"]
CLEAR_OLD_TOOL_USES = {
    "type": "clear_tool_uses_20250919",
    "trigger": {"type": "tool_uses", "value": 3},
    "keep": {"type": "tool_uses", "value": 1},
}
READ_TOOL = {"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}}
COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
}


@pytest.fixture
def gateway(serve: Callable[[str], GatewayServer], upstream: FakeUpstream) -> GatewayServer:
    upstream.script(
        CHAT,
        Sse(sse_data(chunk({"role": "assistant", "content": "done"}), chunk({}, "stop"))),
        Sse(sse_data(chunk({"role": "assistant", "content": "done"}), chunk({}, "stop"))),
        Json(COMPLETION),
    )
    return serve(config(entry("gpt", upstream)))


def tool_messages(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def test_cleared_tool_results_reach_the_upstream_and_the_answer_reports_them(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    client = sdk_client(gateway)
    params: dict[str, Any] = {
        "model": "gpt",
        "max_tokens": 50,
        "messages": conversation(4),
        "tools": [READ_TOOL],
        "context_management": {"edits": [CLEAR_OLD_TOOL_USES]},
        "betas": BETAS,
    }
    with client.beta.messages.stream(**params) as stream:
        streamed = stream.get_final_message()
    with client.beta.messages.with_streaming_response.create(**params, stream=True) as response:
        events = decode_events(response.read())
    whole = client.beta.messages.create(**params)

    for event in events:
        anthropic_validator("MessageStreamEvent").validate(event)
    (delta,) = [e for e in events if e["type"] == "message_delta"]
    report = delta["context_management"]
    anthropic_validator("BetaResponseContextManagement").validate(report)
    assert report["applied_edits"][0]["type"] == "clear_tool_uses_20250919"
    assert report["applied_edits"][0]["cleared_tool_uses"] == 3
    assert whole.context_management is not None and streamed.context_management is not None
    assert whole.context_management.model_dump() == report == streamed.context_management.model_dump()
    for received in upstream.requests_to(CHAT):
        body = received.json()
        assert "context_management" not in body
        results = tool_messages(body)
        assert results[:3] == ["[This tool result was cleared from the context to save space.]"] * 3
        assert results[3].startswith("contents of file 3")


def test_an_edit_that_changes_nothing_leaves_the_answer_alone(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    """Claude Code sends ``clear_thinking`` with ``keep: "all"`` on every request: nothing is cleared,
    nothing is reported, and the conversation reaches the upstream whole."""
    upstream.script(CHAT, Json(COMPLETION))
    message = sdk_client(gateway).beta.messages.create(
        model="gpt",
        max_tokens=50,
        messages=conversation(4),
        tools=[READ_TOOL],  # type: ignore[list-item]
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        betas=BETAS,
    )
    assert message.context_management is None
    assert all(r.startswith("contents of file") for r in tool_messages(upstream.requests_to(CHAT)[0].json()))


def test_a_compaction_edit_is_accepted_and_below_its_trigger_changes_nothing(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    upstream.script(CHAT, Json(COMPLETION))
    message = sdk_client(gateway).beta.messages.create(
        model="gpt",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        context_management={"edits": [{"type": "compact_20260112"}]},
        betas=["compact-2026-01-12"],
    )
    assert [b.type for b in message.content] == ["text"] and message.context_management is None
    (received,) = upstream.requests_to(CHAT)
    assert "context_management" not in received.json()
    assert received.json()["messages"] == [{"role": "user", "content": "hi"}]


def test_a_bad_compaction_trigger_is_refused_before_the_upstream(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk_client(gateway).beta.messages.create(
            model="gpt",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            context_management={
                "edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 10}}]
            },
            betas=["compact-2026-01-12"],
        )
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "context_management.edits.0.trigger.value: Input should be greater than or equal to 50000"
    )
    assert upstream.requests_to(CHAT) == []

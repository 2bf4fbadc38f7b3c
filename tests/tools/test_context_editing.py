"""``context_management`` edits applied by the gateway: triggers, ``keep``, exclusions, reports."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from anygate.protocol.errors import GatewayError
from anygate.tools.context_editing import (
    CLEARED_TOOL_RESULT,
    ReportingTranslator,
    apply_edits,
    requested_edits,
)
from tests.providers.openai_support import anthropic_validator, chunk, decode_events, frames, prepared


def conversation(uses: int, *, thinking: bool = False, name: str = "Read") -> list[dict[str, Any]]:
    """A user prompt, then ``uses`` assistant tool calls each answered by a long tool result."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Look at the files."}]
    for n in range(uses):
        content: list[dict[str, Any]] = []
        if thinking:
            content.append(
                {"type": "thinking", "thinking": f"Turn {n}: read the next file.", "signature": "s"}
            )
        content.append({"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": {"path": f"/f{n}.py"}})
        messages.append({"role": "assistant", "content": content})
        result = {
            "type": "tool_result",
            "tool_use_id": f"toolu_{n}",
            "content": f"contents of file {n} " * 200,
        }
        messages.append({"role": "user", "content": [result]})
    return messages


def request(messages: list[dict[str, Any]], *edits: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 100,
        "messages": messages,
        "context_management": {"edits": list(edits)},
    }


def results(req: dict[str, Any]) -> list[Any]:
    return [
        b["content"]
        for m in req["messages"]
        if m["role"] == "user"
        for b in m["content"]
        if isinstance(b, dict)
    ]


def tool_inputs(req: dict[str, Any]) -> list[Any]:
    return [
        b["input"]
        for m in req["messages"]
        for b in m["content"]
        if isinstance(b, dict) and b["type"] == "tool_use"
    ]


def edit(req: dict[str, Any], input_tokens: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    edits = requested_edits(req, "m")
    assert edits is not None
    return apply_edits(req, edits, input_tokens), edits.applied


def test_tool_uses_past_the_trigger_are_cleared_oldest_first_keeping_the_newest() -> None:
    original = request(
        conversation(5),
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "tool_uses", "value": 5},
            "keep": {"type": "tool_uses", "value": 2},
        },
    )
    pristine = copy.deepcopy(original)
    edited, applied = edit(original)
    assert results(edited) == [CLEARED_TOOL_RESULT] * 3 + results(original)[3:]
    assert tool_inputs(edited) == tool_inputs(original)
    assert applied[0]["type"] == "clear_tool_uses_20250919" and applied[0]["cleared_tool_uses"] == 3
    assert applied[0]["cleared_input_tokens"] > 3 * 500
    assert original == pristine, "the client's request must not be changed"
    anthropic_validator("BetaResponseContextManagement").validate({"applied_edits": applied})


def test_below_the_trigger_nothing_changes() -> None:
    original = request(
        conversation(4), {"type": "clear_tool_uses_20250919", "trigger": {"type": "tool_uses", "value": 5}}
    )
    edited, applied = edit(original)
    assert edited is original and applied == []


def test_the_default_trigger_is_100k_input_tokens_and_keep_is_3() -> None:
    original = request(conversation(5), {"type": "clear_tool_uses_20250919"})
    assert edit(original, input_tokens=None) == (original, [])
    assert edit(original, input_tokens=99_999)[1] == []
    edited, applied = edit(original, input_tokens=100_000)
    assert results(edited) == [CLEARED_TOOL_RESULT] * 2 + results(original)[2:]
    assert applied[0]["cleared_tool_uses"] == 2


def test_excluded_tools_are_never_cleared_and_inputs_are_cleared_when_asked() -> None:
    messages = conversation(3) + conversation(3, name="Grep")[1:]
    for n, message in enumerate(m for m in messages if m["role"] == "assistant"):
        message["content"][0]["id"] = f"toolu_x{n}"
    for n, message in enumerate(m for m in messages[1:] if m["role"] == "user"):
        message["content"][0]["tool_use_id"] = f"toolu_x{n}"
    original = request(
        messages,
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "tool_uses", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
            "exclude_tools": ["Read"],
            "clear_tool_inputs": True,
        },
    )
    edited, applied = edit(original)
    assert results(edited)[:3] == results(original)[:3]  # Read: excluded
    assert results(edited)[3:] == [CLEARED_TOOL_RESULT] * 2 + results(original)[5:]
    assert tool_inputs(edited) == [*tool_inputs(original)[:3], {}, {}, *tool_inputs(original)[5:]]
    assert applied[0]["cleared_tool_uses"] == 2


def test_clear_at_least_skips_an_edit_that_would_clear_too_little() -> None:
    spec = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": 2},
        "keep": {"type": "tool_uses", "value": 1},
    }
    little = request(conversation(2), {**spec, "clear_at_least": {"type": "input_tokens", "value": 50_000}})
    assert edit(little)[1] == []
    enough = request(conversation(2), {**spec, "clear_at_least": {"type": "input_tokens", "value": 100}})
    assert edit(enough)[1][0]["cleared_tool_uses"] == 1


def test_thinking_of_older_turns_is_cleared_keeping_the_newest() -> None:
    original = request(
        conversation(4, thinking=True),
        {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}},
    )
    edited, applied = edit(original)
    kinds = [[b["type"] for b in m["content"]] for m in edited["messages"] if m["role"] == "assistant"]
    assert kinds == [["tool_use"]] * 3 + [["thinking", "tool_use"]]
    assert applied == [
        {
            "type": "clear_thinking_20251015",
            "cleared_thinking_turns": 3,
            "cleared_input_tokens": applied[0]["cleared_input_tokens"],
        }
    ]
    assert applied[0]["cleared_input_tokens"] > 0
    default = request(conversation(4, thinking=True), {"type": "clear_thinking_20251015"})
    assert edit(default)[1][0]["cleared_thinking_turns"] == 3


@pytest.mark.parametrize("keep", ["all", {"type": "all"}])
def test_keeping_all_thinking_changes_nothing(keep: object) -> None:
    original = request(conversation(4, thinking=True), {"type": "clear_thinking_20251015", "keep": keep})
    assert edit(original) == (original, [])


def test_edits_apply_in_order_and_each_is_reported() -> None:
    original = request(
        conversation(4, thinking=True),
        {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 2}},
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "tool_uses", "value": 3},
            "keep": {"type": "tool_uses", "value": 3},
        },
    )
    _edited, applied = edit(original)
    assert [(a["type"], a.get("cleared_thinking_turns", a.get("cleared_tool_uses"))) for a in applied] == [
        ("clear_thinking_20251015", 2),
        ("clear_tool_uses_20250919", 1),
    ]


@pytest.mark.parametrize(
    ("management", "message"),
    [
        (
            {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 1000}}]},
            "edits.0.trigger.value: Input should be greater than or equal to 50000",
        ),
        ({"edits": [{"type": "clear_everything"}]}, "context_management.edits.0.type"),
        (
            {"edits": [{"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 0}}]},
            "edits.0.keep",
        ),
        (
            {"edits": [{"type": "clear_tool_uses_20250919", "trigger": {"type": "messages", "value": 3}}]},
            "edits.0.trigger",
        ),
        ({"edits": [{"type": "clear_tool_uses_20250919", "exclude_tools": "Read"}]}, "edits.0.exclude_tools"),
        ("all", "context_management"),
    ],
)
def test_malformed_or_unknown_edits_are_400s(management: object, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        requested_edits({"model": "claude-x", "context_management": management}, "claude-x")
    assert caught.value.status == 400 and caught.value.error_type == "invalid_request_error"
    assert message in caught.value.message


def test_compaction_is_accepted_and_kept_apart_from_the_clearing_edits() -> None:
    """Every model gets ``compact_20260112``: the gateway runs it (see tests/tools/test_compaction.py)."""
    original = request(
        conversation(2),
        {"type": "compact_20260112", "pause_after_compaction": True},
        {"type": "clear_thinking_20251015", "keep": "all"},
    )
    edits = requested_edits(original, "claude-x")
    assert edits is not None and edits.compaction is not None
    assert edits.compaction.pause_after_compaction and edits.compaction.trigger_tokens == 150_000
    assert [e["type"] for e in edits.edits] == ["clear_thinking_20251015"]
    assert apply_edits(original, edits, 200_000) is original and edits.applied == []


def test_the_stream_reports_applied_edits_in_message_delta() -> None:
    original = request(
        conversation(3),
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "tool_uses", "value": 1},
            "keep": {"type": "tool_uses", "value": 1},
        },
    )
    edits = requested_edits(original, "m")
    assert edits is not None
    apply_edits(original, edits, None)
    translator = ReportingTranslator(prepared().stream_translator(), edits)
    out = b"".join(
        translator.feed(c) for c in frames(chunk({"role": "assistant", "content": "ok"}), chunk({}, "stop"))
    )
    events = decode_events(out + translator.finish())
    for event in events:
        anthropic_validator("MessageStreamEvent").validate(event)
    (delta,) = [e for e in events if e["type"] == "message_delta"]
    assert delta["context_management"] == {"applied_edits": edits.applied}
    assert translator.stop_reason == delta["delta"]["stop_reason"] == "end_turn"  # the wrapped one's
    anthropic_validator("BetaResponseContextManagement").validate(delta["context_management"])

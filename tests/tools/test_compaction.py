"""Server-side compaction's pure parts: the edit's settings, the history the upstream sees, the
summarising request, and the blocks, events and usage the client gets (checked against Anthropic's
spec and the official SDK's beta types and stream accumulator)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import anthropic
import orjson
import pytest
from anthropic.types.beta import BetaMessage, BetaUsage

from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError
from anygate.tools.compaction import (
    BETA,
    DEFAULT_TRIGGER_TOKENS,
    PAUSE_STOP_REASON,
    SUMMARY_MAX_TOKENS,
    SUMMARY_PREAMBLE,
    SUMMARY_PROMPT,
    CompactionSettings,
    compacted_history,
    compaction_block,
    compaction_events,
    compaction_usage,
    continued_request,
    needs_compaction,
    summary_block,
    summary_request,
    summary_text,
)
from anygate.tools.context_editing import apply_edits, requested_edits
from tests.fakes.upstream import FakeUpstream, Sse
from tests.providers.openai_support import anthropic_validator


def settings_of(*edits: dict[str, Any]) -> CompactionSettings:
    parsed = requested_edits({"context_management": {"edits": list(edits)}}, "m")
    assert parsed is not None and parsed.compaction is not None
    return parsed.compaction


def request(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt", "max_tokens": 1000, "messages": messages, **extra}


def summary_turn(summary: str) -> dict[str, Any]:
    return {"type": "text", "text": f"{SUMMARY_PREAMBLE}\n\n{summary}"}


def assert_alternates(messages: list[dict[str, Any]]) -> None:
    roles = [m["role"] for m in messages]
    assert roles[0] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles)), roles


def no_compaction_blocks(messages: list[dict[str, Any]]) -> bool:
    return not any(
        isinstance(b, dict) and b.get("type") == "compaction"
        for m in messages
        if isinstance(m["content"], list)
        for b in m["content"]
    )


# --- the edit -----------------------------------------------------------------------------------


def test_the_edit_alone_gets_anthropics_defaults() -> None:
    edits = requested_edits({"context_management": {"edits": [{"type": "compact_20260112"}]}}, "m")
    assert edits is not None
    assert edits.compaction == CompactionSettings(DEFAULT_TRIGGER_TOKENS, None, False)
    assert edits.edits == [] and edits.token_triggers() == [150_000]


def test_every_setting_is_read_and_clearing_edits_still_apply_on_their_own() -> None:
    compact = {
        "type": "compact_20260112",
        "trigger": {"type": "input_tokens", "value": 50_000},
        "pause_after_compaction": True,
        "instructions": "Keep the file list.",
    }
    clear = {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "u", "signature": "s"}]},
        {"role": "user", "content": "c"},
    ]
    original = {"context_management": {"edits": [clear, compact]}, "messages": messages}
    edits = requested_edits(original, "m")
    assert edits is not None
    assert edits.compaction == CompactionSettings(50_000, "Keep the file list.", True)
    assert edits.edits == [clear]
    assert edits.token_triggers() == [50_000]
    apply_edits(original, edits, None)
    assert [a["type"] for a in edits.applied] == ["clear_thinking_20251015"]


def test_a_null_trigger_or_empty_instructions_mean_the_defaults() -> None:
    assert settings_of({"type": "compact_20260112", "trigger": None, "instructions": ""}) == (
        CompactionSettings()
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"trigger": {"type": "input_tokens", "value": 49_999}},
            "context_management.edits.0.trigger.value: Input should be greater than or equal to 50000",
        ),
        (
            {"trigger": {"type": "tool_uses", "value": 60_000}},
            "context_management.edits.0.trigger.type: Input should be 'input_tokens'",
        ),
        (
            {"trigger": {"type": "input_tokens", "value": "60000"}},
            "context_management.edits.0.trigger.value: Input should be a valid integer",
        ),
        (
            {"trigger": {"type": "input_tokens", "value": True}},
            "context_management.edits.0.trigger.value: Input should be a valid integer",
        ),
        ({"trigger": 60_000}, "context_management.edits.0.trigger: Input should be a valid dictionary"),
        ({"instructions": ["x"]}, "context_management.edits.0.instructions: Input should be a valid string"),
        (
            {"pause_after_compaction": "yes"},
            "context_management.edits.0.pause_after_compaction: Input should be a valid boolean",
        ),
        (
            {"keep": {"type": "tool_uses", "value": 3}},
            "context_management.edits.0.keep: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_settings_are_400s_worded_as_anthropic_words_them(edit: dict[str, Any], message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        requested_edits({"context_management": {"edits": [{"type": "compact_20260112", **edit}]}}, "m")
    assert caught.value.status == 400 and caught.value.error_type == "invalid_request_error"
    assert caught.value.message.startswith(message)


def test_two_compaction_edits_are_a_400() -> None:
    with pytest.raises(GatewayError) as caught:
        settings_of({"type": "compact_20260112"}, {"type": "compact_20260112"})
    assert caught.value.status == 400
    assert caught.value.message.startswith("context_management.edits.1")


@pytest.mark.parametrize(("tokens", "expected"), [(59_999, False), (60_000, True), (250_000, True)])
def test_compaction_is_needed_from_the_trigger_on(tokens: int, expected: bool) -> None:
    settings = settings_of({"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 60_000}})
    assert needs_compaction(settings, tokens) is expected


# --- the history the upstream sees ----------------------------------------------------------------


def test_a_conversation_without_compaction_blocks_is_left_as_it_is() -> None:
    original = request([{"role": "user", "content": "hi"}])
    assert compacted_history(original) is original


def test_everything_before_the_compaction_block_is_dropped_and_what_follows_it_stays() -> None:
    block = {"type": "compaction", "content": "S1: the user wants a parser.", "encrypted_content": None}
    messages = [
        {"role": "user", "content": "Write a parser."},
        {"role": "assistant", "content": [{"type": "text", "text": "Reading the grammar."}]},
        {"role": "user", "content": "Go on."},
        {
            "role": "assistant",
            "content": [
                block,
                {"type": "text", "text": "Continuing."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "g.txt"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "g"}]},
    ]
    original = request(messages, system="You write code.", tools=[{"name": "Read", "input_schema": {}}])
    before = copy.deepcopy(original)
    edited = compacted_history(original)
    assert original == before  # the client's request is not mutated
    assert edited["messages"] == [
        {"role": "user", "content": [summary_turn("S1: the user wants a parser.")]},
        {"role": "assistant", "content": messages[3]["content"][1:]},
        messages[4],
    ]
    assert edited["system"] == "You write code." and edited["tools"] == original["tools"]
    assert compacted_history(edited) is edited  # nothing left to compact: idempotent


def test_a_compaction_block_alone_merges_its_summary_into_the_next_user_turn() -> None:
    """After ``pause_after_compaction`` the client sends the block alone, then its own messages."""
    messages = [
        {"role": "user", "content": "Old question."},
        {"role": "assistant", "content": [{"type": "compaction", "content": "S", "encrypted_content": None}]},
        {"role": "user", "content": "Latest question."},
        {"role": "assistant", "content": "An answer."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks."}]},
    ]
    edited = compacted_history(request(messages))["messages"]
    assert edited == [
        {"role": "user", "content": [summary_turn("S"), {"type": "text", "text": "Latest question."}]},
        messages[3],
        messages[4],
    ]
    assert_alternates(edited)


def test_of_two_compaction_blocks_the_last_wins() -> None:
    messages = [
        {"role": "user", "content": "Task."},
        {
            "role": "assistant",
            "content": [{"type": "compaction", "content": "First summary."}, {"type": "text", "text": "a"}],
        },
        {"role": "user", "content": "More."},
        {
            "role": "assistant",
            "content": [{"type": "compaction", "content": "Second summary."}, {"type": "text", "text": "b"}],
        },
        {"role": "user", "content": "Again."},
    ]
    edited = compacted_history(request(messages))["messages"]
    assert edited == [
        {"role": "user", "content": [summary_turn("Second summary.")]},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
        {"role": "user", "content": "Again."},
    ]
    assert "First summary." not in orjson.dumps(edited).decode()


def test_a_failed_compaction_is_a_no_op() -> None:
    failed = {"type": "compaction", "content": None, "encrypted_content": None}
    only_failed = [
        {"role": "user", "content": "Task."},
        {"role": "assistant", "content": [failed, {"type": "text", "text": "Answer."}]},
        {"role": "user", "content": "Next."},
    ]
    assert compacted_history(request(only_failed))["messages"] == [
        {"role": "user", "content": "Task."},
        {"role": "assistant", "content": [{"type": "text", "text": "Answer."}]},
        {"role": "user", "content": "Next."},
    ]
    # A failed compaction after a good one changes nothing: the good one still wins, and a message that
    # held only the failed block disappears, its neighbours joined.
    after_good = [
        {"role": "user", "content": "Task."},
        {
            "role": "assistant",
            "content": [{"type": "compaction", "content": "Good."}, {"type": "text", "text": "a"}],
        },
        {"role": "user", "content": "Next."},
        {"role": "assistant", "content": [failed]},
        {"role": "user", "content": "Last."},
    ]
    edited = compacted_history(request(after_good))["messages"]
    assert edited == [
        {"role": "user", "content": [summary_turn("Good.")]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": [{"type": "text", "text": "Next."}, {"type": "text", "text": "Last."}]},
    ]
    assert no_compaction_blocks(edited)


def test_a_compaction_block_in_a_user_turn_and_its_cache_breakpoint() -> None:
    cache = {"type": "ephemeral"}
    messages = [
        {"role": "user", "content": "Old."},
        {"role": "assistant", "content": "Old answer."},
        {
            "role": "user",
            "content": [
                {"type": "compaction", "content": "S", "cache_control": cache},
                {"type": "text", "text": "New question."},
            ],
        },
    ]
    edited = compacted_history(request(messages))["messages"]
    assert edited == [
        {
            "role": "user",
            "content": [summary_block("S", cache), {"type": "text", "text": "New question."}],
        }
    ]
    assert edited[0]["content"][0]["cache_control"] == cache


def test_a_malformed_history_is_left_for_validation_to_refuse() -> None:
    messages: list[Any] = [
        "junk",
        {"role": "assistant", "content": [{"type": "compaction", "content": None}]},
        7,
    ]
    assert compacted_history(request(messages))["messages"] == ["junk", 7]
    assert summary_request(request([7]), CompactionSettings())["messages"][0] == 7


# --- the summarising call -------------------------------------------------------------------------


def client_request(**extra: Any) -> dict[str, Any]:
    return request(
        [
            {"role": "user", "content": "Fix the bug."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "code"}],
            },
        ],
        system=[{"type": "text", "text": "You are a coding agent."}],
        tools=[{"name": "Read", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto"},
        thinking={"type": "enabled", "budget_tokens": 2000},
        temperature=0.2,
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        stream=True,
        context_management={"edits": [{"type": "compact_20260112"}]},
        **extra,
    )


def test_the_summary_request_asks_the_same_model_for_text_only() -> None:
    original = client_request()
    body = summary_request(original, CompactionSettings())
    assert set(body) == {"model", "max_tokens", "stream", "messages", "system", "metadata"}
    assert body["model"] == "gpt" and body["stream"] is False and body["max_tokens"] == SUMMARY_MAX_TOKENS
    assert body["system"] == original["system"] and body["metadata"] == {"user_id": "u1"}
    # The prompt joins the last user turn, after its tool result, so roles keep alternating.
    assert body["messages"][:2] == original["messages"][:2]
    assert body["messages"][2]["content"] == [
        *original["messages"][2]["content"],
        {"type": "text", "text": SUMMARY_PROMPT},
    ]
    assert_alternates(body["messages"])
    anthropic_validator("CreateMessageParams").validate(body)
    assert original == client_request()  # not mutated


def test_instructions_replace_the_default_prompt() -> None:
    body = summary_request(client_request(), CompactionSettings(instructions="List the files touched."))
    assert body["messages"][-1]["content"][-1] == {"type": "text", "text": "List the files touched."}
    assert SUMMARY_PROMPT not in orjson.dumps(body).decode()


def test_the_summary_request_summarises_an_earlier_summary_and_follows_an_assistant_turn() -> None:
    original = request(
        [
            {"role": "user", "content": "Old."},
            {
                "role": "assistant",
                "content": [{"type": "compaction", "content": "Earlier."}, {"type": "text", "text": "ok"}],
            },
        ]
    )
    messages = summary_request(original, CompactionSettings())["messages"]
    assert messages == [
        {"role": "user", "content": [summary_turn("Earlier.")]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": SUMMARY_PROMPT}]},
    ]


def answer(*texts: str, stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "gpt",
        "content": [{"type": "text", "text": t} for t in texts],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 10},
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (answer("Let me summarise.\n<summary>\nThe task.\n</summary>\nDone."), "The task."),
        (answer("<summary>Part one", " and two</summary>"), "Part one and two"),
        (answer("Plain summary, no tags.  "), "Plain summary, no tags."),
        (answer("<summary>Cut short at the lim", stop_reason="max_tokens"), "Cut short at the lim"),
        (answer("   "), None),
        (answer("<summary> </summary>"), None),
        (answer("I can't help with that.", stop_reason="refusal"), None),
        (
            {
                **answer(),
                "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}],
                "stop_reason": "tool_use",
            },
            None,
        ),
    ],
)
def test_summary_text(message: dict[str, Any], expected: str | None) -> None:
    assert summary_text(message) == expected


def test_the_answer_continues_from_exactly_the_history_the_next_request_gives() -> None:
    original = client_request()
    continued = continued_request(original, "The summary.")
    assert continued["messages"] == [{"role": "user", "content": [summary_turn("The summary.")]}]
    assert continued["tools"] == original["tools"]
    # The client appends the answer (compaction block first) and a new user turn.
    next_request = {
        **original,
        "messages": [
            *original["messages"],
            {
                "role": "assistant",
                "content": [compaction_block("The summary."), {"type": "text", "text": "Fixed."}],
            },
            {"role": "user", "content": "Thanks."},
        ],
    }
    later = compacted_history(next_request)["messages"]
    assert later[: len(continued["messages"])] == continued["messages"]
    assert continued_request(original, None) is original


# --- what the client gets -------------------------------------------------------------------------


def events_of(summary: str | None, *, pause: bool = False) -> list[dict[str, Any]]:
    compaction = {"input_tokens": 180_000, "output_tokens": 3_000}
    reply = None if pause else {"input_tokens": 3_200, "output_tokens": 7, "cache_read_input_tokens": 0}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_c",
                "type": "message",
                "role": "assistant",
                "model": "gpt",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                # The beta schema has ``iterations`` required (and nullable): known only at the end.
                "usage": {"input_tokens": 0, "output_tokens": 0, "iterations": None},
            },
        },
        *compaction_events(0, summary),
    ]
    if not pause:
        events += [
            {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Going on."}},
            {"type": "content_block_stop", "index": 1},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": PAUSE_STOP_REASON if pause else "end_turn", "stop_sequence": None},
            "usage": compaction_usage(compaction, reply),
        },
        {"type": "message_stop"},
    ]
    return events


def sdk_final_message(upstream: FakeUpstream, events: list[dict[str, Any]]) -> BetaMessage:
    """The official SDK's own accumulation of the events, served as Anthropic's API streams them."""
    frames = [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]
    upstream.script("/v1/messages", Sse(frames, headers={"content-type": "text/event-stream"}))
    client = anthropic.Anthropic(api_key="k", base_url=upstream.url, max_retries=0)
    try:
        with client.beta.messages.stream(
            model="gpt", max_tokens=10, messages=[{"role": "user", "content": "hi"}], betas=[BETA]
        ) as stream:
            return stream.get_final_message()
    finally:
        client.close()


@pytest.mark.parametrize("summary", ["The summary so far.", None])
@pytest.mark.parametrize("pause", [False, True])
def test_the_stream_accumulates_to_the_block_here_and_in_the_sdk(
    upstream: FakeUpstream, summary: str | None, pause: bool
) -> None:
    events = events_of(summary, pause=pause)
    for event in events:
        anthropic_validator("BetaMessageStreamEvent").validate(event)
    message = accumulate(events)
    assert message["content"][0] == compaction_block(summary)
    assert message["stop_reason"] == ("compaction" if pause else "end_turn")
    anthropic_validator("BetaMessage").validate(message)
    parsed = BetaMessage.model_validate(message)
    streamed = sdk_final_message(upstream, events)
    assert streamed.content[0].model_dump(exclude_none=True) == parsed.content[0].model_dump(
        exclude_none=True
    )
    assert streamed.content[0].type == "compaction" and streamed.content[0].content == summary
    assert streamed.usage.iterations == parsed.usage.iterations
    assert streamed.stop_reason == parsed.stop_reason


def test_usage_lists_the_compaction_first_and_keeps_it_out_of_the_top_level() -> None:
    summariser = {"input_tokens": 180_000, "output_tokens": 3_000, "cache_read_input_tokens": 5}
    reply = {
        "input_tokens": 3_200,
        "output_tokens": 40,
        "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0},
    }
    usage = compaction_usage(summariser, reply)
    assert usage["input_tokens"] == 3_200 and usage["output_tokens"] == 40
    assert usage["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}
    assert [(i["type"], i["input_tokens"], i["output_tokens"]) for i in usage["iterations"]] == [
        ("compaction", 180_000, 3_000),
        ("message", 3_200, 40),
    ]
    assert usage["iterations"][0]["cache_read_input_tokens"] == 5
    anthropic_validator("BetaUsage").validate(usage)
    assert BetaUsage.model_validate(usage).iterations is not None

    paused = compaction_usage(summariser, None)
    assert (paused["input_tokens"], paused["output_tokens"]) == (0, 0)
    assert [i["type"] for i in paused["iterations"]] == ["compaction"]
    anthropic_validator("BetaUsage").validate(paused)

    looped = {**reply, "iterations": [{"type": "message", "input_tokens": 1, "output_tokens": 2}] * 2}
    assert [i["type"] for i in compaction_usage(summariser, looped)["iterations"]] == [
        "compaction",
        "message",
        "message",
    ]


def test_a_paused_message_holding_the_block_is_a_valid_beta_message() -> None:
    message = {
        "id": "msg_p",
        "type": "message",
        "role": "assistant",
        "model": "gpt",
        "content": [compaction_block("Summary.")],
        "stop_reason": PAUSE_STOP_REASON,
        "stop_sequence": None,
        "usage": compaction_usage({"input_tokens": 60_000, "output_tokens": 900}, None),
    }
    anthropic_validator("BetaMessage").validate(message)
    parsed = BetaMessage.model_validate(message)
    assert parsed.stop_reason == "compaction"
    block = parsed.content[0]
    assert block.type == "compaction" and block.content == "Summary." and block.encrypted_content is None
    # …and sent back as a request block, it is what the spec's request schema accepts.
    anthropic_validator("BetaRequestCompactionBlock").validate(compaction_block("Summary."))

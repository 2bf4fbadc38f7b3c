"""Tool arguments that upstream models cut off or mangle still become JSON objects, streamed or not."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from anygate.protocol.accumulate import accumulate
from anygate.providers.tool_json import completion_suffix, repair_arguments
from tests.providers.openai_support import assert_valid_events, chunk, frames, parse, translate

TRUNCATED: list[tuple[str, dict[str, Any]]] = [
    ('{"city": "Par', {"city": "Par"}),
    ('{"a": 1,', {"a": 1, "_truncated": True}),
    ('{"a"', {"a": None}),
    ('{"a":', {"a": None}),
    ('{"a": tr', {"a": True}),
    ('{"a": 1.', {"a": 1.0}),
    ('{"a": "x\\', {"a": "x\\"}),
    ('{"a": [1, 2,', {"a": [1, 2, None]}),
    ('{"a": {"b": nu', {"a": {"b": None}}),
    ('{"k": "v", "n": {"m": [true, fal', {"k": "v", "n": {"m": [True, False]}}),
    ("{", {}),
]


@pytest.mark.parametrize(("raw", "expected"), TRUNCATED)
def test_completion_suffix_completes_any_cut_off_object(raw: str, expected: dict[str, Any]) -> None:
    suffix = completion_suffix(raw)
    assert suffix is not None and orjson.loads(raw + suffix) == expected


@pytest.mark.parametrize("raw", ["[1]", "hello", '{"a":1} trailing', '{"a" "b"}', "{]"])
def test_completion_suffix_refuses_what_no_suffix_can_fix(raw: str) -> None:
    assert completion_suffix(raw) is None
    assert isinstance(orjson.loads(repair_arguments(raw)), dict)


def test_repair_prefers_dropping_a_trailing_comma() -> None:
    assert orjson.loads(repair_arguments('{"a": 1,')) == {"a": 1}


def _tool_stream(*argument_fragments: str, finish_reason: str = "length") -> list[dict[str, Any]]:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    pieces = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in argument_fragments]
    return translate(frames(chunk({"tool_calls": [call]}), *pieces, chunk(finish_reason=finish_reason)))


@pytest.mark.parametrize(("raw", "expected"), TRUNCATED)
def test_a_live_tool_call_cut_off_mid_arguments_is_a_valid_stream(raw: str, expected: dict[str, Any]) -> None:
    fragments = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    message = assert_valid_events(_tool_stream(*fragments))
    assert message["content"][0]["input"] == expected
    assert message["stop_reason"] == "max_tokens"


@pytest.mark.parametrize("raw", ["[1, 2]", "just words", "  42"])
def test_live_arguments_that_are_not_an_object_are_held_and_repaired(raw: str) -> None:
    events = _tool_stream(raw[:2], raw[2:], finish_reason="tool_calls")
    message = assert_valid_events(events)
    assert message["content"][0]["input"] == orjson.loads(repair_arguments(raw))
    deltas = [e for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) == 1, "held until close, then sent whole"
    whole = parse(
        {
            "choices": [
                {
                    "message": {
                        "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": raw}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    assert whole["content"] == accumulate(events)["content"]

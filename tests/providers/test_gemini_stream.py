"""Gemini answers → Anthropic events and Messages: real recordings in every chunking, signatures sealed
in place, finish reasons, usage, cut-off streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError, UpstreamFailure
from anygate.providers.google.signatures import unseal
from tests.providers.gemini_support import (
    ANSWER_IDS,
    ANSWER_RECORDINGS,
    GEMINI,
    STREAM_IDS,
    STREAM_RECORDINGS,
    parse,
    prepare,
    stream_bytes,
    stream_payloads,
    stream_to_answer,
    translate,
)
from tests.providers.openai_support import SIGNER, assert_valid_events

REQUEST = {"model": "client-model", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def carried(message: dict[str, Any], backend: str = "gemini") -> list[tuple[str, str]]:
    """(placement, signature) of every thinking block that carries a Gemini signature, in order."""
    out = []
    for block in message["content"]:
        if block["type"] == "thinking":
            found = unseal(SIGNER, backend, block["signature"])
            if found is not None:
                out.append((found.on, found.signature))
    return out


def upstream_signatures(data: bytes) -> list[str]:
    """The signatures Gemini sent that must be carried: all but the one on an empty part closing a
    text answer (see ``CandidateAssembler.finish``)."""
    parts = [
        part
        for payload in stream_payloads(data)
        for candidate in payload.get("candidates") or []
        for part in (candidate.get("content") or {}).get("parts") or []
    ]
    signed = [part["thoughtSignature"] for part in parts if part.get("thoughtSignature")]
    closing = parts[-1] if parts else {}
    if (
        closing.get("thoughtSignature")
        and not closing.get("text")
        and not any("functionCall" in p for p in parts)
    ):
        signed.pop()
    return signed


@pytest.mark.parametrize("path", STREAM_RECORDINGS, ids=STREAM_IDS)
def test_recorded_streams_give_valid_events_equal_to_the_whole_answer(path: Path) -> None:
    data = stream_bytes(path)
    streamed = assert_valid_events(translate([data]))
    assert parse(stream_to_answer(data)) == streamed
    assert streamed["id"] == "msg_0123abcd" and streamed["model"] == "client-model"
    # every signature Gemini sent is carried, in order, exactly once
    assert [signature for _, signature in carried(streamed)] == upstream_signatures(data)


@pytest.mark.parametrize("path", STREAM_RECORDINGS, ids=STREAM_IDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_every_chunking_gives_the_same_events(path: Path, data: st.DataObject) -> None:
    raw = stream_bytes(path)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=12)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert translate(pieces) == translate([raw])


EXPECTED = {
    "google-text": ("end_turn", ["text"], []),
    "google-tool-call": ("tool_use", ["thinking", "tool_use"], ["call"]),
    "google-reasoning-gemini3": ("end_turn", ["text"], []),
    "pydantic-signed-call-stream": ("tool_use", ["thinking", "tool_use"], ["call"]),
    "pydantic-vertex-signed-text-stream": ("end_turn", ["thinking", "text"], ["text"]),
    "pydantic-function-call-stream": ("tool_use", ["tool_use"], []),
    "pydantic-text-stream": ("end_turn", ["text"], []),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recording_outcomes(name: str) -> None:
    path = next(p for p in STREAM_RECORDINGS if p.name.split(".")[0] == name)
    message = accumulate(translate([stream_bytes(path)]))
    stop_reason, kinds, placements = EXPECTED[name]
    assert message["stop_reason"] == stop_reason
    assert [block["type"] for block in message["content"]] == kinds
    assert [on for on, _ in carried(message)] == placements
    for block in message["content"]:
        if block["type"] == "thinking" and carried(message):
            assert block["signature"].startswith("anygate.v2.gemini.")


def test_thought_parts_become_thinking_blocks() -> None:
    message = accumulate(translate([(GEMINI / "pydantic-thinking-stream.sse").read_bytes()]))
    assert message["content"][0]["type"] == "thinking"
    assert message["content"][0]["thinking"].startswith("**Clarifying User Goals**")
    assert message["content"][-1]["type"] == "text"


def test_usage_counts_thoughts_and_the_final_chunk_wins() -> None:
    data = (GEMINI / "pydantic-usage-grows-at-end-stream.sse").read_bytes()
    events = translate([data])
    start = events[0]["message"]["usage"]
    final = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert start["input_tokens"] == 55  # exact from the first chunk, not an estimate
    assert final["input_tokens"] == 257 and final["output_tokens"] == 8
    thinking = accumulate(translate([stream_bytes(GEMINI / "google-tool-call.chunks.txt")]))
    assert thinking["usage"]["output_tokens"] == 15 + 45  # candidates + thoughts


def test_cached_tokens_are_cache_reads() -> None:
    answer = stream_to_answer(stream_bytes(GEMINI / "google-text.chunks.txt"))
    answer["usageMetadata"] = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "candidatesTokenCount": 5,
    }
    usage = parse(answer)["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["output_tokens"]) == (40, 60, 5)


@pytest.mark.parametrize(
    ("reason", "stop_reason"),
    [
        ("MAX_TOKENS", "max_tokens"),
        ("SAFETY", "refusal"),
        ("RECITATION", "refusal"),
        ("BLOCKLIST", "refusal"),
        ("PROHIBITED_CONTENT", "refusal"),
        ("SPII", "refusal"),
        ("STOP", "end_turn"),
        ("SOMETHING_NEW", "end_turn"),
    ],
)
def test_finish_reasons(reason: str, stop_reason: str) -> None:
    answer = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason}]
    }
    assert parse(answer)["stop_reason"] == stop_reason


def test_recorded_whole_answers() -> None:
    outcomes = {
        name: parse(orjson.loads(path.read_bytes()))
        for name, path in zip(ANSWER_IDS, ANSWER_RECORDINGS, strict=True)
    }
    assert outcomes["pydantic-max-tokens"]["stop_reason"] == "max_tokens"
    assert outcomes["pydantic-max-tokens-empty"]["content"] == []
    assert outcomes["pydantic-safety"]["stop_reason"] == "refusal"
    assert outcomes["pydantic-vertex-prompt-blocked"]["stop_reason"] == "refusal"
    assert outcomes["pydantic-vertex-response-blocked"]["stop_reason"] == "refusal"
    assert outcomes["pydantic-signed-call"]["stop_reason"] == "tool_use"
    assert outcomes["google-text"]["content"][1]["text"].startswith("There are **3**")
    for message in outcomes.values():
        assert message["type"] == "message"


def test_a_stream_without_a_finish_reason_fails() -> None:
    chunks = stream_payloads(stream_bytes(GEMINI / "google-text.chunks.txt"))[:-1]
    with pytest.raises(UpstreamFailure, match="without a finishReason"):
        translate([b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks])


def test_an_error_inside_the_stream_is_raised() -> None:
    error = {"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}
    with pytest.raises(GatewayError) as caught:
        translate([b"data: " + orjson.dumps(error) + b"\r\n\r\n"])
    assert caught.value.status == 529


def test_malformed_function_call_is_a_retryable_failure() -> None:
    answer = {
        "candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL"}]
    }
    with pytest.raises(UpstreamFailure):
        parse(answer)


def test_parallel_calls_keep_the_first_signature_and_only_one_when_parallel_use_is_disabled() -> None:
    parts = [
        {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "SIG1"},
        {"functionCall": {"name": "b", "args": {}}},
    ]
    answer = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    message = parse(answer)
    assert [b["type"] for b in message["content"]] == ["thinking", "tool_use", "tool_use"]
    assert carried(message) == [("call", "SIG1")]
    request = {
        **REQUEST,
        "tools": [{"name": n, "input_schema": {"type": "object"}} for n in ("a", "b")],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }
    single = parse(answer, prepare(request))
    assert [b["type"] for b in single["content"]] == ["thinking", "tool_use"]


def test_vertex_signatures_are_sealed_for_vertex_only() -> None:
    data = (GEMINI / "pydantic-vertex-signed-text-stream.sse").read_bytes()
    message = accumulate(
        translate([data], prepare(REQUEST, backend="vertex", model="gemini-3-flash-preview"))
    )
    assert carried(message, "vertex") and not carried(message, "gemini")

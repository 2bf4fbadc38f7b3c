"""The fixed answers of the fake upstream, shaped like what OpenAI, Anthropic, Gemini and Bedrock really send.

Why realistic shapes: a gateway's per-request cost on the streaming paths is dominated by the number of
upstream chunks it parses and the number of events it emits, so the fake streams have the same chunk
structure as the real services (OpenAI: role chunk, content chunks, finish chunk, usage chunk,
``[DONE]``; Anthropic: message_start, content_block_start, ping, deltas, content_block_stop,
message_delta, message_stop; OpenAI Responses: response.created, in_progress, a reasoning item with its
summary deltas and ``encrypted_content``, a message item with its text deltas, response.completed), with
the field sets the real services include (``logprobs``, ``system_fingerprint``, ``usage`` details, the
whole response object in created/in_progress/completed, ``obfuscation``...), because parsing cost grows
with them.

Gemini streams are separated by ``\\n\\n`` here (Google sends ``\\r\\n\\r\\n``), because the Lua code splits
events at blank lines of that form; SSE decoders take both.

The files written here are read once by the Lua code of the nginx upstream at start-up.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

# The joke is split into 15 content pieces, the size of a short real completion.
FAST_PIECES: tuple[str, ...] = (
    "Why",
    " don't",
    " scientists",
    " trust",
    " atoms",
    "?",
    " Because",
    " they",
    " make",
    " up",
    " everything",
    "!",
    " Want",
    " another",
    " one?",
)
ANSWER_TEXT = "".join(FAST_PIECES)

# (e): one content chunk every 100 ms for 10 s.
SLOW_CHUNKS = 100
SLOW_INTERVAL_S = 0.1

_OPENAI_ID = "chatcmpl-BENCH0123456789abcdefABCDEF"
_OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
_OPENAI_CREATED = 1_760_000_000
_FINGERPRINT = "fp_560af6e559"
_ANTHROPIC_ID = "msg_01BenchFakeUpstream0123456"
_ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
_PROMPT_TOKENS = 15


def _dumps(obj: object) -> str:
    """Compact JSON, as both services send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _slow_pieces() -> list[str]:
    return [f" word{i}" for i in range(SLOW_CHUNKS)]


def _openai_usage(completion_tokens: int) -> dict[str, object]:
    return {
        "prompt_tokens": _PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": _PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_json() -> str:
    """A non-streaming Chat Completions answer."""
    return _dumps(
        {
            "id": _OPENAI_ID,
            "object": "chat.completion",
            "created": _OPENAI_CREATED,
            "model": _OPENAI_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": ANSWER_TEXT,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _openai_usage(len(FAST_PIECES)),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )


def openai_sse(pieces: list[str] | tuple[str, ...]) -> str:
    """A Chat Completions stream with ``stream_options.include_usage`` semantics."""

    def chunk(choices: list[dict[str, object]], usage: dict[str, object] | None) -> str:
        body = {
            "id": _OPENAI_ID,
            "object": "chat.completion.chunk",
            "created": _OPENAI_CREATED,
            "model": _OPENAI_MODEL,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
            "choices": choices,
            "usage": usage,
        }
        return f"data: {_dumps(body)}\n\n"

    def delta(d: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}

    events = [chunk([delta({"role": "assistant", "content": "", "refusal": None})], None)]
    events += [chunk([delta({"content": p})], None) for p in pieces]
    events.append(chunk([delta({}, "stop")], None))
    events.append(chunk([], _openai_usage(len(pieces))))
    events.append("data: [DONE]\n\n")
    return "".join(events)


def _anthropic_usage(output_tokens: int) -> dict[str, object]:
    return {
        "input_tokens": _PROMPT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_json() -> str:
    """A non-streaming Messages answer."""
    return _dumps(
        {
            "id": _ANTHROPIC_ID,
            "type": "message",
            "role": "assistant",
            "model": _ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": ANSWER_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(len(FAST_PIECES)),
        }
    )


def anthropic_sse(pieces: list[str] | tuple[str, ...]) -> str:
    """A Messages stream, event for event what the Anthropic API sends for a text answer."""

    def event(name: str, data: dict[str, object]) -> str:
        return f"event: {name}\ndata: {_dumps({'type': name, **data})}\n\n"

    start_usage = _anthropic_usage(1)
    events = [
        event(
            "message_start",
            {
                "message": {
                    "id": _ANTHROPIC_ID,
                    "type": "message",
                    "role": "assistant",
                    "model": _ANTHROPIC_MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                }
            },
        ),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]
    events += [
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}}) for p in pieces
    ]
    events.append(event("content_block_stop", {"index": 0}))
    events.append(
        event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": _PROMPT_TOKENS,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": len(pieces),
                },
            },
        )
    )
    events.append(event("message_stop", {}))
    return "".join(events)


_GEMINI_MODEL = "gemini-3-flash-preview"
_GEMINI_RESPONSE_ID = "BenchFakeUpstream0123456789"
# A real Gemini 3 stream closes a text answer with an empty text part carrying a thought signature.
_GEMINI_SIGNATURE = "EuQBCuEBAb4+9vu" + "Q0FGRUJBQkVfYmVuY2hfc2lnbmF0dXJlXw" * 8 + "=="


def _gemini_usage(candidates: int) -> dict[str, object]:
    return {
        "promptTokenCount": _PROMPT_TOKENS,
        "candidatesTokenCount": candidates,
        "totalTokenCount": _PROMPT_TOKENS + candidates + 40,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": _PROMPT_TOKENS}],
        "thoughtsTokenCount": 40,
    }


def _gemini_chunk(
    parts: list[dict[str, object]], candidates: int, finish: str | None = None
) -> dict[str, object]:
    candidate: dict[str, object] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": _gemini_usage(candidates),
        "modelVersion": _GEMINI_MODEL,
        "responseId": _GEMINI_RESPONSE_ID,
    }


def gemini_json() -> str:
    """A non-streaming ``generateContent`` answer (the signature on the text part, as Gemini 3 sends it)."""
    part = {"text": ANSWER_TEXT, "thoughtSignature": _GEMINI_SIGNATURE}
    return _dumps(_gemini_chunk([part], len(FAST_PIECES), "STOP"))


def gemini_sse(pieces: list[str] | tuple[str, ...]) -> str:
    """A ``streamGenerateContent?alt=sse`` stream: a chunk per text piece (usage on every one, as
    Gemini sends it), then the signed empty part with the finish reason."""
    events = [_gemini_chunk([{"text": p}], i + 1) for i, p in enumerate(pieces)]
    events.append(_gemini_chunk([{"text": "", "thoughtSignature": _GEMINI_SIGNATURE}], len(pieces), "STOP"))
    return "".join(f"data: {_dumps(e)}\n\n" for e in events)


# --- OpenAI Responses API (a reasoning model with store: false) -------------------------------------

# The reasoning summary, in the pieces the model streams it in (gpt-5-mini with summary "auto").
SUMMARY_PIECES: tuple[str, ...] = (
    "**Choosing",
    " a joke",
    "**\n\n",
    "The user",
    " wants a",
    " short joke.",
    " A classic",
    " science pun",
    " about atoms",
    " is short,",
    " clean and",
    " well known.",
)
SUMMARY_TEXT = "".join(SUMMARY_PIECES)
RESPONSES_MODEL = "gpt-5-mini"
_RESPONSES_MODEL_VERSION = "gpt-5-mini-2025-08-07"
_RESPONSE_ID = "resp_0bench68c42d0fb418819dbfa579f69406b49508fbf9b1584184ff"
_REASONING_ID = "rs_0bench68c42d1d0878819d8266007cd3d1402c08fbf9b1584184ff"
_MESSAGE_ID = "msg_0bench68c42d2e5c48819d9c1f3f0b7c1e4a5d08fbf9b1584184ff"
_REASONING_TOKENS = 64
RESPONSES_OUTPUT_TOKENS = _REASONING_TOKENS + len(FAST_PIECES)
"""``usage.output_tokens`` of the Responses answer (reasoning tokens count as output)."""
_ENCRYPTED_BYTES = 1100
"""The real ``encrypted_content`` of a short reasoning item is ~1.5 KB of base64 (it grows with the
reasoning); the gateway seals it whole into the thinking block's signature."""


def _encrypted_content(seed: int) -> str:
    """A deterministic stand-in for OpenAI's Fernet-style token (``gAAAAAB`` + urlsafe base64)."""
    raw = random.Random(seed).randbytes(_ENCRYPTED_BYTES)
    return "gAAAAAB" + base64.urlsafe_b64encode(raw).decode()


def _obfuscation(i: int) -> str:
    """The padding the API adds to each delta so sizes do not leak the text (varies in length)."""
    return "obWDasWIe898DmJmgODKF"[: 3 + (i * 7) % 15]


def _responses_usage() -> dict[str, object]:
    return {
        "input_tokens": _PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": RESPONSES_OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": _REASONING_TOKENS},
        "total_tokens": _PROMPT_TOKENS + RESPONSES_OUTPUT_TOKENS,
    }


def _reasoning_item(final: bool) -> dict[str, object]:
    """The reasoning item: its ``output_item.added`` copy has an empty summary and an earlier
    ``encrypted_content``; the final one (``output_item.done``, the whole response) has both."""
    return {
        "id": _REASONING_ID,
        "type": "reasoning",
        "encrypted_content": _encrypted_content(2 if final else 1),
        "summary": [{"type": "summary_text", "text": SUMMARY_TEXT}] if final else [],
    }


def _output_text(text: str) -> dict[str, object]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(final: bool) -> dict[str, object]:
    return {
        "id": _MESSAGE_ID,
        "type": "message",
        "status": "completed" if final else "in_progress",
        "content": [_output_text(ANSWER_TEXT)] if final else [],
        "role": "assistant",
    }


def _response_object(final: bool) -> dict[str, object]:
    """The response object as created/in_progress (no output, no usage) or completed carry it."""
    return {
        "id": _RESPONSE_ID,
        "object": "response",
        "created_at": _OPENAI_CREATED,
        "status": "completed" if final else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 2048,
        "max_tool_calls": None,
        "model": _RESPONSES_MODEL_VERSION,
        "output": [_reasoning_item(True), _message_item(True)] if final else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": "4f2b0c1d9e8a7b6c5d4e3f2a1b0c9d8e",
        "reasoning": {"effort": "medium", "summary": "detailed"},
        "safety_identifier": None,
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage() if final else None,
        "user": None,
        "metadata": {},
    }


def responses_json() -> str:
    """A non-streaming Responses answer: the completed response object."""
    return _dumps(_response_object(True))


def responses_sse() -> str:
    """A Responses stream, event for event what the API sends for reasoning then a text answer."""
    events: list[dict[str, object]] = []

    def add(kind: str, **fields: object) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    add("response.created", response=_response_object(False))
    add("response.in_progress", response=_response_object(False))
    add("response.output_item.added", output_index=0, item=_reasoning_item(False))
    at = {"item_id": _REASONING_ID, "output_index": 0, "summary_index": 0}
    add("response.reasoning_summary_part.added", **at, part={"type": "summary_text", "text": ""})
    for i, piece in enumerate(SUMMARY_PIECES):
        add("response.reasoning_summary_text.delta", **at, delta=piece, obfuscation=_obfuscation(i))
    add("response.reasoning_summary_text.done", **at, text=SUMMARY_TEXT)
    add("response.reasoning_summary_part.done", **at, part={"type": "summary_text", "text": SUMMARY_TEXT})
    add("response.output_item.done", output_index=0, item=_reasoning_item(True))
    add("response.output_item.added", output_index=1, item=_message_item(False))
    at = {"item_id": _MESSAGE_ID, "output_index": 1, "content_index": 0}
    add("response.content_part.added", **at, part=_output_text(""))
    for i, piece in enumerate(FAST_PIECES):
        add("response.output_text.delta", **at, delta=piece, logprobs=[], obfuscation=_obfuscation(i))
    add("response.output_text.done", **at, text=ANSWER_TEXT, logprobs=[])
    add("response.content_part.done", **at, part=_output_text(ANSWER_TEXT))
    add("response.output_item.done", output_index=1, item=_message_item(True))
    add("response.completed", response=_response_object(True))
    return "".join(f"event: {e['type']}\ndata: {_dumps(e)}\n\n" for e in events)


# --- AWS Bedrock Runtime (binary event-stream framing) -----------------------------------------------


def _eventstream_encoder() -> Callable[[str, bytes], bytes]:
    """The project's own event-stream encoder (``encode_event`` of the Bedrock provider), loaded from its
    file: that module needs only the standard library, while importing the ``anygate`` package would
    need the gateway's dependencies, which the bench's venv does not have."""
    path = (
        Path(__file__).resolve().parents[2] / "src" / "anygate" / "providers" / "bedrock" / "eventstream.py"
    )
    spec = importlib.util.spec_from_file_location("_bench_bedrock_eventstream", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    encode: Callable[[str, bytes], bytes] = module.encode_event
    return encode


_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
"""Bedrock adds a ``p`` field of padding to each event (its length varies, so sizes do not leak text)."""


def _pad(i: int) -> str:
    return _PADDING[: 4 + (i * 11) % 40]


def bedrock_converse_stream() -> bytes:
    """A ConverseStream answer, event for event what Bedrock sends for a text answer: ``messageStart``,
    a ``contentBlockDelta`` per piece, ``contentBlockStop``, ``messageStop``, then ``metadata`` with
    the usage."""
    encode = _eventstream_encoder()
    events: list[tuple[str, dict[str, object]]] = [("messageStart", {"role": "assistant"})]
    events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in FAST_PIECES]
    events.append(("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(("messageStop", {"stopReason": "end_turn"}))
    usage = {"inputTokens": _PROMPT_TOKENS, "outputTokens": len(FAST_PIECES)}
    usage["totalTokens"] = _PROMPT_TOKENS + len(FAST_PIECES)
    events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": 412}}))
    return b"".join(
        encode(kind, _dumps({**payload, "p": _pad(i)}).encode()) for i, (kind, payload) in enumerate(events)
    )


def bedrock_invoke_stream() -> bytes:
    """An InvokeModelWithResponseStream answer of Claude: each Anthropic event of ``anthropic_sse`` in
    a ``chunk`` message as base64 ``bytes``, with Bedrock's invocation metrics added to
    ``message_stop``."""
    encode = _eventstream_encoder()
    frames: list[bytes] = []
    for i, event in enumerate(anthropic_sse(FAST_PIECES).split("\n\n")):
        data = next((line[6:] for line in event.split("\n") if line.startswith("data: ")), None)
        if data is None:
            continue
        obj = json.loads(data)
        if obj["type"] == "message_stop":
            obj["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": _PROMPT_TOKENS,
                "outputTokenCount": len(FAST_PIECES),
                "invocationLatency": 412,
                "firstByteLatency": 198,
            }
        raw = base64.b64encode(_dumps(obj).encode()).decode()
        frames.append(encode("chunk", _dumps({"bytes": raw, "p": _pad(i)}).encode()))
    return b"".join(frames)


def write_all(directory: Path) -> None:
    """Write every fixed answer where the nginx Lua code loads them from.

    Stream files hold whole SSE events separated by a blank line; the Lua code splits them at
    ``\\n\\n`` and writes one event per flush. The slow files keep the same shape with
    ``SLOW_CHUNKS`` content chunks; the Lua code sleeps ``SLOW_INTERVAL_S`` before each one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "openai.json": openai_json(),
        "openai.sse": openai_sse(FAST_PIECES),
        "openai_slow.sse": openai_sse(_slow_pieces()),
        "anthropic.json": anthropic_json(),
        "anthropic.sse": anthropic_sse(FAST_PIECES),
        "anthropic_slow.sse": anthropic_sse(_slow_pieces()),
        "gemini.json": gemini_json(),
        "gemini.sse": gemini_sse(FAST_PIECES),
        "gemini_slow.sse": gemini_sse(_slow_pieces()),
        "responses.json": responses_json(),
        "responses.sse": responses_sse(),
    }
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    # Event-stream answers: whole binary messages back to back; the Lua code splits them by the length
    # in each message's prelude.
    (directory / "bedrock_converse.eventstream").write_bytes(bedrock_converse_stream())
    (directory / "bedrock_invoke.eventstream").write_bytes(bedrock_invoke_stream())

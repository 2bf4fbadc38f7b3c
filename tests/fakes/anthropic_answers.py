"""Anthropic-shaped answers for fake upstreams: a Message, its SSE stream, and error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from anygate.protocol.sse import encode_event


def message(text: str, *, model: str = "claude-upstream", message_id: str = "msg_fake") -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def stream_frames(text: str, *, pieces: int = 3) -> list[bytes]:
    """A complete Anthropic stream answering ``text``, one SSE frame per chunk."""
    size = max(1, len(text) // pieces)
    parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    start = message("")
    start["content"] = []
    start["stop_reason"] = None
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}
          for part in parts),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return [encode_event(e) for e in events]


def error(error_type: str, text: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": text}})

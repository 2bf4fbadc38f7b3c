"""Fold a stream of Anthropic events into the final Message, rejecting events in the wrong order.

This is the gateway's definition of a well-formed stream: every translator's output is checked against
it in tests, and non-streaming answers are built by running the same events through it, so streaming and
non-streaming can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson


class StreamOrderError(ValueError):
    """An event arrived that a well-formed Anthropic stream cannot contain at that point."""


class MessageAccumulator:
    """Applies events one by one; :attr:`message` is the snapshot so far."""

    __slots__ = ("_json_parts", "_open_index", "finished", "message")

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.finished = False
        self._open_index: int | None = None
        self._json_parts: dict[int, list[str]] = {}

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event; raise :class:`StreamOrderError` when it cannot come now."""
        kind = event.get("type")
        if kind == "ping":
            return
        if kind == "error":
            raise StreamOrderError(f"stream carried an error: {event.get('error')}")
        if self.finished:
            raise StreamOrderError(f"{kind} after message_stop")
        if kind == "message_start":
            if self.message is not None:
                raise StreamOrderError("second message_start")
            # Copies of exactly what the reducer mutates (this runs on every non-streaming answer, so no
            # deepcopy): the message, its usage and, per block, the block and its citations.
            self.message = {**event["message"], "usage": dict(event["message"].get("usage") or {})}
            if self.message.get("content"):
                raise StreamOrderError("message_start must carry empty content")
            self.message["content"] = []
            return
        message = self.message
        if message is None:
            raise StreamOrderError(f"{kind} before message_start")
        content: list[dict[str, Any]] = message["content"]
        if kind == "content_block_start":
            index = event["index"]
            if self._open_index is not None:
                raise StreamOrderError(f"block {index} started while block {self._open_index} is open")
            if index != len(content):
                raise StreamOrderError(f"block index {index} is not the next position {len(content)}")
            block = dict(event["content_block"])
            if isinstance(block.get("citations"), list):
                block["citations"] = list(block["citations"])
            content.append(block)
            self._open_index = index
        elif kind == "content_block_delta":
            index = event["index"]
            if index != self._open_index:
                raise StreamOrderError(f"delta for block {index}, which is not open")
            self._apply_delta(content[index], index, event["delta"])
        elif kind == "content_block_stop":
            index = event["index"]
            if index != self._open_index:
                raise StreamOrderError(f"stop for block {index}, which is not open")
            self._close(content[index], index)
            self._open_index = None
        elif kind == "message_delta":
            if self._open_index is not None:
                raise StreamOrderError("message_delta while a block is open")
            delta = event.get("delta", {})
            message["stop_reason"] = delta.get("stop_reason")
            message["stop_sequence"] = delta.get("stop_sequence")
            for key, value in (event.get("usage") or {}).items():
                if value is not None:
                    message.setdefault("usage", {})[key] = value
            if event.get("context_management") is not None:
                message["context_management"] = event["context_management"]
        elif kind == "message_stop":
            if self._open_index is not None:
                raise StreamOrderError("message_stop while a block is open")
            self.finished = True
        else:
            raise StreamOrderError(f"unknown event type {kind!r}")

    def _apply_delta(self, block: dict[str, Any], index: int, delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and block["type"] == "text":
            block["text"] += delta["text"]
        elif kind == "input_json_delta" and block["type"] in ("tool_use", "server_tool_use"):
            self._json_parts.setdefault(index, []).append(delta["partial_json"])
        elif kind == "thinking_delta" and block["type"] == "thinking":
            block["thinking"] += delta["thinking"]
        elif kind == "signature_delta" and block["type"] == "thinking":
            block["signature"] = block.get("signature", "") + delta["signature"]
        elif kind == "citations_delta" and block["type"] == "text":
            block.setdefault("citations", []).append(delta["citation"])
        elif kind == "compaction_delta" and block["type"] == "compaction":
            # Replaces rather than appends, as the official SDKs do: the summary comes whole in one delta.
            block["content"] = delta.get("content")
            block["encrypted_content"] = delta.get("encrypted_content")
        else:
            raise StreamOrderError(f"{kind} cannot apply to a {block['type']} block")

    def _close(self, block: dict[str, Any], index: int) -> None:
        parts = self._json_parts.pop(index, None)
        if parts is not None:
            raw = "".join(parts)
            if raw:
                parsed = orjson.loads(raw)
                if not isinstance(parsed, dict):
                    raise StreamOrderError(f"tool input of block {index} is not a JSON object")
                block["input"] = parsed


def accumulate(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The final Message of a complete stream; raises :class:`StreamOrderError` if it is not one."""
    accumulator = MessageAccumulator()
    for event in events:
        accumulator.apply(event)
    if accumulator.message is None or not accumulator.finished:
        raise StreamOrderError("stream ended without message_stop")
    return accumulator.message

"""Fold a stream of Anthropic events into the final Message, rejecting events in the wrong order.

This is the gateway's definition of a well-formed stream: every translator's output is checked against
it in tests, and non-streaming answers are built by running the same events through it, so streaming and
non-streaming can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

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


def message_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream of events whose :func:`accumulate` is ``message``: the inverse, for code that reads
    every answer as events (the server-tool loop reads JSON answers and streams alike).

    Text, thinking and tool inputs arrive as one delta each, the way a streaming API would send them;
    other blocks (results, redacted thinking) arrive whole in their ``content_block_start``.
    """
    head = {key: value for key, value in message.items() if key not in _DELTA_KEYS}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**head, "content": [], "stop_reason": None, "stop_sequence": None},
        }
    ]
    for index, block in enumerate(message.get("content") or []):
        start, deltas = _block_events(block)
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events.extend({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas)
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    end: dict[str, Any] = {"type": "message_delta", "delta": delta, "usage": message.get("usage") or {}}
    if message.get("context_management") is not None:
        end["context_management"] = message["context_management"]
    events.append(end)
    events.append({"type": "message_stop"})
    return events


_DELTA_KEYS: Final = frozenset({"content", "stop_reason", "stop_sequence", "context_management"})


def _block_events(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    kind = block.get("type")
    if kind == "text":
        citations = block.get("citations")
        deltas = [{"type": "citations_delta", "citation": c} for c in citations or ()]
        start = {**block, "text": ""}
        if isinstance(citations, list):
            start["citations"] = []
        return start, [*deltas, {"type": "text_delta", "text": block["text"]}]
    if kind in ("tool_use", "server_tool_use"):
        partial = orjson.dumps(block.get("input") or {}).decode()
        return {**block, "input": {}}, [{"type": "input_json_delta", "partial_json": partial}]
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {**block, "thinking": "", "signature": ""}, deltas
    return block, []

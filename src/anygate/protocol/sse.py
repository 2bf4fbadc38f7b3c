"""Server-sent events: encoding Anthropic stream events and decoding upstream streams incrementally.

The decoder works on raw network chunks, which split frames anywhere (mid-line, mid-UTF-8 sequence), so
it buffers bytes, not text, and only decodes complete lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from anygate.protocol.errors import error_body


def encode_event(event: dict[str, Any]) -> bytes:
    """One Anthropic SSE frame: ``event: <type>`` then the JSON whose ``type`` is the same name."""
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def encode_error(error_type: str, message: str, request_id: str) -> bytes:
    """The ``event: error`` frame that ends a stream which failed after it started."""
    return b"event: error\ndata: " + error_body(error_type, message, request_id) + b"\n\n"


PING_FRAME = b'event: ping\ndata: {"type":"ping"}\n\n'


@dataclass(slots=True)
class SSEFrame:
    """One decoded frame: its ``event:`` name (None when absent) and its joined ``data:`` lines."""

    event: str | None
    data: str


class SSEDecoder:
    """Incremental decoder of a ``text/event-stream`` body (WHATWG rules, minus ``id``/``retry``)."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        """Consume a network chunk and return the frames it completed."""
        buffer = self._buffer + chunk if self._buffer else chunk
        frames: list[SSEFrame] = []
        start = 0
        length = len(buffer)
        while start < length:
            end = buffer.find(b"\n", start)
            if end == -1:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, frames)
        self._buffer = buffer[start:]
        return frames

    def flush(self) -> list[SSEFrame]:
        """Frames completed by the end of the stream (a last frame without its blank line)."""
        frames: list[SSEFrame] = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip(b"\r"), b""
            self._line(line, frames)
        self._line(b"", frames)
        return frames

    def _line(self, line: bytes, frames: list[SSEFrame]) -> None:
        if not line:
            if self._data or self._event is not None:
                frames.append(SSEFrame(self._event, "\n".join(self._data)))
                self._event = None
                self._data = []
            return
        if line[0] == 58:  # ":" starts a comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

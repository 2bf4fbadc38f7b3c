"""Server-sent events: encoding Anthropic stream events and decoding upstream streams incrementally.

The decoder works on raw network chunks, which split frames anywhere (mid-line, mid-UTF-8 sequence), so
it buffers bytes, not text, and only decodes complete lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

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


class SSELineTooLong(ValueError):
    """An upstream stream line (or frame) grew past :attr:`SSEDecoder.max_line`: a malformed stream."""


DEFAULT_MAX_LINE: Final = 16 * 1024 * 1024


class SSEDecoder:
    """Incremental decoder of a ``text/event-stream`` body (WHATWG rules, minus ``id``/``retry``).

    A line that never ends must not grow memory without bound, and joining it to each new chunk would
    cost time quadratic in its length: an unfinished line is kept as a list of pieces (joined once, when
    its newline comes) and limited to :attr:`max_line` bytes, as is the data of one frame.
    """

    __slots__ = ("_data", "_data_size", "_event", "_pieces", "_pieces_size")

    max_line: ClassVar[int] = DEFAULT_MAX_LINE
    """Bytes one line or one frame's data may take (``general_settings.max_sse_line_mb`` sets it)."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._pieces_size = 0
        self._event: str | None = None
        self._data: list[str] = []
        self._data_size = 0

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        """Consume a network chunk and return the frames it completed."""
        frames: list[SSEFrame] = []
        start = 0
        if self._pieces:
            end = chunk.find(b"\n")
            if end == -1:
                self._keep(chunk)
                return frames
            line = b"".join(self._pieces) + chunk[:end]
            self._pieces, self._pieces_size = [], 0
            self._line(line[:-1] if line.endswith(b"\r") else line, frames)
            start = end + 1
        length = len(chunk)
        while start < length:
            end = chunk.find(b"\n", start)
            if end == -1:
                self._keep(chunk[start:])
                break
            line = chunk[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, frames)
        return frames

    def _keep(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._pieces_size += len(piece)
        if self._pieces_size > self.max_line:
            self._pieces, self._pieces_size = [], 0
            raise SSELineTooLong(f"an event stream line exceeds {self.max_line} bytes")

    def flush(self) -> list[SSEFrame]:
        """Frames completed by the end of the stream (a last frame without its blank line)."""
        frames: list[SSEFrame] = []
        if self._pieces:
            line = b"".join(self._pieces).rstrip(b"\r")
            self._pieces, self._pieces_size = [], 0
            self._line(line, frames)
        self._line(b"", frames)
        return frames

    def _line(self, line: bytes, frames: list[SSEFrame]) -> None:
        if not line:
            if self._data or self._event is not None:
                frames.append(SSEFrame(self._event, "\n".join(self._data)))
                self._event = None
                self._data = []
                self._data_size = 0
            return
        if line[0] == 58:  # ":" starts a comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._data:  # a frame of many data lines: bounded like one line
                self._data_size += len(value)
                if self._data_size > self.max_line:
                    raise SSELineTooLong(f"an event stream frame exceeds {self.max_line} bytes")
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

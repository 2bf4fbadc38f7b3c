"""AWS event-stream framing (``application/vnd.amazon.eventstream``): binary messages → :class:`Event`.

Each message is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), the headers,
the payload, and a CRC32 of everything before it. Headers are ``name-length(1) name type(1) value``;
Bedrock uses string headers (type 7) for ``:message-type`` (``event`` or ``exception``),
``:event-type``, ``:exception-type`` and ``:content-type``, but every type the format defines is
parsed so an unexpected header never breaks a stream.

:class:`EventStreamDecoder` is incremental over any chunking of the bytes and holds at most one message
(bounded by :data:`MAX_MESSAGE_BYTES`); a damaged message (bad CRC, impossible lengths) is a ValueError,
which the gateway reports as a malformed upstream answer.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

PRELUDE_BYTES: Final = 12
CRC_BYTES: Final = 4
MIN_MESSAGE_BYTES: Final = PRELUDE_BYTES + CRC_BYTES
MAX_MESSAGE_BYTES: Final = 24 * 1024 * 1024
"""The largest message accepted (AWS's own limit for one event-stream message is 16 MB)."""
MAX_HEADERS_BYTES: Final = 128 * 1024

_STRING_TYPE: Final = 7
_FIXED_SIZES: Final[Mapping[int, int]] = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
"""Header value type → size of a fixed-size value (true, false, byte, short, int, long, timestamp, uuid)."""
_VARIABLE_TYPES: Final = frozenset({6, _STRING_TYPE})
"""Header value types with a 2-byte length (byte array, string)."""
_PRELUDE: Final = struct.Struct(">III")


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded message: its string headers and its payload bytes."""

    headers: Mapping[str, str]
    payload: bytes

    @property
    def message_type(self) -> str:
        return self.headers.get(":message-type", "event")

    @property
    def event_type(self) -> str | None:
        return self.headers.get(":event-type")

    @property
    def exception_type(self) -> str | None:
        return self.headers.get(":exception-type") or self.headers.get(":error-code")


def _parse_headers(data: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    i, end = 0, len(data)
    while i < end:
        name_len = data[i]
        i += 1
        name = data[i : i + name_len].decode("utf-8")
        i += name_len
        if i >= end:
            raise ValueError("event-stream header without a value type")
        kind = data[i]
        i += 1
        if kind in _VARIABLE_TYPES:
            (size,) = struct.unpack_from(">H", data, i)
            i += 2
            value = data[i : i + size]
            if len(value) != size:
                raise ValueError("event-stream header value overruns the headers")
            i += size
            if kind == _STRING_TYPE:
                headers[name] = value.decode("utf-8")
        elif kind in _FIXED_SIZES:
            i += _FIXED_SIZES[kind]
            if i > end:
                raise ValueError("event-stream header value overruns the headers")
        else:
            raise ValueError(f"unknown event-stream header type {kind}")
    return headers


def decode_message(message: bytes, *, prelude_checked: bool = False) -> Event:
    """One complete message (its CRCs checked) → :class:`Event`."""
    total, headers_len, prelude_crc = _PRELUDE.unpack_from(message, 0)
    if not prelude_checked and zlib.crc32(message[:8]) != prelude_crc:
        raise ValueError("event-stream prelude CRC mismatch")
    if total != len(message):
        raise ValueError("event-stream message length mismatch")
    (message_crc,) = struct.unpack_from(">I", message, total - CRC_BYTES)
    if zlib.crc32(message[: total - CRC_BYTES]) != message_crc:
        raise ValueError("event-stream message CRC mismatch")
    headers_end = PRELUDE_BYTES + headers_len
    headers = _parse_headers(message[PRELUDE_BYTES:headers_end])
    return Event(headers, message[headers_end : total - CRC_BYTES])


class EventStreamDecoder:
    """Incremental decoder: bytes in any chunking → complete :class:`Event` objects (a FrameDecoder)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer
        buffer += chunk
        events: list[Event] = []
        start = 0
        available = len(buffer)
        while available - start >= PRELUDE_BYTES:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buffer, start)
            if total < MIN_MESSAGE_BYTES or total > MAX_MESSAGE_BYTES or headers_len > MAX_HEADERS_BYTES:
                raise ValueError(f"impossible event-stream message length {total}")
            if headers_len > total - MIN_MESSAGE_BYTES:
                raise ValueError("event-stream headers longer than their message")
            if zlib.crc32(memoryview(buffer)[start : start + 8]) != prelude_crc:
                raise ValueError("event-stream prelude CRC mismatch")
            if available - start < total:
                break
            message = bytes(buffer[start : start + total])
            start += total
            events.append(decode_message(message, prelude_checked=True))
        if start:
            del buffer[:start]
        return events

    def flush(self) -> list[Event]:
        if self._buffer:
            left = len(self._buffer)
            self._buffer.clear()
            raise ValueError(f"the event stream ended inside a message ({left} bytes left over)")
        return []


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One message with string headers (the fake upstreams in tests and the bench answer with these)."""
    encoded = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + bytes([_STRING_TYPE])
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = PRELUDE_BYTES + len(encoded) + len(payload) + CRC_BYTES
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + bytes(encoded) + payload
    return head + struct.pack(">I", zlib.crc32(head))


def encode_event(event_type: str, payload: bytes) -> bytes:
    """An ``event`` message as Bedrock sends them."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload
    )


def encode_exception(exception_type: str, payload: bytes) -> bytes:
    """An ``exception`` message as Bedrock sends them mid-stream."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload,
    )

"""The AWS event-stream decoder against botocore's, on recorded Bedrock streams, in every chunking."""

from __future__ import annotations

import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.providers.bedrock.eventstream import EventStreamDecoder, encode_message
from tests.providers.bedrock_support import EVENTSTREAMS, VERCEL_STREAMS, frame_events, vercel_events

STREAMS = [path.read_bytes() for path in EVENTSTREAMS] + [
    frame_events(vercel_events(p)) for p in VERCEL_STREAMS
]


def botocore_messages(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(dict(message.headers), message.payload) for message in buffer]


def decoded(data: bytes, cuts: list[int]) -> list[tuple[dict[str, str], bytes]]:
    decoder = EventStreamDecoder()
    events = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        events += decoder.feed(data[last:cut])
        last = max(last, cut)
    events += decoder.flush()
    return [(dict(event.headers), event.payload) for event in events]


def test_recordings_are_real_event_streams() -> None:
    assert len(EVENTSTREAMS) >= 6
    for path in EVENTSTREAMS:
        messages = botocore_messages(path.read_bytes())
        assert messages[0][0][":event-type"] == "messageStart"


@pytest.mark.parametrize(
    "data", STREAMS, ids=[p.stem for p in EVENTSTREAMS] + [p.stem for p in VERCEL_STREAMS]
)
def test_whole_streams_decode_as_botocore_decodes_them(data: bytes) -> None:
    assert decoded(data, []) == botocore_messages(data)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(STREAMS), st.data())
def test_any_chunking_decodes_the_same(data: bytes, draw: st.DataObject) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=40))
    assert decoded(data, cuts) == botocore_messages(data)


def test_byte_by_byte() -> None:
    data = STREAMS[0]
    assert decoded(data, list(range(len(data)))) == botocore_messages(data)


def test_encoding_round_trips_through_botocore() -> None:
    message = encode_message({":event-type": "chunk", "x": "é"}, b'{"bytes":"e30="}')
    assert botocore_messages(message) == [({":event-type": "chunk", "x": "é"}, b'{"bytes":"e30="}')]


def test_non_string_headers_are_skipped() -> None:
    message = bytearray(encode_message({":event-type": "chunk"}, b"{}"))
    # rebuild with an extra int32 header (type 4) and a timestamp header (type 8) before the string one
    extra = b"\x01a\x04" + struct.pack(">i", 7) + b"\x01t\x08" + struct.pack(">q", 1)
    headers = extra + b"\x0b:event-type\x07" + struct.pack(">H", 5) + b"chunk"
    prelude = struct.pack(">II", 12 + len(headers) + 2 + 4, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + b"{}"
    data = head + struct.pack(">I", zlib.crc32(head))
    (event,) = EventStreamDecoder().feed(data)
    assert dict(event.headers) == {":event-type": "chunk"} and event.payload == b"{}"
    assert message  # the simple encoding stays valid too


@pytest.mark.parametrize("position", [2, 9, 20, -2])
def test_damaged_messages_are_errors(position: int) -> None:
    data = bytearray(STREAMS[0])
    data[position] ^= 0x40
    with pytest.raises(ValueError):
        decoded(bytes(data), [])


def test_a_stream_cut_inside_a_message_is_an_error() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(STREAMS[0][:-5])
    with pytest.raises(ValueError, match="ended inside a message"):
        decoder.flush()


def test_an_impossible_length_fails_before_buffering() -> None:
    prelude = struct.pack(">II", 1 << 30, 0)
    with pytest.raises(ValueError, match="impossible"):
        EventStreamDecoder().feed(prelude + b"\0" * 8)

"""The stream reducer on compaction blocks: ``compaction_delta`` fills a compaction block the way the
official SDKs do (the delta replaces ``content`` and ``encrypted_content``), and only a compaction block."""

from __future__ import annotations

from typing import Any

import pytest

from anygate.protocol.accumulate import StreamOrderError, accumulate

START: dict[str, Any] = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    },
}
END: list[dict[str, Any]] = [
    {
        "type": "message_delta",
        "delta": {"stop_reason": "compaction", "stop_sequence": None},
        "usage": {"output_tokens": 0},
    },
    {"type": "message_stop"},
]


def block(start: dict[str, Any], *deltas: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        START,
        {"type": "content_block_start", "index": 0, "content_block": start},
        *({"type": "content_block_delta", "index": 0, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": 0},
        *END,
    ]


def test_a_compaction_delta_replaces_the_blocks_content() -> None:
    message = accumulate(
        block(
            {"type": "compaction", "content": None, "encrypted_content": "stale"},
            {"type": "compaction_delta", "content": "The summary.", "encrypted_content": "opaque"},
        )
    )
    assert message["content"] == [
        {"type": "compaction", "content": "The summary.", "encrypted_content": "opaque"}
    ]
    assert message["stop_reason"] == "compaction"


def test_a_later_compaction_delta_wins_and_a_missing_field_is_null() -> None:
    message = accumulate(
        block(
            {"type": "compaction", "content": None, "encrypted_content": None},
            {"type": "compaction_delta", "content": "draft", "encrypted_content": "e"},
            {"type": "compaction_delta", "content": "final"},
        )
    )
    assert message["content"] == [{"type": "compaction", "content": "final", "encrypted_content": None}]


@pytest.mark.parametrize(
    ("start", "delta"),
    [
        (
            {"type": "text", "text": ""},
            {"type": "compaction_delta", "content": "x", "encrypted_content": None},
        ),
        (
            {"type": "compaction", "content": None, "encrypted_content": None},
            {"type": "text_delta", "text": "x"},
        ),
    ],
)
def test_a_compaction_delta_fits_only_a_compaction_block(
    start: dict[str, Any], delta: dict[str, Any]
) -> None:
    with pytest.raises(StreamOrderError, match="cannot apply"):
        accumulate(block(start, delta))

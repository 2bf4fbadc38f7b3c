"""``message_events`` is the inverse of ``accumulate``: a Message read back as the events of a stream."""

from __future__ import annotations

from typing import Any

import pytest

from anygate.protocol.accumulate import accumulate, message_events

MESSAGES: list[dict[str, Any]] = [
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 0},
    },
    {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xyz"},
            {"type": "text", "text": "Hello", "citations": None},
            {
                "type": "text",
                "text": "cited",
                "citations": [
                    {
                        "type": "web_search_result_location",
                        "url": "https://a.example/",
                        "title": "A",
                        "cited_text": "a",
                        "encrypted_index": "e",
                    }
                ],
            },
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"},
            },
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "/x", "n": [1, 2]}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "server_tool_use": {"web_search_requests": 1}},
        "context_management": {"applied_edits": []},
    },
]


@pytest.mark.parametrize("message", MESSAGES, ids=["empty", "every-block"])
def test_accumulating_the_events_gives_the_message_back(message: dict[str, Any]) -> None:
    events = message_events(message)
    assert events[0]["type"] == "message_start"
    assert events[-1] == {"type": "message_stop"}
    assert accumulate(events) == message


def test_blocks_start_empty_and_fill_by_deltas() -> None:
    events = message_events(MESSAGES[1])
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[4]["input"] == {}
    assert starts[6]["input"] == {}

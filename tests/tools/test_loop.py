"""The server-tool turn on its own: upstream calls given as event lists, a scripted tool box.

What the gateway adds around it (retries, SSE, accounting, the real tools) is tested through the SDK in
``test_server_tools_gateway.py``; here the order of events, indices, usage, stop reasons, pings and
cancellation are checked exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from anygate.protocol.accumulate import accumulate, message_events
from anygate.tools.loop import ServerToolTurn


def answer(
    *blocks: dict[str, Any], stop: str = "end_turn", usage: tuple[int, int] = (10, 5)
) -> dict[str, Any]:
    return {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "up",
        "content": list(blocks),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(name: str, call_id: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


class ScriptedTools:
    """A tool box with one server tool, ``lookup``, whose result is a tool-search-shaped block."""

    names = frozenset({"lookup"})

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.runs: list[list[dict[str, Any]]] = []
        self.cancelled = False
        self.requests: list[dict[str, Any]] = []

    def upstream_request(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        return request

    async def run(self, calls: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        self.runs.append(calls)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return [
            {
                "type": "tool_search_tool_result",
                "tool_use_id": c["id"],
                "content": {"type": "tool_search_tool_search_result", "tool_references": []},
            }
            for c in calls
        ]

    def citations(self, value: str) -> list[dict[str, Any]]:
        if "[1]" not in value:
            return []
        return [
            {
                "type": "web_search_result_location",
                "url": "https://a.example/",
                "title": "A",
                "cited_text": "a",
                "encrypted_index": "e",
            }
        ]

    def server_tool_usage(self) -> dict[str, int] | None:
        return {"web_search_requests": len(self.runs), "web_fetch_requests": 0}


class Upstream:
    """The answers of successive upstream calls, as event streams; records what each call was sent."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []
        self.closed = 0

    async def events(self, message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            for event in message_events(message):
                yield event
                await asyncio.sleep(0)
        finally:
            self.closed += 1

    async def open_step(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.sent.append(request)
        return self.events(self.answers.pop(0))


REQUEST: dict[str, Any] = {
    "model": "m",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Find it."}],
}


async def run_turn(turn: ServerToolTurn, upstream: Upstream) -> list[dict[str, Any]]:
    first = await upstream.open_step(turn.first_request())
    return [event async for event in turn.events(first, upstream.open_step)]


async def test_a_server_call_and_the_answer_after_it_are_one_message() -> None:
    upstream = Upstream(
        answer(text("Searching."), call("lookup", "call_1", q="x"), stop="tool_use", usage=(10, 4)),
        answer(text("Found it [1]."), usage=(30, 6)),
    )
    tools = ScriptedTools()
    events = await run_turn(ServerToolTurn(REQUEST, tools), upstream)

    assert [e["type"] for e in events].count("message_start") == 1
    assert [e["type"] for e in events].count("message_stop") == 1
    message = accumulate(events)
    assert [b["type"] for b in message["content"]] == [
        "text",
        "server_tool_use",
        "tool_search_tool_result",
        "text",
    ]
    use = message["content"][1]
    assert use == {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "lookup",
        "input": {"q": "x"},
        "caller": {"type": "direct"},
    }
    assert message["content"][2]["tool_use_id"] == "srvtoolu_1"
    assert message["content"][3]["citations"][0]["url"] == "https://a.example/"
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {
        "input_tokens": 40,
        "output_tokens": 10,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0},
    }
    # the second call continues the conversation with the turn so far as the assistant's words
    second = upstream.sent[1]["messages"]
    assert second[0] == REQUEST["messages"][0]
    assert second[1]["role"] == "assistant"
    assert [b["type"] for b in second[1]["content"]] == ["text", "server_tool_use", "tool_search_tool_result"]
    assert upstream.closed == 2


async def test_a_client_tool_ends_the_turn_after_the_server_results() -> None:
    upstream = Upstream(answer(call("lookup", "c1", q="x"), call("Read", "c2", path="/a"), stop="tool_use"))
    tools = ScriptedTools()
    message = accumulate(await run_turn(ServerToolTurn(REQUEST, tools), upstream))
    assert [b["type"] for b in message["content"]] == [
        "server_tool_use",
        "tool_use",
        "tool_search_tool_result",
    ]
    assert message["stop_reason"] == "tool_use"
    assert len(upstream.sent) == 1


async def test_the_turn_pauses_after_its_last_allowed_call() -> None:
    upstream = Upstream(*(answer(call("lookup", f"c{n}", q=str(n)), stop="tool_use") for n in range(3)))
    message = accumulate(await run_turn(ServerToolTurn(REQUEST, ScriptedTools(), max_iterations=3), upstream))
    assert message["stop_reason"] == "pause_turn"
    assert [b["type"] for b in message["content"]] == ["server_tool_use", "tool_search_tool_result"] * 3
    assert [b["id"] for b in message["content"][::2]] == ["srvtoolu_c0", "srvtoolu_c1", "srvtoolu_c2"]
    assert len(upstream.sent) == 3


async def test_a_prefilled_assistant_message_is_continued() -> None:
    request = {**REQUEST, "messages": [*REQUEST["messages"], {"role": "assistant", "content": "Let me"}]}
    upstream = Upstream(answer(call("lookup", "c1", q="x"), stop="tool_use"), answer(text(" done.")))
    await run_turn(ServerToolTurn(request, ScriptedTools()), upstream)
    last = upstream.sent[1]["messages"][-1]
    assert last["role"] == "assistant"
    assert [b["type"] for b in last["content"]] == ["text", "server_tool_use", "tool_search_tool_result"]
    assert last["content"][0] == {"type": "text", "text": "Let me"}


async def test_pings_keep_the_stream_alive_while_a_tool_runs() -> None:
    upstream = Upstream(answer(call("lookup", "c1", q="x"), stop="tool_use"), answer(text("ok")))
    events = await run_turn(ServerToolTurn(REQUEST, ScriptedTools(delay=0.35), ping_interval=0.1), upstream)
    kinds = [e["type"] for e in events]
    result_at = next(
        i for i, e in enumerate(events) if e.get("content_block", {}).get("type") == "tool_search_tool_result"
    )
    assert kinds[:result_at].count("ping") >= 2


async def test_a_client_that_leaves_cancels_the_tool_run() -> None:
    upstream = Upstream(answer(call("lookup", "c1", q="x"), stop="tool_use"), answer(text("never")))
    tools = ScriptedTools(delay=30)
    turn = ServerToolTurn(REQUEST, tools, ping_interval=0.05)
    first = await upstream.open_step(turn.first_request())
    events = turn.events(first, upstream.open_step)
    async for event in events:
        if event["type"] == "ping":
            break
    await events.aclose()
    await asyncio.sleep(0)
    assert tools.cancelled
    assert len(upstream.sent) == 1
    assert upstream.closed == 1


async def test_a_later_call_that_fails_raises_after_the_events_so_far() -> None:
    class Broken(Upstream):
        async def open_step(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
            if self.sent:
                raise RuntimeError("upstream gone")
            return await super().open_step(request)

    upstream = Broken(answer(call("lookup", "c1", q="x"), stop="tool_use"))
    turn = ServerToolTurn(REQUEST, ScriptedTools())
    seen: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError):
        first = await upstream.open_step(turn.first_request())
        async for event in turn.events(first, upstream.open_step):
            seen.append(event)
    assert [e["type"] for e in seen][-1] == "content_block_stop"
    assert "message_stop" not in [e["type"] for e in seen]


async def test_context_management_is_reported_at_the_end() -> None:
    report = {"applied_edits": [{"type": "clear_thinking_20251015", "cleared_input_tokens": 5}]}
    upstream = Upstream(answer(text("hi")))
    message = accumulate(
        await run_turn(ServerToolTurn(REQUEST, ScriptedTools(), context_management=report), upstream)
    )
    assert message["context_management"] == report


async def test_server_tool_ids_stay_unique_when_the_upstream_repeats_its_call_ids() -> None:
    """Upstreams without call ids (Gemini) get ids derived from the message and the block's index, the
    same in every call of a turn; each ``server_tool_use`` still gets its own id, and each result
    answers its own call."""
    upstream = Upstream(
        answer(call("lookup", "toolu_msg_0", q="a"), stop="tool_use"),
        answer(call("lookup", "toolu_msg_0", q="b"), stop="tool_use"),
        answer(text("done")),
    )
    message = accumulate(await run_turn(ServerToolTurn(REQUEST, ScriptedTools()), upstream))
    uses = [b for b in message["content"] if b["type"] == "server_tool_use"]
    results = [b for b in message["content"] if b["type"] == "tool_search_tool_result"]
    assert len({u["id"] for u in uses}) == 2
    assert [r["tool_use_id"] for r in results] == [u["id"] for u in uses]

"""One Anthropic message made of several upstream calls: the turn in which the gateway runs server tools.

The model sees each server tool as an ordinary function (:mod:`anygate.tools.server_tools`). When it
calls one, the client sees what Anthropic's API would show: a ``server_tool_use`` block, then the tool's
result block, then the model's next words, all in the same message::

    message_start                                  (the first upstream call's; later ones are absorbed)
    text, tool_use → server_tool_use, …            (upstream call 1, indices as they come)
    web_search_tool_result                         (run by the gateway)
    text (citations_delta before its stop), …      (upstream call 2, indices continued)
    message_delta (stop_reason, usage summed over the calls, server_tool_use counts), message_stop

The turn ends when the model stops without calling a server tool, calls a client tool (the client runs
it: ``tool_use``), or after :data:`MAX_ITERATIONS` upstream calls (``pause_turn``: the client sends the
message back as it is, and the next request continues it). Streams and JSON answers go through the same
events; a JSON answer is their accumulation. A client that leaves cancels the tool runs and the upstream
call in progress (the generator is closed or cancelled at an ``await``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from anygate.hooks import Usage
from anygate.protocol.accumulate import MessageAccumulator
from anygate.protocol.ids import random_hex
from anygate.protocol.tools import DIRECT_CALLER
from anygate.tools.compaction import PAUSE_STOP_REASON, compaction_events, compaction_usage

T = TypeVar("T")

MAX_ITERATIONS: Final = 10
"""Upstream calls in one turn before it pauses (Anthropic's server-tool loop pauses after 10, too)."""

FORCING_CHOICES: Final = frozenset({"any", "tool"})
"""``tool_choice`` types that make the model call a tool."""
StepEvents = AsyncIterator[dict[str, Any]]
OpenStep = Callable[[dict[str, Any]], Awaitable[StepEvents]]
"""Starts the upstream call for a request and gives its answer as Anthropic events (retries happen
inside, before the call's first event)."""


class ToolBox(Protocol):
    """The server tools of one request: what the upstream is sent, and how the tools run."""

    @property
    def names(self) -> frozenset[str]:
        """Function names the model calls to use a server tool."""
        ...

    def upstream_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """The Anthropic-format request a non-Anthropic upstream gets for ``request`` (whose messages may
        hold server blocks): server tools as functions, deferred tools left out until loaded."""
        ...

    async def run(self, calls: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        """The result blocks of ``calls`` (``server_tool_use`` blocks), in their order. A tool that
        cannot run gives its error block; only a bug raises. ``request`` is the conversation so far."""
        ...

    def citations(self, text: str) -> list[dict[str, Any]]:
        """Citations for a text block the model wrote after reading search results."""
        ...

    def server_tool_usage(self) -> dict[str, int] | None:
        """``usage.server_tool_use`` of the turn so far (None when no counted tool ran)."""
        ...


@dataclass(frozen=True, slots=True)
class Compacted:
    """The summary a turn starts with (:mod:`anygate.tools.compaction`): its text (None: the
    summariser gave nothing usable), the summarising call's usage, and whether the turn stops there."""

    summary: str | None
    usage: dict[str, Any]
    paused: bool = False


class ServerToolTurn:
    """Runs one turn: see the module's docstring.

    Args:
        request: the client's request (context edits already applied).
        toolbox: its server tools.
        ping_interval: seconds between ``ping`` events while tools run (None: no pings).
        context_management: what the message reports in ``context_management`` (applied edits).
        max_iterations: upstream calls before ``pause_turn``.
        compacted: the summary the message starts with, when the conversation was compacted.
        message_id: the message's id when the turn starts it itself (after a summary).
    """

    def __init__(
        self,
        request: dict[str, Any],
        toolbox: ToolBox,
        *,
        ping_interval: float | None = None,
        context_management: dict[str, Any] | None = None,
        max_iterations: int = MAX_ITERATIONS,
        compacted: Compacted | None = None,
        message_id: str = "",
    ) -> None:
        self.request = request
        self.toolbox = toolbox
        self.ping_interval = ping_interval
        self.context_management = context_management
        self.max_iterations = max_iterations
        self.compacted = compacted
        self.message_id = message_id
        self.usage = Usage.from_anthropic(compacted.usage) if compacted is not None else Usage()
        """Tokens summed over every upstream call so far (a summary's included): what is billed."""
        self._answered = Usage()
        """Tokens of the answer's calls: the message's top-level usage."""
        self.message = MessageAccumulator()
        self._ids: set[str] = set()
        """``server_tool_use`` ids given in this turn."""
        """The client's message so far."""

    def first_request(self) -> dict[str, Any]:
        """What the first upstream call is sent."""
        return self.toolbox.upstream_request(self.request)

    async def events(
        self, first: StepEvents | None, open_step: OpenStep
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The client's events for the whole turn, from the first call's events (None: a turn paused
        after its summary) and a way to start the next calls. Failures of later calls raise here (the
        stream has started: the caller ends it with an ``event: error``)."""
        step: StepEvents | None = first
        calls_made = 1
        if self.compacted is not None:
            for item in self._compaction_start():
                self.message.apply(item)
                yield item
            if step is None:
                for item in self._end(PAUSE_STOP_REASON, None):
                    self.message.apply(item)
                    yield item
                return
        while step is not None:
            outcome = _StepOutcome()
            async with aclosing(_closing(step)) as events:
                async for event in events:
                    first_call = calls_made == 1 and self.compacted is None
                    out = self._client_event(event, outcome, first_call=first_call)
                    for item in out:
                        self.message.apply(item)
                        yield item
            self.usage = self.usage.plus(outcome.usage)
            self._answered = self._answered.plus(outcome.usage)
            content = self._content()
            stop_reason = outcome.stop_reason
            if outcome.calls and stop_reason != "max_tokens":
                calls = [content[index] for index in outcome.calls]
                ran: list[list[dict[str, Any]]] = []
                work = self.toolbox.run(calls, self._continued_request())
                async with aclosing(self._pinging(work, ran)) as pings:
                    async for ping in pings:
                        yield ping
                for block in ran[0]:
                    for item in _whole_block(len(self._content()), block):
                        self.message.apply(item)
                        yield item
                if not outcome.client_calls:
                    stop_reason = "tool_use"
            step = None
            if outcome.calls and not outcome.client_calls and stop_reason == "tool_use":
                if calls_made >= self.max_iterations:
                    stop_reason = "pause_turn"
                else:
                    calls_made += 1
                    opened: list[StepEvents] = []
                    next_call = open_step(self.toolbox.upstream_request(self._continued_request()))
                    async with aclosing(self._pinging(next_call, opened)) as pings:
                        async for ping in pings:
                            yield ping
                    step = opened[0]
                    continue
            for item in self._end(stop_reason, outcome.stop_sequence):
                self.message.apply(item)
                yield item

    @property
    def stop_reason(self) -> str | None:
        """The message's stop reason, once it ended."""
        message = self.message.message
        return message.get("stop_reason") if message is not None and self.message.finished else None

    async def answer(self, first: StepEvents | None, open_step: OpenStep) -> dict[str, Any]:
        """The whole turn as one Message (a JSON answer)."""
        async for _ in self.events(first, open_step):
            pass
        assert self.message.message is not None
        return self.message.message

    # --- one upstream call's events ------------------------------------------------------------

    def _client_event(
        self, event: dict[str, Any], outcome: _StepOutcome, *, first_call: bool
    ) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "content_block_start":
            index = event["index"] + outcome.offset(self)
            block = event["content_block"]
            if block.get("type") == "tool_use":
                if block.get("name") in self.toolbox.names:
                    block = {
                        "type": "server_tool_use",
                        "id": self._unique_id(_server_tool_id(block)),
                        "name": block["name"],
                        "input": {},
                        "caller": DIRECT_CALLER,
                    }
                    outcome.calls.append(index)
                else:
                    outcome.client_calls = True
            outcome.open_block = index
            return [{**event, "index": index, "content_block": block}]
        if kind == "content_block_delta":
            return [{**event, "index": event["index"] + outcome.offset(self)}]
        if kind == "content_block_stop":
            index = event["index"] + outcome.offset(self)
            outcome.open_block = None
            block = self._content()[index]
            out: list[dict[str, Any]] = []
            if block.get("type") == "text" and block.get("text"):
                known = {_citation_key(c) for c in block.get("citations") or ()}
                for citation in self.toolbox.citations(block["text"]):
                    if _citation_key(citation) not in known:
                        out.append(
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "citations_delta", "citation": citation},
                            }
                        )
            out.append({**event, "index": index})
            return out
        if kind == "message_start":
            outcome.usage.update(event["message"].get("usage"))
            return [event] if first_call else []
        if kind == "message_delta":
            delta = event.get("delta") or {}
            outcome.stop_reason = delta.get("stop_reason")
            outcome.stop_sequence = delta.get("stop_sequence")
            outcome.usage.update(event.get("usage"))
            return []
        if kind == "ping":
            return [event]
        return []  # message_stop: the turn's own ends it

    def _unique_id(self, candidate: str) -> str:
        """``candidate``, or a fresh id when this turn gave it already: upstreams without call ids
        (Gemini) get ids derived from the message id and the block's index, which repeat from one
        upstream call of the turn to the next."""
        chosen = candidate if candidate not in self._ids else f"srvtoolu_{_fresh_id()}"
        self._ids.add(chosen)
        return chosen

    def _content(self) -> list[dict[str, Any]]:
        message = self.message.message
        return message["content"] if message is not None else []

    async def _pinging(self, work: Awaitable[T], into: list[T]) -> AsyncGenerator[dict[str, Any], None]:
        """Await ``work`` (a tool run, the next upstream call) and put its result in ``into``, yielding a
        ``ping`` every ``ping_interval`` seconds meanwhile: a client (or a proxy in front of it) must
        not take a silent turn for a dead one. Closing it early cancels the work."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.ping_interval)
                if done:
                    break
                yield {"type": "ping"}
            into.append(task.result())
        finally:
            if not task.done():
                task.cancel()

    def _continued_request(self) -> dict[str, Any]:
        """The client's request with this turn's content so far as the assistant's latest words
        (continuing a trailing assistant message: a prefill, or a paused turn sent back).

        A ``tool_choice`` that forces a call (``any``, ``tool``) was honoured by the turn's first call;
        forced again, the model could never answer, so later calls get ``auto``.
        """
        messages = list(self.request["messages"])
        content = list(self._content())
        if messages and messages[-1].get("role") == "assistant":
            last = messages.pop()
            previous = last.get("content")
            before = (
                previous if isinstance(previous, list) else [{"type": "text", "text": str(previous or "")}]
            )
            content = [*before, *content]
        continued = {**self.request, "messages": [*messages, {"role": "assistant", "content": content}]}
        choice = self.request.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in FORCING_CHOICES and self._content():
            continued["tool_choice"] = {**{k: v for k, v in choice.items() if k != "name"}, "type": "auto"}
        return continued

    def _compaction_start(self) -> list[dict[str, Any]]:
        """The message's start when it opens with a summary: the turn starts the message itself."""
        assert self.compacted is not None
        start = {
            "type": "message_start",
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": self.request["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        }
        return [start, *compaction_events(0, self.compacted.summary)]

    def _end(self, stop_reason: str | None, stop_sequence: str | None) -> list[dict[str, Any]]:
        answered = self._answered
        usage: dict[str, Any] = {
            "input_tokens": answered.input_tokens,
            "output_tokens": answered.output_tokens,
            "cache_read_input_tokens": answered.cache_read_input_tokens,
            "cache_creation_input_tokens": answered.cache_creation_input_tokens,
        }
        if self.compacted is not None:
            paused = stop_reason == PAUSE_STOP_REASON
            usage = compaction_usage(self.compacted.usage, None if paused else usage)
        server_tool_use = self.toolbox.server_tool_usage()
        if server_tool_use is not None:
            usage["server_tool_use"] = server_tool_use
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason or "end_turn", "stop_sequence": stop_sequence},
            "usage": usage,
        }
        if self.context_management is not None:
            delta["context_management"] = self.context_management
        return [delta, {"type": "message_stop"}]


class _StepOutcome:
    """What one upstream call produced, as the turn reads it."""

    __slots__ = ("_offset", "calls", "client_calls", "open_block", "stop_reason", "stop_sequence", "usage")

    def __init__(self) -> None:
        self._offset: int | None = None
        self.calls: list[int] = []
        self.client_calls = False
        self.open_block: int | None = None
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.usage = Usage()

    def offset(self, turn: ServerToolTurn) -> int:
        """Where this call's block 0 sits in the message: after every block of the earlier calls."""
        if self._offset is None:
            self._offset = len(turn._content())
        return self._offset


async def _closing(events: StepEvents) -> AsyncGenerator[dict[str, Any], None]:
    """``events`` as a generator that closes its source when closed itself (the upstream connection
    goes back or is dropped at once when the client leaves)."""
    try:
        async for event in events:
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def _whole_block(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """A block that arrives complete (a tool's result), as Anthropic streams one."""
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        {"type": "content_block_stop", "index": index},
    ]


def _server_tool_id(block: dict[str, Any]) -> str:
    """``srvtoolu_…`` from the upstream's call id (unique within the conversation as the upstream's
    ids are; a fresh one when the upstream gave none)."""
    raw = "".join(c for c in str(block.get("id") or "") if c.isalnum() or c in "_-")
    return f"srvtoolu_{raw.removeprefix('toolu_').removeprefix('call_') or _fresh_id()}"


def _fresh_id() -> str:
    return random_hex()


def _citation_key(citation: object) -> object:
    if isinstance(citation, dict):
        return (citation.get("type"), citation.get("url"), citation.get("cited_text"))
    return None

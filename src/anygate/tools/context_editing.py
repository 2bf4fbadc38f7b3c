"""``context_management`` edits, applied by the gateway before a request goes to a non-Anthropic upstream.

Anthropic's API edits the prompt on the server when a request asks it to (beta
``context-management-2025-06-27``), so the client keeps its full history and the model sees less:

- ``clear_tool_uses_20250919``: once the conversation reaches its ``trigger`` (``input_tokens``, by
  default 100,000, or a number of ``tool_uses``), the results of all but the ``keep`` most recent tool
  uses (3 by default) are replaced by a short placeholder, oldest first; ``exclude_tools`` are never
  touched (nor counted in ``keep``), ``clear_tool_inputs`` (true, or a list of tool names) empties the
  calls' inputs too, and ``clear_at_least`` skips the edit when it would clear fewer input tokens.
- ``clear_thinking_20251015``: thinking blocks of all but the ``keep`` most recent assistant turns that
  have thinking (one by default; ``"all"`` keeps every one) are removed.

Edits apply in the order given; the answer reports each edit that cleared something in its
``context_management.applied_edits`` (the Message, or the stream's ``message_delta``), with the tokens it
cleared estimated locally. Without any applied edit the answer is left as the upstream's translation
made it, so a request that asks only to keep everything (Claude Code sends ``clear_thinking`` with
``keep: "all"`` on every request) costs a key test and a loop over one edit.

``compact_20260112`` (server-side summarisation) is checked here and surfaces as :attr:`Edits.compaction`;
it is not a clearing edit, so :func:`apply_edits` leaves it alone and the server-tool loop runs it
(:mod:`anygate.tools.compaction`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from anygate.hooks import Usage
from anygate.protocol.errors import invalid_request
from anygate.providers.base import StreamTranslator
from anygate.tokens import estimate_request_tokens
from anygate.tools.compaction import COMPACT, CompactionSettings

CLEAR_TOOL_USES: Final = "clear_tool_uses_20250919"
CLEAR_THINKING: Final = "clear_thinking_20251015"
CLEARING_EDITS: Final = frozenset({CLEAR_TOOL_USES, CLEAR_THINKING})
"""The strategies :func:`apply_edits` runs."""
SUPPORTED_EDITS: Final = frozenset({*CLEARING_EDITS, COMPACT})

DEFAULT_TRIGGER: Final = {"type": "input_tokens", "value": 100_000}
DEFAULT_KEEP_TOOL_USES: Final = 3
DEFAULT_KEEP_THINKING_TURNS: Final = 1
CLEARED_TOOL_RESULT: Final = "[This tool result was cleared from the context to save space.]"
"""What replaces a cleared tool result, so the model knows there was one and that it is gone."""
THINKING_BLOCKS: Final = frozenset({"thinking", "redacted_thinking"})

Measure = Callable[[Iterable[Any]], int]
"""Estimates the input tokens of some content blocks."""


@dataclass(slots=True)
class Edits:
    """The checked edits of one request, and what applying them did (:attr:`applied`).

    :attr:`edits` are the clearing edits, in order; :attr:`compaction` is the ``compact_20260112``
    edit's settings, when the request asks for compaction.
    """

    edits: list[dict[str, Any]]
    applied: list[dict[str, Any]] = field(default_factory=list)
    compaction: CompactionSettings | None = None

    def token_triggers(self) -> list[int]:
        """The ``input_tokens`` triggers of the edits, compaction's included (the gateway counts the
        request only for these)."""
        triggers = [
            int(trigger["value"])
            for edit in self.edits
            if edit["type"] == CLEAR_TOOL_USES and (trigger := _trigger(edit))["type"] == "input_tokens"
        ]
        if self.compaction is not None:
            triggers.append(self.compaction.trigger_tokens)
        return triggers

    @property
    def report(self) -> dict[str, Any]:
        """The answer's ``context_management`` field."""
        return {"applied_edits": self.applied}


def requested_edits(request: dict[str, Any], model: str) -> Edits | None:
    """The request's ``context_management.edits``, checked; None when there are none.

    Raises a 400 for a malformed edit or an unknown strategy, as Anthropic's API does. Every strategy
    Anthropic defines runs for every model, so ``model`` decides nothing (callers pass it all the same).
    """
    management = request.get("context_management")
    if management is None:
        return None
    if not isinstance(management, dict):
        raise invalid_request("context_management: Input should be an object")
    edits = management.get("edits") or []
    if not isinstance(edits, list):
        raise invalid_request("context_management.edits: Input should be a valid list")
    clearing: list[dict[str, Any]] = []
    compaction: CompactionSettings | None = None
    for position, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        where = f"context_management.edits.{position}"
        if kind not in SUPPORTED_EDITS:
            expected = ", ".join(sorted(SUPPORTED_EDITS))
            raise invalid_request(
                f"{where}.type: Input tag {kind!r} found using 'type' does "
                f"not match any of the expected tags: {expected}"
            )
        if kind == COMPACT:
            if compaction is not None:
                raise invalid_request(f"{where}: only one {COMPACT} edit is allowed")
            compaction = CompactionSettings.from_edit(edit, where)
            continue
        _check(edit, where)
        clearing.append(edit)
    if not clearing and compaction is None:
        return None
    return Edits(clearing, compaction=compaction)


def _check(edit: dict[str, Any], where: str) -> None:
    if edit["type"] == CLEAR_THINKING:
        keep = edit.get("keep")
        if keep is None or _keeps_all(keep):
            return
        if not (isinstance(keep, dict) and keep.get("type") == "thinking_turns" and _number(keep, 1)):
            raise invalid_request(f"{where}.keep: expected {{'type': 'thinking_turns', 'value': N}} or 'all'")
        return
    trigger = edit.get("trigger")
    if trigger is not None and not (
        isinstance(trigger, dict)
        and trigger.get("type") in ("input_tokens", "tool_uses")
        and _number(trigger, 1)
    ):
        raise invalid_request(
            f"{where}.trigger: expected {{'type': 'input_tokens' | 'tool_uses', 'value': N}}"
        )
    keep = edit.get("keep")
    if keep is not None and not (
        isinstance(keep, dict) and keep.get("type") == "tool_uses" and _number(keep, 0)
    ):
        raise invalid_request(f"{where}.keep: expected {{'type': 'tool_uses', 'value': N}}")
    at_least = edit.get("clear_at_least")
    if at_least is not None and not (
        isinstance(at_least, dict) and at_least.get("type") == "input_tokens" and _number(at_least, 0)
    ):
        raise invalid_request(f"{where}.clear_at_least: expected {{'type': 'input_tokens', 'value': N}}")
    excluded = edit.get("exclude_tools")
    if excluded is not None and not (
        isinstance(excluded, list) and all(isinstance(v, str) for v in excluded)
    ):
        raise invalid_request(f"{where}.exclude_tools: expected a list of tool names")
    inputs = edit.get("clear_tool_inputs")
    if inputs is not None and not isinstance(inputs, bool | list):
        raise invalid_request(f"{where}.clear_tool_inputs: expected a boolean or a list of tool names")


def _number(spec: dict[str, Any], minimum: int) -> bool:
    value = spec.get("value")
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _keeps_all(keep: object) -> bool:
    return keep == "all" or (isinstance(keep, dict) and keep.get("type") == "all")


def _trigger(edit: dict[str, Any]) -> dict[str, Any]:
    trigger: dict[str, Any] = edit.get("trigger") or DEFAULT_TRIGGER
    return trigger


def apply_edits(
    request: dict[str, Any], edits: Edits, input_tokens: int | None, measure: Measure | None = None
) -> dict[str, Any]:
    """The request as the model should see it, with ``edits.applied`` filled in.

    ``input_tokens`` is the request's size, or None when it is known to be below every ``input_tokens``
    trigger; the tokens an edit clears come off it before the next edit's trigger is checked. ``measure``
    estimates the tokens of removed blocks (a tokenizer-free estimate by default). The client's request
    is never mutated: changed messages are copies.
    """
    measure = measure or _estimate_blocks
    messages: list[dict[str, Any]] = list(request.get("messages") or [])
    remaining = input_tokens
    for edit in edits.edits:
        if edit["type"] == CLEAR_THINKING:
            report = _clear_thinking(messages, edit, measure)
        else:
            report = _clear_tool_uses(messages, edit, remaining, measure)
        if report is not None:
            edits.applied.append(report)
            if remaining is not None:
                remaining = max(remaining - int(report["cleared_input_tokens"]), 0)
    if not edits.applied:
        return request
    return {**request, "messages": messages}


def _estimate_blocks(blocks: Iterable[Any]) -> int:
    content = list(blocks)
    if not content:
        return 0
    return estimate_request_tokens({"messages": [{"role": "user", "content": content}]})


def _clear_thinking(
    messages: list[dict[str, Any]], edit: dict[str, Any], measure: Measure
) -> dict[str, Any] | None:
    keep = edit.get("keep")
    if _keeps_all(keep):
        return None
    kept = int(keep["value"]) if isinstance(keep, dict) else DEFAULT_KEEP_THINKING_TURNS
    turns = [
        i
        for i, message in enumerate(messages)
        if message.get("role") == "assistant"
        and isinstance(message.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") in THINKING_BLOCKS for b in message["content"])
    ]
    cleared = turns[: max(len(turns) - kept, 0)]
    if not cleared:
        return None
    removed: list[dict[str, Any]] = []
    for i in cleared:
        content = messages[i]["content"]
        rest = []
        for block in content:
            if isinstance(block, dict) and block.get("type") in THINKING_BLOCKS:
                removed.append(
                    {"type": "text", "text": str(block.get("thinking") or block.get("data") or "")}
                )
            else:
                rest.append(block)
        messages[i] = {**messages[i], "content": rest or [{"type": "text", "text": ""}]}
    return {
        "type": CLEAR_THINKING,
        "cleared_thinking_turns": len(cleared),
        "cleared_input_tokens": measure(removed),
    }


def _clear_tool_uses(
    messages: list[dict[str, Any]], edit: dict[str, Any], input_tokens: int | None, measure: Measure
) -> dict[str, Any] | None:
    uses: list[tuple[int, int, dict[str, Any]]] = []  # (message, block, tool_use), oldest first
    results: dict[str, tuple[int, int]] = {}
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        role = message.get("role")
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_use" and role == "assistant":
                uses.append((i, j, block))
            elif kind == "tool_result" and role == "user":
                results[str(block.get("tool_use_id"))] = (i, j)
    trigger = _trigger(edit)
    reached = len(uses) if trigger["type"] == "tool_uses" else input_tokens
    if reached is None or reached < int(trigger["value"]):
        return None
    excluded = set(edit.get("exclude_tools") or ())
    clearable = [use for use in uses if use[2].get("name") not in excluded]
    keep = edit.get("keep")
    kept = int(keep["value"]) if isinstance(keep, dict) else DEFAULT_KEEP_TOOL_USES
    inputs = edit.get("clear_tool_inputs")
    input_names = set(inputs) if isinstance(inputs, list) else set()

    removed: list[Any] = []
    changes: list[tuple[int, int, dict[str, Any]]] = []
    cleared_uses = cleared_results = 0
    for i, j, use in clearable[: max(len(clearable) - kept, 0)]:
        changed = False
        if (inputs is True or use.get("name") in input_names) and use.get("input"):
            removed.append({"type": "text", "text": orjson.dumps(use.get("input")).decode()})
            changes.append((i, j, {**use, "input": {}}))
            changed = True
        located = results.get(str(use.get("id")))
        if located is not None:
            result = messages[located[0]]["content"][located[1]]
            if result.get("content") != CLEARED_TOOL_RESULT:
                removed.append(result)
                changes.append((*located, {**result, "content": CLEARED_TOOL_RESULT}))
                cleared_results += 1
                changed = True
        cleared_uses += changed
    if not changes:
        return None
    placeholder = measure([{"type": "text", "text": CLEARED_TOOL_RESULT}])
    cleared_tokens = max(measure(removed) - cleared_results * placeholder, 0)
    at_least = edit.get("clear_at_least")
    if isinstance(at_least, dict) and cleared_tokens < int(at_least["value"]):
        return None
    copied: set[int] = set()
    for i, j, block in changes:
        if i not in copied:
            messages[i] = {**messages[i], "content": list(messages[i]["content"])}
            copied.add(i)
        messages[i]["content"][j] = block
    return {
        "type": CLEAR_TOOL_USES,
        "cleared_tool_uses": cleared_uses,
        "cleared_input_tokens": cleared_tokens,
    }


# --- reporting what was applied ------------------------------------------------------------------

_MESSAGE_DELTA: Final = b"event: message_delta\ndata: "


def report_in_message(body: bytes, edits: Edits) -> bytes:
    """A non-streaming answer (a Message's JSON) with ``context_management`` set."""
    message = orjson.loads(body)
    message["context_management"] = edits.report
    return orjson.dumps(message)


class ReportingTranslator:
    """A stream translator whose ``message_delta`` carries ``context_management``, as Anthropic's does.

    It wraps the provider's translator only for a request whose edits applied, so other streams pass
    through untouched. A translator's output is always whole frames, so the ``message_delta`` frame is
    found whole in one output.
    """

    __slots__ = ("_edits", "_inner", "_reported")

    def __init__(self, inner: StreamTranslator, edits: Edits) -> None:
        self._inner = inner
        self._edits = edits
        self._reported = False

    def feed(self, chunk: bytes) -> bytes:
        return self._patch(self._inner.feed(chunk))

    def finish(self) -> bytes:
        return self._patch(self._inner.finish())

    @property
    def usage(self) -> Usage:
        return self._inner.usage

    @property
    def stop_reason(self) -> str | None:
        return self._inner.stop_reason

    def _patch(self, out: bytes) -> bytes:
        if self._reported or not out:
            return out
        start = out.find(_MESSAGE_DELTA)
        if start == -1:
            return out
        data_start = start + len(_MESSAGE_DELTA)
        end = out.index(b"\n\n", data_start)
        event = orjson.loads(out[data_start:end])
        event["context_management"] = self._edits.report
        self._reported = True
        return out[:data_start] + orjson.dumps(event) + out[end:]

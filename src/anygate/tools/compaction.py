"""Server-side compaction (``compact_20260112``) for any model: the pure parts the server-tool loop calls.

What Anthropic's API does (beta header ``compact-2026-01-12``; the OpenAPI spec's ``BetaCompact20260112``,
``BetaResponseCompactionBlock``, ``BetaRequestCompactionBlock``, ``BetaCompactionContentBlockDelta``,
``BetaCompactionIterationUsage``; the compaction docs), and so what the gateway does:

- The edit is ``{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": N} | null,
  "pause_after_compaction": bool, "instructions": str | null}`` and nothing else (the schema forbids
  other fields). ``trigger`` defaults to 150,000 input tokens and must be at least 50,000;
  ``pause_after_compaction`` defaults to false; ``instructions`` *replaces* the default summarisation
  prompt entirely (it is not appended to it).
- When the prompt's input tokens reach the trigger, the API summarises the conversation, puts a
  ``{"type": "compaction", "content": <summary>, "encrypted_content": null}`` block first in the answer
  and continues the answer from the compacted context. With ``pause_after_compaction`` the answer holds
  the compaction block alone and stops with ``stop_reason: "compaction"`` (a stop reason of its own in
  ``BetaStopReason``), so the client can add messages before going on.
- A compaction block with ``content: null`` is a failed compaction; sent back, it is a no-op.
- On later requests the client sends the answer back unchanged; the API drops everything before the last
  compaction block and continues from its summary, so the history stays small while the client keeps it.
- Streaming: ``content_block_start`` carries ``{"type": "compaction", "content": null,
  "encrypted_content": null}``, then ONE ``content_block_delta`` with ``{"type": "compaction_delta",
  "content": <the whole summary>, "encrypted_content": null}`` (the summary is not streamed piecewise;
  the SDK's accumulator *replaces* the block's ``content`` and ``encrypted_content`` with the delta's),
  then ``content_block_stop``.
- Usage: ``usage.iterations`` lists each sampling step, ``{"type": "compaction", ...}`` for the summary
  then ``{"type": "message", ...}`` for the answer, each with ``input_tokens``, ``output_tokens``,
  ``cache_creation_input_tokens``, ``cache_read_input_tokens`` and ``cache_creation``. The top-level
  fields do NOT include the compaction step (they describe the answer; a paused answer reports 0/0);
  billing is the sum over iterations. In a stream ``iterations`` rides on ``message_delta``'s usage.
- Compaction is not an ``applied_edits`` entry of ``context_management`` (that list has only the
  clearing strategies).

How the gateway runs it for a non-Anthropic upstream (the loop in :mod:`anygate.tools.loop` makes the
calls): take the request's :func:`compacted_history` (and apply the clearing edits to it), count it, and
when :func:`needs_compaction`, send :func:`summary_request` to the same model group, turn its answer into
a summary with :func:`summary_text`, emit :func:`compaction_block` / :func:`compaction_events` first,
then either stop with :data:`PAUSE_STOP_REASON` or continue with :func:`continued_request`, reporting
:func:`compaction_usage`. The model always reads a summary as ordinary text in a user turn, so every
provider can take it; the client keeps the ``compaction`` block and the gateway needs no memory across
requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from anygate.protocol.errors import invalid_request

COMPACT: Final = "compact_20260112"
BETA: Final = "compact-2026-01-12"
"""The ``anthropic-beta`` value Anthropic requires for this strategy (the gateway does not insist on it)."""
DEFAULT_TRIGGER_TOKENS: Final = 150_000
MIN_TRIGGER_TOKENS: Final = 50_000
EDIT_FIELDS: Final = frozenset({"type", "trigger", "pause_after_compaction", "instructions"})
PAUSE_STOP_REASON: Final = "compaction"
"""The answer's ``stop_reason`` under ``pause_after_compaction``."""

SUMMARY_MAX_TOKENS: Final = 8_192
"""Output bound of the summarising call. Anthropic's summaries run to a few thousand tokens; the bound
keeps a rambling model from spending the window it is meant to save (the gateway still lowers it to a
deployment's own output limit)."""

SUMMARY_PROMPT: Final = """\
Pause the work here: do not continue the task and do not call any tool. Write a summary of the \
conversation above instead. The summary will replace the conversation: afterwards the earlier turns are \
gone and only the summary remains, so put in it everything needed to carry the work on without them.

Cover:
1. The task: what the user asked for, in their own words where the wording matters, with every \
constraint and preference they stated.
2. The most recent request or tool results, stated in full: the next reply must act on them.
3. What has been done: decisions and their reasons, files read or changed (with paths), commands run \
and their outcomes, errors met and how they were resolved.
4. Where things stand now and the exact next steps.
5. Whatever else would be costly to recover: names, identifiers, values, short excerpts of code or output.

Prefer specific and complete to short. Write the summary between <summary> and </summary>."""
"""The default summarisation prompt; a request's ``instructions`` replace it."""

SUMMARY_PREAMBLE: Final = (
    "The earlier part of this conversation was replaced by the following summary of it, "
    "written so the work can go on:"
)
"""What the model reads before a summary, so it treats the summary as its own history."""

_SUMMARY_TAG: Final = re.compile(r"<summary>(.*?)(?:</summary>|\Z)", re.DOTALL)
USABLE_STOP_REASONS: Final = frozenset({"end_turn", "max_tokens", "stop_sequence"})
"""A summariser's answer that stopped for another reason (``refusal``, ``tool_use``…) is not a summary."""


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """A request's ``compact_20260112`` edit, checked, with Anthropic's defaults filled in."""

    trigger_tokens: int = DEFAULT_TRIGGER_TOKENS
    instructions: str | None = None
    pause_after_compaction: bool = False

    @classmethod
    def from_edit(cls, edit: Mapping[str, Any], where: str) -> CompactionSettings:
        """Parse one edit; ``where`` (``context_management.edits.N``) prefixes a 400's message, which
        is worded as Anthropic words its validation errors."""
        for key in edit:
            if key not in EDIT_FIELDS:
                raise invalid_request(f"{where}.{key}: Extra inputs are not permitted")
        trigger_tokens = DEFAULT_TRIGGER_TOKENS
        trigger = edit.get("trigger")
        if trigger is not None:
            if not isinstance(trigger, dict):
                raise invalid_request(
                    f"{where}.trigger: Input should be a valid dictionary or object to extract fields from"
                )
            if trigger.get("type") != "input_tokens":
                raise invalid_request(f"{where}.trigger.type: Input should be 'input_tokens'")
            value = trigger.get("value")
            if not isinstance(value, int) or isinstance(value, bool):
                raise invalid_request(f"{where}.trigger.value: Input should be a valid integer")
            if value < MIN_TRIGGER_TOKENS:
                raise invalid_request(
                    f"{where}.trigger.value: Input should be greater than or equal to {MIN_TRIGGER_TOKENS}"
                )
            trigger_tokens = value
        instructions = edit.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise invalid_request(f"{where}.instructions: Input should be a valid string")
        pause = edit.get("pause_after_compaction", False)
        if not isinstance(pause, bool):
            raise invalid_request(f"{where}.pause_after_compaction: Input should be a valid boolean")
        return cls(trigger_tokens, instructions or None, pause)


def needs_compaction(settings: CompactionSettings, input_tokens: int) -> bool:
    """Whether a prompt of ``input_tokens`` (after :func:`compacted_history`) reaches the trigger."""
    return input_tokens >= settings.trigger_tokens


# --- the history the upstream sees --------------------------------------------------------------


def _summary_of(block: object) -> str | None:
    """The usable summary of a compaction block; None for a failed (null or empty) one, a no-op."""
    if not isinstance(block, dict) or block.get("type") != "compaction":
        return None
    content = block.get("content")
    return content if isinstance(content, str) and content.strip() else None


def _is_compaction(block: object) -> bool:
    return isinstance(block, dict) and block.get("type") == "compaction"


def summary_block(summary: str, cache_control: object = None) -> dict[str, Any]:
    """The text block through which the model reads a summary (keeping the compaction block's
    ``cache_control``, so a client's cache breakpoint stays where it put it)."""
    block: dict[str, Any] = {"type": "text", "text": f"{SUMMARY_PREAMBLE}\n\n{summary}"}
    if cache_control is not None:
        block["cache_control"] = cache_control
    return block


def compacted_history(request: dict[str, Any]) -> dict[str, Any]:
    """The request as the upstream should see it: everything before the last usable compaction block
    dropped, its summary given to the model as the first user turn.

    Blocks that followed the compaction block in its message stay (in an assistant turn after the
    summary, or in the summary's user turn when the block was in a user message); a following user
    message is merged into the summary's turn, so roles still alternate. Failed compaction blocks
    (``content: null``) are removed and change nothing else. A request without compaction blocks is
    returned as is; otherwise the client's request is not mutated (changed messages are copies).
    """
    messages = request.get("messages")
    if not isinstance(messages, list):
        return request
    last: tuple[int, int, str] | None = None  # (message, block, summary)
    found = False
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if _is_compaction(block):
                found = True
                if (summary := _summary_of(block)) is not None:
                    last = (i, j, summary)
    if not found:
        return request
    kept: list[Any] = []
    start = 0
    if last is not None:
        i, j, summary = last
        content = messages[i]["content"]
        head: list[Any] = [summary_block(summary, content[j].get("cache_control"))]
        rest = [b for b in content[j + 1 :] if not _is_compaction(b)]
        if messages[i].get("role") == "user":
            head.extend(rest)
            rest = []
        kept.append({"role": "user", "content": head})
        if rest:
            kept.append({**messages[i], "content": rest})
        start = i + 1
    for message in messages[start:]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(_is_compaction(b) for b in content):
            content = [b for b in content if not _is_compaction(b)]
            if not content:
                continue  # a message that held only a failed compaction
            message = {**message, "content": content}
        kept.append(message)
    return {**request, "messages": _merge_turns(kept)}


def _blocks(content: object) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _role(message: object) -> object:
    return message.get("role") if isinstance(message, dict) else None


def _merge_turns(messages: list[Any]) -> list[Any]:
    """Consecutive messages of one role joined into one (as Anthropic's API joins them itself), so
    upstreams that insist on alternation accept the history. A malformed entry is left for the
    request's validation to refuse."""
    merged: list[Any] = []
    for message in messages:
        role = _role(message)
        if merged and role is not None and _role(merged[-1]) == role:
            previous = merged[-1]
            merged[-1] = {
                **previous,
                "content": _blocks(previous.get("content")) + _blocks(message.get("content")),
            }
        else:
            merged.append(message)
    return merged


# --- the summarising call -----------------------------------------------------------------------


def summary_request(request: dict[str, Any], settings: CompactionSettings) -> dict[str, Any]:
    """The Anthropic-format request that asks the same model for a summary of the conversation so far.

    It carries the conversation as the upstream sees it (:func:`compacted_history`, so an earlier
    summary is summarised again rather than lost) with the prompt — the request's ``instructions``, or
    :data:`SUMMARY_PROMPT` — added as the last user turn, the request's ``system`` (the task's context),
    and ``metadata``. It carries no tools: a summary must be text, and without tool definitions the model
    cannot answer with a call (the history's tool calls still read as history: every translator sends
    them without definitions). Thinking, sampling settings, stop sequences and output formats are left
    out too, so nothing shapes or cuts the summary; ``max_tokens`` is :data:`SUMMARY_MAX_TOKENS`.
    """
    messages = list(compacted_history(request).get("messages") or [])
    prompt = {"type": "text", "text": settings.instructions or SUMMARY_PROMPT}
    if messages and _role(messages[-1]) == "user":
        messages[-1] = {**messages[-1], "content": [*_blocks(messages[-1].get("content")), prompt]}
    else:
        messages.append({"role": "user", "content": [prompt]})
    body: dict[str, Any] = {
        "model": request["model"],
        "max_tokens": SUMMARY_MAX_TOKENS,
        "stream": False,
        "messages": messages,
    }
    for key in ("system", "metadata"):
        if request.get(key) is not None:
            body[key] = request[key]
    return body


def summary_text(message: Mapping[str, Any]) -> str | None:
    """The summary in the summariser's answer (an Anthropic Message); None when there is none usable,
    which makes the compaction block's ``content`` null: a failed compaction, as the spec has it.

    The text between ``<summary>`` tags when the model used them (a summary cut at ``max_tokens`` keeps
    what it has), else all of its text.
    """
    if message.get("stop_reason") not in USABLE_STOP_REASONS:
        return None
    text = "".join(
        str(block.get("text") or "")
        for block in message.get("content") or ()
        if isinstance(block, dict) and block.get("type") == "text"
    )
    tagged = _SUMMARY_TAG.search(text)
    summary = (tagged.group(1) if tagged else text).strip()
    return summary or None


def continued_request(request: dict[str, Any], summary: str | None) -> dict[str, Any]:
    """The request the answer continues from once the conversation was compacted: exactly what
    :func:`compacted_history` makes of the client's next request, so this turn and the next see the same
    history. A failed compaction (``summary`` None) leaves the request as it was."""
    if summary is None:
        return request
    block = compaction_block(summary)
    messages = list(request.get("messages") or [])
    if messages and _role(messages[-1]) == "assistant":
        messages[-1] = {**messages[-1], "content": [*_blocks(messages[-1].get("content")), block]}
    else:
        messages.append({"role": "assistant", "content": [block]})
    return compacted_history({**request, "messages": messages})


# --- what the client gets -----------------------------------------------------------------------


def compaction_block(summary: str | None) -> dict[str, Any]:
    """The answer's ``compaction`` block (``content`` null for a failed compaction)."""
    return {"type": "compaction", "content": summary, "encrypted_content": None}


def compaction_events(index: int, summary: str | None) -> list[dict[str, Any]]:
    """The stream events of the compaction block at ``index``, as Anthropic streams it: the block empty,
    one ``compaction_delta`` with the whole summary, the stop."""
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "compaction", "content": None, "encrypted_content": None},
        },
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "compaction_delta", "content": summary, "encrypted_content": None},
        },
        {"type": "content_block_stop", "index": index},
    ]


def iteration_usage(usage: Mapping[str, Any], kind: Literal["compaction", "message"]) -> dict[str, Any]:
    """One ``usage.iterations`` entry from a Usage-like mapping."""
    return {
        "type": kind,
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        "cache_read_input_tokens": int(usage.get("cache_read_input_tokens") or 0),
        "cache_creation": usage.get("cache_creation"),
    }


def compaction_usage(compaction: Mapping[str, Any], answer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The answer's ``usage`` when it began with a compaction: the top-level fields are the answer's own
    (zeros when ``pause_after_compaction`` stopped it before any answer), and ``iterations`` lists the
    summarising call first, then the answer's call(s) — the answer's own ``iterations`` when it already
    has them (a server-tool loop), else one ``message`` entry."""
    if answer is None:
        top: dict[str, Any] = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        later: list[Any] = []
    else:
        top = dict(answer)
        later = list(answer.get("iterations") or ()) or [iteration_usage(answer, "message")]
    top["iterations"] = [iteration_usage(compaction, "compaction"), *later]
    return top

"""Responses API events → Anthropic block events, streamed or whole, through one assembler.

:class:`ResponseAssembler` takes Responses stream events and drives the shared
:class:`~anygate.providers.blocks.BlockStream`. :class:`ResponsesStreamTranslator` feeds it SSE frames;
the non-streaming path (``response.py``) turns a whole response object into the events a stream of it
would carry and feeds those, so both paths give the same Message for the same answer.

Output items map to blocks in order:

- ``reasoning``: its summary (or raw reasoning text) streams as a ``thinking`` block; when the item is
  done, its final state (id and ``encrypted_content``, from ``response.output_item.done``: the copy in
  ``output_item.added`` may be incomplete) is sealed into the block's signature. An item without any
  summary becomes a ``redacted_thinking`` block holding the same envelope.
- ``message``: ``output_text`` (and ``refusal``) parts stream as text.
- ``function_call``: a ``tool_use`` block with the ``call_id`` as its id.
- anything else (the upstream's own server tools) is not the client's to see and is skipped.

A stream is complete only with ``response.completed`` or ``response.incomplete``; ``error`` and
``response.failed`` raise, and a stream that stops before either ends with ``event: error``.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Final

import orjson

from anygate.hooks import Usage, token_count
from anygate.protocol.errors import UpstreamFailure
from anygate.protocol.sse import SSEDecoder, SSEFrame
from anygate.providers.blocks import BlockStream, FrameTranslator
from anygate.providers.openai_chat.names import anthropic_tool_id
from anygate.providers.openai_responses.errors import stream_failure
from anygate.providers.openai_responses.request import reasoning_envelope
from anygate.tokens import count_text_tokens

if TYPE_CHECKING:
    from anygate.providers.openai_responses.call import ResponsesCall

log = logging.getLogger("anygate.openai")

BYTES_PER_TOKEN: Final = 4
"""Rough bytes per token of a JSON request, for the ``message_start`` estimate."""

INCOMPLETE_REASON_TO_STOP_REASON: Final[dict[str, str]] = {
    "max_output_tokens": "max_tokens",
    "content_filter": "refusal",
}
"""``incomplete_details.reason`` → Anthropic ``stop_reason``; an unknown reason is logged and reported
as ``max_tokens`` (the answer was cut short)."""

TERMINAL_EVENTS: Final = frozenset({"response.completed", "response.incomplete"})
FAILURE_EVENTS: Final = frozenset({"error", "response.failed"})
MESSAGE_SEPARATOR: Final = "\n\n"
"""Between the texts of two message items (or two summary parts) that become one block."""


class ResponseAssembler:
    """Turns the events of one Responses answer into Anthropic events, in order."""

    __slots__ = (
        "_call",
        "_incomplete",
        "_output",
        "_reasoning_text",
        "_refused",
        "_seen_arguments",
        "_seen_text",
        "_separator_due",
        "_status",
        "_upstream_usage",
        "blocks",
    )

    def __init__(self, call: ResponsesCall) -> None:
        ctx = call.ctx
        self._call = call
        self.blocks = BlockStream(
            message_id=ctx.message_id, model=ctx.requested_model, sign_thinking=ctx.signer.sign
        )
        self._status: str | None = None
        self._incomplete: str | None = None
        self._refused = False
        self._upstream_usage: dict[str, Any] | None = None
        self._output: list[str] = []
        self._reasoning_text: dict[Hashable, list[str]] = {}
        # What each item streamed so far, as pieces: joined once, when the item's final state comes
        # (appending to a string per delta would copy the text again at every delta).
        self._seen_arguments: dict[Hashable, list[str]] = {}
        self._seen_text: dict[Hashable, list[str]] = {}
        self._separator_due = False

    @property
    def finished(self) -> bool:
        """Whether a terminal event (completed or incomplete) arrived."""
        return self._status is not None

    def start(self) -> None:
        """``message_start`` with the input tokens estimated from the request's size (exact figures come
        in ``message_delta``)."""
        estimate = max(self._call.body_bytes // BYTES_PER_TOKEN, 1)
        self.blocks.start(Usage(input_tokens=estimate, output_tokens=1))

    def event(self, payload: dict[str, Any]) -> None:
        """One Responses stream event."""
        kind = payload.get("type")
        if not isinstance(kind, str):
            raise ValueError("a Responses event has no type")
        if kind in FAILURE_EVENTS:
            raise stream_failure(payload)
        if self._status is not None:
            return  # nothing after the terminal event counts
        key = _key(payload)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._thinking(key, payload.get("delta"))
        elif kind == "response.reasoning_summary_part.added":
            if payload.get("summary_index", 0) and self._reasoning_text.get(key):
                self._thinking(key, MESSAGE_SEPARATOR)
        elif kind == "response.output_text.delta":
            self._text(key, payload.get("delta"))
        elif kind == "response.refusal.delta":
            self._refused = True
            self._text(key, payload.get("delta"))
        elif kind == "response.function_call_arguments.delta":
            self._arguments(key, payload.get("delta"))
        elif kind == "response.function_call_arguments.done":
            self._arguments(key, _rest(payload.get("arguments"), self._seen_arguments.get(key)))
        elif kind == "response.output_item.added":
            self._item_added(key, payload.get("item"))
        elif kind == "response.output_item.done":
            self._item_done(key, payload.get("item"))
        elif kind in TERMINAL_EVENTS:
            self._terminal(kind, payload.get("response"))

    # --- items -------------------------------------------------------------------------------------

    def _item_added(self, key: Hashable, item: object) -> None:
        if not isinstance(item, dict):
            raise ValueError("output_item.added without an item")
        kind = item.get("type")
        if kind == "function_call":
            name = item.get("name")
            call_id = item.get("call_id")
            self.blocks.tool_call(
                key,
                tool_id=anthropic_tool_id(call_id if isinstance(call_id, str) else None),
                name=self._call.tool_names.get(name, name) if isinstance(name, str) and name else None,
            )
        elif kind == "message" and self._seen_text:
            self._separator_due = True
        elif kind == "reasoning":
            self._reasoning_text[key] = []
        elif kind != "message":
            log.debug("skipping a %r output item: it is the upstream's own tool", kind)

    def _item_done(self, key: Hashable, item: object) -> None:
        if not isinstance(item, dict):
            raise ValueError("output_item.done without an item")
        kind = item.get("type")
        if kind == "reasoning":
            self._reasoning_done(key, item)
        elif kind == "function_call":
            self._arguments(key, _rest(item.get("arguments"), self._seen_arguments.get(key)))
        elif kind == "message":
            # The final text, when the deltas did not carry all of it (or any: a message sent whole).
            parts = [p for p in item.get("content") or () if isinstance(p, dict)]
            texts = [p.get("text") or p.get("refusal") or "" for p in parts]
            final = "".join(t for t in texts if isinstance(t, str))
            if any(p.get("type") == "refusal" for p in parts):
                self._refused = True
            self._text(key, _rest(final, self._seen_text.get(key)))

    def _reasoning_done(self, key: Hashable, item: dict[str, Any]) -> None:
        chunks = self._reasoning_text.pop(key, None)
        if chunks is None:  # no summary deltas seen: take the final item's summary
            chunks = []
            self._reasoning_text[key] = chunks
            for i, part in enumerate(item.get("summary") or ()):
                if isinstance(part, dict) and part.get("text"):
                    self._thinking(key, (MESSAGE_SEPARATOR if i else "") + str(part["text"]))
            chunks = self._reasoning_text.pop(key)
        envelope = reasoning_envelope(self._call.ctx.signer, item)
        if envelope is not None:
            self.blocks.end_thinking(envelope)
        elif chunks:
            self.blocks.end_thinking(self._call.ctx.signer.sign("".join(chunks)))

    # --- parts ------------------------------------------------------------------------------------

    def _thinking(self, key: Hashable, text: object) -> None:
        if isinstance(text, str) and text:
            self._reasoning_text.setdefault(key, []).append(text)
            self._output.append(text)
            self.blocks.thinking(text)

    def _text(self, key: Hashable, text: object) -> None:
        if not isinstance(text, str) or not text:
            return
        if self._separator_due:
            self._separator_due = False
            self.blocks.text(MESSAGE_SEPARATOR)
        self._seen_text.setdefault(key, []).append(text)
        self._output.append(text)
        self.blocks.text(text)

    def _arguments(self, key: Hashable, arguments: object) -> None:
        if isinstance(arguments, str) and arguments:
            self._seen_arguments.setdefault(key, []).append(arguments)
            self._output.append(arguments)
            self.blocks.tool_call(key, arguments=arguments)

    # --- the end ----------------------------------------------------------------------------------

    def _terminal(self, kind: str, response: object) -> None:
        if isinstance(response, dict):
            usage = response.get("usage")
            if isinstance(usage, dict):
                self._upstream_usage = usage
            details = response.get("incomplete_details")
            if kind == "response.incomplete":
                reason = details.get("reason") if isinstance(details, dict) else None
                self._incomplete = reason if isinstance(reason, str) else "unknown"
        elif kind == "response.incomplete":
            self._incomplete = "unknown"
        self._status = kind
        self.blocks.finish(self._stop_reason(), None, self.usage())

    def _stop_reason(self) -> str:
        if self._refused:
            return "refusal"
        if self._incomplete is not None:
            stop_reason = INCOMPLETE_REASON_TO_STOP_REASON.get(self._incomplete)
            if stop_reason is None:
                log.warning(
                    "unknown incomplete reason %r from the upstream; reporting max_tokens", self._incomplete
                )
                return "max_tokens"
            return stop_reason
        return "tool_use" if self.blocks.has_tool_calls else "end_turn"

    def usage(self) -> Usage:
        """The answer's usage: the upstream's figures (output includes reasoning tokens), or local counts
        when it reported none."""
        usage = self._upstream_usage
        if usage is None:
            return Usage(
                input_tokens=self._call.local_input_tokens(),
                output_tokens=count_text_tokens("".join(self._output), self._call.upstream_model),
            )
        details = usage.get("input_tokens_details")
        cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return Usage(
            input_tokens=max(token_count(usage.get("input_tokens")) - cached, 0),
            output_tokens=token_count(usage.get("output_tokens")),
            cache_read_input_tokens=cached,
        )


def _key(payload: dict[str, Any]) -> Hashable:
    """The output item an event belongs to: its ``output_index`` (every item event has one)."""
    index = payload.get("output_index")
    if isinstance(index, int):
        return index
    item = payload.get("item")
    item_id = payload.get("item_id") or (item.get("id") if isinstance(item, dict) else None)
    return item_id if isinstance(item_id, str) else None


def _rest(final: object, pieces: list[str] | None) -> str | None:
    """What a final text adds to the pieces already streamed (None when it is not a continuation)."""
    seen = "".join(pieces) if pieces else ""
    if not isinstance(final, str) or len(final) <= len(seen) or not final.startswith(seen):
        return None
    return final[len(seen) :]


class ResponsesStreamTranslator(FrameTranslator[SSEFrame]):
    """A Responses SSE stream → Anthropic SSE frames (see the module docstring)."""

    __slots__ = ("_assembler",)

    def __init__(self, call: ResponsesCall) -> None:
        self._assembler = ResponseAssembler(call)
        super().__init__(SSEDecoder(), self._assembler.blocks)

    @property
    def usage(self) -> Usage:
        return self._assembler.usage()

    def on_frame(self, frame: SSEFrame) -> None:
        data = frame.data
        if not data or data.strip() == "[DONE]":
            return
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            raise ValueError("a Responses event is not a JSON object")
        if not self.blocks.started:
            if payload.get("type") in FAILURE_EVENTS:
                raise stream_failure(payload)
            self._assembler.start()
        self._assembler.event(payload)

    def on_end(self) -> None:
        if not self._assembler.finished:
            raise UpstreamFailure(
                502, "the upstream stream ended before response.completed", error_type="api_error"
            )

"""Converse answers → Anthropic block events, streamed (ConverseStream) or whole (Converse).

:class:`ConverseAssembler` takes ConverseStream events (``messageStart``, ``contentBlockStart``,
``contentBlockDelta``, ``contentBlockStop``, ``messageStop``, ``metadata``) and drives
:class:`~anygate.providers.blocks.BlockStream`. A whole Converse answer is replayed through it as the
events of the same answer (``converse_events``), so a non-streaming Message is by construction what the
stream of that answer accumulates to.

Bedrock sends usage in ``metadata``, after (sometimes before) ``messageStop``; the final
``message_delta`` is held until both have arrived. Each reasoning block's signature (or redacted
content) is sealed in the thinking block's signature (``signing.py``) and goes back to Bedrock verbatim
on the next turn. A stream that ends without ``messageStop`` fails; an ``exception`` message fails it
with the mapped error (retried by the router when no byte has reached the client).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import orjson

from anygate.hooks import Usage, token_count
from anygate.protocol.errors import UpstreamFailure
from anygate.providers.bedrock.converse_request import ENVELOPE_PROVIDER
from anygate.providers.bedrock.errors import stream_exception
from anygate.providers.bedrock.eventstream import Event, EventStreamDecoder
from anygate.providers.blocks import BlockStream, FrameTranslator

if TYPE_CHECKING:
    from anygate.providers.bedrock.call import ConverseCall

log = logging.getLogger("anygate.bedrock")

BYTES_PER_TOKEN: Final = 4
"""Rough bytes per token of a JSON request, for the input-token estimate in ``message_start``."""

STOP_REASON_TO_ANTHROPIC: Final[dict[str, str]] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}
"""Converse ``stopReason`` → Anthropic ``stop_reason``. ``model_context_window_exceeded`` is Anthropic's
own (beta) stop reason and is kept. Unknown reasons are logged and reported as ``end_turn``."""

FAILED_STOP_REASONS: Final = frozenset({"malformed_model_output", "malformed_tool_use"})
"""Stop reasons that mean the model's answer is unusable: the attempt fails (and may be retried)."""


class ConverseAssembler:
    """One Converse answer → Anthropic events (see the module docstring)."""

    __slots__ = (
        "_call",
        "_kinds",
        "_metadata_seen",
        "_reasoning",
        "_stop_reason",
        "_stop_sequence",
        "_usage",
        "blocks",
    )

    def __init__(self, call: ConverseCall) -> None:
        ctx = call.ctx
        self._call = call
        self.blocks = BlockStream(
            message_id=ctx.message_id, model=ctx.requested_model, sign_thinking=ctx.signer.sign
        )
        self._kinds: dict[int, str] = {}
        self._reasoning: dict[int, dict[str, Any]] = {}
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._metadata_seen = False
        self._usage: Usage | None = None

    @property
    def stopped(self) -> bool:
        return self._stop_reason is not None

    def start(self) -> None:
        if not self.blocks.started:
            estimate = max(self._call.body_bytes // BYTES_PER_TOKEN, 1)
            self.blocks.start(Usage(input_tokens=estimate, output_tokens=1))

    def event(self, kind: str | None, payload: dict[str, Any]) -> None:
        """One ConverseStream event (its type and JSON payload)."""
        self.start()
        if kind == "contentBlockDelta":
            self._delta(_index(payload), payload.get("delta") or {})
        elif kind == "contentBlockStart":
            start = payload.get("start") or {}
            tool = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(tool, dict):
                index = _index(payload)
                self._kinds[index] = "tool"
                self.blocks.tool_call(index, tool_id=tool.get("toolUseId"), name=tool.get("name"))
        elif kind == "contentBlockStop":
            self._block_stop(_index(payload))
        elif kind == "messageStop":
            self._message_stop(payload)
        elif kind == "metadata":
            self._metadata(payload.get("usage"))
        # messageStart carries only the role; other event types are newer than this translator

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        text = delta.get("text")
        if isinstance(text, str):
            if text:
                self.blocks.text(text)
            return
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            arguments = tool.get("input")
            if isinstance(arguments, str) and arguments:
                self.blocks.tool_call(index, arguments=arguments)
            return
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            self._kinds[index] = "reasoning"
            state = self._reasoning.setdefault(index, {"text": False})
            piece = reasoning.get("text")
            if isinstance(piece, str) and piece:
                state["text"] = True
                self.blocks.thinking(piece)
            signature = reasoning.get("signature")
            if isinstance(signature, str):
                state["s"] = state.get("s", "") + signature
            redacted = reasoning.get("redactedContent")
            if isinstance(redacted, str):
                state["r"] = state.get("r", "") + redacted

    def _block_stop(self, index: int) -> None:
        if self._kinds.get(index) != "reasoning":
            return
        state = self._reasoning.pop(index, {"text": False})
        had_text = bool(state.pop("text"))
        if not had_text and "r" not in state:
            return  # a signature without reasoning: nothing to show or send back
        if not had_text:
            state = {"r": state["r"]}
        # Redacted reasoning (no text) becomes a redacted_thinking block whose data is the envelope.
        self.blocks.end_thinking(self._call.ctx.signer.seal(ENVELOPE_PROVIDER, state))

    def _message_stop(self, payload: dict[str, Any]) -> None:
        reason = payload.get("stopReason")
        reason = reason if isinstance(reason, str) else "end_turn"
        if reason in FAILED_STOP_REASONS:
            raise UpstreamFailure(
                502, f"the Bedrock model's answer was unusable ({reason})", error_type="api_error"
            )
        fields = payload.get("additionalModelResponseFields")
        if isinstance(fields, dict):
            matched = fields.get("stop_sequence")
            if matched is None and isinstance(fields.get("delta"), dict):
                matched = fields["delta"].get("stop_sequence")
            if isinstance(matched, str) and matched:
                self._stop_sequence = matched
        self._stop_reason = reason
        self._maybe_finish()

    def _metadata(self, usage: object) -> None:
        if isinstance(usage, dict):
            self._usage = Usage(
                input_tokens=token_count(usage.get("inputTokens")),
                output_tokens=token_count(usage.get("outputTokens")),
                cache_read_input_tokens=token_count(usage.get("cacheReadInputTokens")),
                cache_creation_input_tokens=token_count(usage.get("cacheWriteInputTokens")),
            )
        self._metadata_seen = True
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self._stop_reason is not None and self._metadata_seen and not self.blocks.finished:
            self.finish()

    def finish(self) -> None:
        """Close the message (also when the stream ended after ``messageStop`` without ``metadata``)."""
        reason = self._stop_reason or "end_turn"
        stop_reason = STOP_REASON_TO_ANTHROPIC.get(reason)
        if stop_reason is None:
            log.warning("unknown Bedrock stopReason %r; reporting end_turn", reason)
            stop_reason = "end_turn"
        if stop_reason == "end_turn" and self.blocks.has_tool_calls:
            stop_reason = "tool_use"
        sequence = self._stop_sequence if stop_reason == "stop_sequence" else None
        self.blocks.finish(stop_reason, sequence, self.usage())

    def usage(self) -> Usage:
        if self._usage is not None:
            return self._usage
        return Usage(input_tokens=max(self._call.body_bytes // BYTES_PER_TOKEN, 1))


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("contentBlockIndex")
    if not isinstance(index, int):
        raise ValueError("a Converse content block event has no contentBlockIndex")
    return index


class ConverseStreamTranslator(FrameTranslator[Event]):
    """A ConverseStream event stream → Anthropic SSE frames."""

    __slots__ = ("_assembler",)

    def __init__(self, call: ConverseCall) -> None:
        self._assembler = ConverseAssembler(call)
        super().__init__(EventStreamDecoder(), self._assembler.blocks)

    @property
    def usage(self) -> Usage:
        return self._assembler.usage()

    def on_frame(self, frame: Event) -> None:
        if frame.message_type != "event":
            raise stream_exception(frame.exception_type, frame.payload)
        payload = orjson.loads(frame.payload) if frame.payload else {}
        if not isinstance(payload, dict):
            raise ValueError("a ConverseStream event is not a JSON object")
        self._assembler.event(frame.event_type, payload)

    def on_end(self) -> None:
        if not self._assembler.stopped:
            raise UpstreamFailure(502, "the Bedrock stream ended without messageStop", error_type="api_error")
        if not self.blocks.finished:
            self._assembler.finish()


def converse_events(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A whole Converse answer as the ConverseStream events of the same answer."""
    output = answer.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise ValueError("the Converse answer has no output message")
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(message["content"]):
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            events.append(
                ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": block["text"]}})
            )
        elif isinstance(block.get("toolUse"), dict):
            tool = block["toolUse"]
            start = {"toolUse": {"toolUseId": tool.get("toolUseId"), "name": tool.get("name")}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            arguments = orjson.dumps(tool.get("input") if tool.get("input") is not None else {}).decode()
            delta = {"toolUse": {"input": arguments}}
            events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        elif isinstance(block.get("reasoningContent"), dict):
            reasoning = block["reasoningContent"]
            text = reasoning.get("reasoningText") if isinstance(reasoning.get("reasoningText"), dict) else {}
            part: dict[str, Any] = {}
            if isinstance(text.get("text"), str):
                part["text"] = text["text"]
            if isinstance(text.get("signature"), str):
                part["signature"] = text["signature"]
            if isinstance(reasoning.get("redactedContent"), str):
                part["redactedContent"] = reasoning["redactedContent"]
            delta = {"reasoningContent": part}
            events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        else:
            continue
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    stop: dict[str, Any] = {"stopReason": answer.get("stopReason")}
    if answer.get("additionalModelResponseFields") is not None:
        stop["additionalModelResponseFields"] = answer["additionalModelResponseFields"]
    events.append(("messageStop", stop))
    events.append(("metadata", {"usage": answer.get("usage")}))
    return events

"""Gemini answers → Anthropic block events, streamed or whole, through one assembler.

:class:`CandidateAssembler` takes candidate 0 of each ``GenerateContentResponse`` (a stream chunk, or the
whole answer: they have the same shape) and hands its parts to
:class:`~anygate.providers.blocks.BlockStream`, which owns the block ordering rules. Thought signatures
are sealed into thinking blocks as the package docstring describes. :class:`GeminiStreamTranslator`
feeds it the ``data:`` frames of ``streamGenerateContent?alt=sse``; ``response.py`` feeds it the one
answer and accumulates the events, so both paths give the same Message for the same answer.

A stream is complete only once a candidate carried a ``finishReason`` (or the prompt was blocked);
a stream that ends before that raises from :meth:`GeminiStreamTranslator.finish`, and the client sees
``event: error``, never ``message_stop``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Final

import orjson

from anygate.hooks import Usage, token_count
from anygate.protocol.errors import UpstreamFailure
from anygate.protocol.sse import SSEDecoder, SSEFrame
from anygate.providers.blocks import BlockStream, FrameTranslator
from anygate.providers.google.errors import in_band_error
from anygate.providers.google.signatures import seal

if TYPE_CHECKING:
    from anygate.providers.google.call import GeminiCall

log = logging.getLogger("anygate.gemini")

BYTES_PER_TOKEN: Final = 4
"""Rough bytes per token of a JSON request, for ``message_start`` when the first chunk has no usage."""

FINISH_REASON_TO_STOP_REASON: Final[dict[str, str]] = {
    "STOP": "end_turn",
    "FINISH_REASON_UNSPECIFIED": "end_turn",
    "OTHER": "end_turn",
    "NO_IMAGE": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "LANGUAGE": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "MODEL_ARMOR": "refusal",
    "IMAGE_SAFETY": "refusal",
    "IMAGE_PROHIBITED_CONTENT": "refusal",
    "IMAGE_RECITATION": "refusal",
    "IMAGE_OTHER": "refusal",
}
"""Gemini ``finishReason`` → Anthropic ``stop_reason``. ``STOP`` with function calls is ``tool_use``;
unknown reasons are logged and reported as ``end_turn``."""

FAILED_FINISH_REASONS: Final = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)
"""Finish reasons that mean the model failed to produce a usable answer: a retryable upstream failure."""

_VALID_TOOL_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


class CandidateAssembler:
    """Turns candidate 0 of one Gemini answer into Anthropic events, in order."""

    __slots__ = (
        "_backend",
        "_call",
        "_calls",
        "_finish_reason",
        "_held_signature",
        "_signer",
        "_text_tail",
        "_usage",
        "_usage_seen",
        "_usage_value",
        "blocked",
        "blocks",
    )

    def __init__(self, call: GeminiCall) -> None:
        ctx = call.ctx
        self._call = call
        self._signer = ctx.signer
        self._backend = call.backend
        self.blocks = BlockStream(
            message_id=ctx.message_id, model=ctx.requested_model, sign_thinking=ctx.signer.sign
        )
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._usage_seen: dict[str, Any] | None = None
        self._usage_value = Usage()
        self._calls = 0
        self._text_tail = ""
        self._held_signature: str | None = None
        self.blocked = False

    @property
    def finished(self) -> bool:
        """Whether the answer carried its end (a finish reason, or a blocked prompt)."""
        return self._finish_reason is not None or self.blocked

    def start(self, payload: dict[str, Any]) -> None:
        """``message_start``, with the prompt tokens of the first chunk (exact on Gemini, which reports
        usage from the first chunk on) or an estimate from the request's size."""
        usage = payload.get("usageMetadata")
        if isinstance(usage, dict) and token_count(usage.get("promptTokenCount")):
            start = self._usage_of(usage)
            start.output_tokens = max(start.output_tokens, 1)
        else:
            start = Usage(input_tokens=max(self._call.body_bytes // BYTES_PER_TOKEN, 1), output_tokens=1)
        self.blocks.start(start)

    def chunk(self, payload: dict[str, Any]) -> None:
        """One ``GenerateContentResponse``: candidate 0, usage, a prompt block."""
        if payload.get("error") is not None:
            raise in_band_error(payload)
        usage = payload.get("usageMetadata")
        if isinstance(usage, dict):
            self._usage = usage
        feedback = payload.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.blocked = True
        for candidate in payload.get("candidates") or ():
            if isinstance(candidate, dict) and candidate.get("index", 0) == 0:
                self.candidate(candidate)

    def candidate(self, candidate: dict[str, Any]) -> None:
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict):
                    self.part(part)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            if reason in FAILED_FINISH_REASONS:
                raise UpstreamFailure(
                    502, f"Gemini ended the answer with finishReason {reason}", error_type="api_error"
                )
            self._finish_reason = reason

    def part(self, part: dict[str, Any]) -> None:
        """One part: thought text, text or a function call, with its signature sealed in place."""
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        if self._held_signature is not None:
            held, self._held_signature = self._held_signature, None
            self.blocks.thinking("", signature=self._seal(held, "empty"))
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._function_call(call, signature)
            return
        text = part.get("text")
        if not isinstance(text, str):
            if signature is not None:  # a signature on a part the gateway does not show (code, media)
                self.blocks.thinking("", signature=self._seal(signature, "empty"))
            elif part:
                log.debug("ignoring a Gemini part with fields %s", sorted(part))
            return
        if part.get("thought") is True:
            if signature is not None:
                self.blocks.thinking(text, signature=self._seal(signature, "thought"))
            else:
                self.blocks.thinking(text)
            return
        if not text:
            if signature is not None:
                self._held_signature = signature  # placed when another part follows (see finish)
            return
        if signature is not None:
            self.blocks.thinking("", signature=self._seal(signature, "text"))
        self._text_tail = (self._text_tail + text)[-1024:]
        self.blocks.text(text)

    def _function_call(self, call: dict[str, Any], signature: str | None) -> None:
        if self._call.single_call and self._calls >= 1:
            log.info("dropping a parallel function call: the client disabled parallel tool use")
            return
        position = self._calls
        self._calls += 1
        if signature is not None:
            self.blocks.thinking("", signature=self._seal(signature, "call"))
        name = call.get("name")
        name = self._call.tool_names.get(name, name) if isinstance(name, str) and name else "function"
        arguments = call.get("args")
        upstream_id = call.get("id")
        if not isinstance(upstream_id, str) or not _VALID_TOOL_ID.match(upstream_id):
            upstream_id = None
        self.blocks.tool_call(
            ("call", position),
            tool_id=upstream_id,
            name=name,
            arguments=orjson.dumps(arguments if isinstance(arguments, dict) else {}).decode(),
        )

    def _seal(self, signature: str, on: str) -> str:
        return seal(self._signer, self._backend, signature, on)

    def finish(self) -> None:
        """Close the message: stop reason, stop sequence and usage.

        A signed empty text part that ends the answer (how Gemini closes a streamed text answer) is
        carried only when the answer called tools. After a final text its carrier would be the message's
        last block, and Anthropic clients read the answer from the last block (Claude Code's ``-p``
        result, ``content[-1].text`` in SDK code); Google validates no signature outside function calls,
        and a text answer ends the turn, so nothing is ever rejected for its absence.
        """
        if self._held_signature is not None and self.blocks.has_tool_calls:
            self.blocks.thinking("", signature=self._seal(self._held_signature, "empty"))
        self._held_signature = None
        stop_reason, stop_sequence = self._stop()
        self.blocks.finish(stop_reason, stop_sequence, self.usage())

    def _stop(self) -> tuple[str, str | None]:
        if self.blocked and self._finish_reason is None:
            return "refusal", None
        reason = self._finish_reason or "STOP"
        stop_reason = FINISH_REASON_TO_STOP_REASON.get(reason)
        if stop_reason is None:
            log.warning("unknown finishReason %r from Gemini; reporting end_turn", reason)
            stop_reason = "end_turn"
        if stop_reason == "end_turn" and self.blocks.has_tool_calls:
            return "tool_use", None
        if stop_reason == "end_turn":
            matched = self._matched_stop_sequence()
            if matched is not None:
                return "stop_sequence", matched
        return stop_reason, None

    def _matched_stop_sequence(self) -> str | None:
        """The stop sequence that ended the answer, when it can be told. Gemini names no matched sequence
        and leaves it out of the text, so this finds only sequences a model kept at the end of its text;
        otherwise a stop on a sequence is reported as ``end_turn`` (the README says so)."""
        sequences = [
            s for s in self._call.ctx.request.get("stop_sequences") or [] if isinstance(s, str) and s
        ]
        for sequence in sequences:
            if self._text_tail.endswith(sequence):
                return sequence
        return None

    def usage(self) -> Usage:
        """The answer's usage as last reported (Gemini repeats it, growing, on every chunk)."""
        if self._usage is None:
            return Usage(input_tokens=max(self._call.body_bytes // BYTES_PER_TOKEN, 1), output_tokens=0)
        if self._usage_seen is not self._usage:
            self._usage_seen, self._usage_value = self._usage, self._usage_of(self._usage)
        return self._usage_value

    @staticmethod
    def _usage_of(usage: dict[str, Any]) -> Usage:
        cached = token_count(usage.get("cachedContentTokenCount"))
        prompt = token_count(usage.get("promptTokenCount")) + token_count(
            usage.get("toolUsePromptTokenCount")
        )
        output = token_count(usage.get("candidatesTokenCount")) + token_count(usage.get("thoughtsTokenCount"))
        return Usage(
            input_tokens=max(prompt - cached, 0), output_tokens=output, cache_read_input_tokens=cached
        )


class GeminiStreamTranslator(FrameTranslator[SSEFrame]):
    """A ``streamGenerateContent?alt=sse`` stream → Anthropic SSE frames (see the module docstring)."""

    __slots__ = ("_assembler",)

    def __init__(self, call: GeminiCall) -> None:
        self._assembler = CandidateAssembler(call)
        super().__init__(SSEDecoder(), self._assembler.blocks)

    @property
    def usage(self) -> Usage:
        return self._assembler.usage()

    def on_frame(self, frame: SSEFrame) -> None:
        data = frame.data
        if not data or self.blocks.finished:
            return
        payload = orjson.loads(data)
        if isinstance(payload, list) and len(payload) == 1:  # Vertex wraps some errors in an array
            payload = payload[0]
        if not isinstance(payload, dict):
            raise ValueError("a stream chunk is not a JSON object")
        if payload.get("error") is not None:
            raise in_band_error(payload)
        if not self.blocks.started:
            self._assembler.start(payload)
        self._assembler.chunk(payload)

    def on_end(self) -> None:
        if not self._assembler.finished:
            raise UpstreamFailure(
                502, "the Gemini stream ended without a finishReason", error_type="api_error"
            )
        self._assembler.finish()

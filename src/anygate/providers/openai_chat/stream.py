"""Chat Completions answers → Anthropic block events, streamed or whole, through one assembler.

:class:`ChoiceAssembler` takes the parts of choice 0 (a stream ``delta`` or a whole ``message``: they
have the same fields) and hands them to :class:`~anygate.providers.blocks.BlockStream`, which owns the
block ordering rules. :class:`ChatStreamTranslator` feeds it SSE chunks; the non-streaming path
(``response.py``) feeds it the one message and accumulates the events, so both paths give the same
Message for the same answer.

A stream is complete only when it carried a ``finish_reason`` and ended with ``data: [DONE]``; anything
else raises :class:`GatewayError` from :meth:`ChatStreamTranslator.finish` and the client sees
``event: error``, never ``message_stop``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import orjson

from anygate.hooks import Usage, token_count
from anygate.protocol.errors import UpstreamFailure
from anygate.protocol.sse import SSEDecoder, SSEFrame
from anygate.providers.blocks import BlockStream, FrameTranslator
from anygate.providers.openai_chat.errors import in_band_error
from anygate.providers.openai_chat.names import anthropic_tool_id
from anygate.tokens import count_text_tokens

if TYPE_CHECKING:
    from anygate.providers.openai_chat.call import ChatCall

log = logging.getLogger("anygate.openai")

BYTES_PER_TOKEN: Final = 4
"""Rough bytes per token of a JSON chat request, for the ``message_start`` estimate."""

FINISH_REASON_TO_STOP_REASON: Final[dict[str, str]] = {
    "stop": "end_turn",
    "eos": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "model_length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    "stop_sequence": "stop_sequence",
}
"""Chat Completions ``finish_reason`` → Anthropic ``stop_reason``. ``stop`` becomes ``stop_sequence``
when the matched sequence is known, and ``tool_use`` when the answer holds tool calls."""

FAILED_FINISH_REASONS: Final = frozenset({"error", "abort", "cancelled"})
"""Finish reasons that mean the upstream gave up: the answer is incomplete and must fail."""

DONE_MARKER: Final = "[DONE]"


class ChoiceAssembler:
    """Turns the parts of choice 0 of one answer into Anthropic events, in order."""

    __slots__ = (
        "_call",
        "_finish_reason",
        "_matched_stop",
        "_output",
        "_refused",
        "_text_tail",
        "_tool_names",
        "_upstream_usage",
        "blocks",
    )

    def __init__(self, call: ChatCall) -> None:
        ctx = call.ctx
        self._call = call
        self.blocks = BlockStream(
            message_id=ctx.message_id, model=ctx.requested_model, sign_thinking=ctx.signer.sign
        )
        self._tool_names = call.tool_names
        self._finish_reason: str | None = None
        self._matched_stop: str | None = None
        self._refused = False
        self._upstream_usage: dict[str, Any] | None = None
        self._output: list[str] = []
        self._text_tail = ""

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    def start(self) -> None:
        """``message_start``, with the input tokens estimated locally; the exact figures come in
        ``message_delta``. The estimate is the upstream body's size over :data:`BYTES_PER_TOKEN`: running a
        tokenizer over a ~90 KB Claude Code request would cost milliseconds of CPU on every request, for a
        number that the final usage replaces moments later."""
        estimate = max(self._call.body_bytes // BYTES_PER_TOKEN, 1)
        self.blocks.start(Usage(input_tokens=estimate, output_tokens=1))

    def chunk(self, payload: dict[str, Any]) -> None:
        """One parsed upstream chunk (or whole completion): choice 0 and any usage."""
        if payload.get("error") is not None:
            raise in_band_error(payload)
        usage = payload.get("usage") or (payload.get("x_groq") or {}).get("usage")
        if isinstance(usage, dict):
            self._upstream_usage = usage
        for choice in payload.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self.choice(choice)

    def choice(self, choice: dict[str, Any]) -> None:
        """Choice 0 of a chunk (its ``delta``) or of a completion (its ``message``)."""
        part = choice.get("delta")
        if not isinstance(part, dict):
            part = choice.get("message")
        if isinstance(part, dict):
            self.parts(part)
        finish_reason = choice.get("finish_reason")
        if isinstance(finish_reason, str) and finish_reason:
            if finish_reason in FAILED_FINISH_REASONS:
                raise UpstreamFailure(
                    502,
                    f"the upstream ended the answer with finish_reason {finish_reason!r}",
                    error_type="api_error",
                )
            self._finish_reason = finish_reason
        matched = choice.get("stop_reason")  # vLLM: the stop string that matched (or a token id)
        if isinstance(matched, str) and matched:
            self._matched_stop = matched

    def parts(self, part: dict[str, Any]) -> None:
        """Reasoning, text, refusal and tool calls of one delta or message, in Anthropic's order."""
        reasoning = part.get("reasoning_content") or part.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self._output.append(reasoning)
            self.blocks.thinking(reasoning)
        content = part.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if isinstance(content, str) and content:
            self._text(content)
        refusal = part.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            self._text(refusal)
        tool_calls = part.get("tool_calls")
        if isinstance(tool_calls, list):
            for position, call in enumerate(tool_calls):
                if isinstance(call, dict):
                    self._tool_call(position, call)

    def _text(self, text: str) -> None:
        self._output.append(text)
        self._text_tail = (self._text_tail + text)[-1024:]
        self.blocks.text(text)

    def _tool_call(self, position: int, call: dict[str, Any]) -> None:
        index = call.get("index")
        key = index if isinstance(index, int) else (call.get("id") or position)
        function = call.get("function") or {}
        name = function.get("name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send arguments already parsed
            arguments = orjson.dumps(arguments).decode()
        arguments = arguments if isinstance(arguments, str) else ""
        if arguments:
            self._output.append(arguments)
        self.blocks.tool_call(
            key,
            tool_id=anthropic_tool_id(call.get("id") if isinstance(call.get("id"), str) else None),
            name=self._tool_names.get(name, name) if isinstance(name, str) and name else None,
            arguments=arguments,
        )

    def finish(self) -> None:
        """Close the message: stop reason, stop sequence and usage."""
        stop_reason, stop_sequence = self._stop()
        self.blocks.finish(stop_reason, stop_sequence, self.usage())

    def _stop(self) -> tuple[str, str | None]:
        reason = self._finish_reason or "stop"
        if self._refused:
            return "refusal", None
        if self.blocks.has_tool_calls and reason in ("stop", "tool_calls", "function_call"):
            return "tool_use", None
        stop_reason = FINISH_REASON_TO_STOP_REASON.get(reason)
        if stop_reason is None:
            log.warning("unknown finish_reason %r from the upstream; reporting end_turn", reason)
            stop_reason = "end_turn"
        if stop_reason in ("end_turn", "stop_sequence"):
            matched = self._matched_stop_sequence()
            if matched is not None:
                return "stop_sequence", matched
            return "end_turn", None
        return stop_reason, None

    def _matched_stop_sequence(self) -> str | None:
        """The stop sequence that ended the answer, when it can be told: vLLM names it, and servers
        that keep the sequence in the output end with it."""
        sequences = [
            s for s in self._call.ctx.request.get("stop_sequences") or [] if isinstance(s, str) and s
        ]
        if self._matched_stop is not None and self._matched_stop in sequences:
            return self._matched_stop
        for sequence in sequences:
            if self._text_tail.endswith(sequence):
                return sequence
        return None

    def usage(self) -> Usage:
        """The answer's usage: the upstream's figures, or local counts when it reported none."""
        usage = self._upstream_usage
        if usage is None:
            return Usage(
                input_tokens=self._call.local_input_tokens(),
                output_tokens=count_text_tokens("".join(self._output), self._call.upstream_model),
            )
        prompt = token_count(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details")
        cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
        cached = cached or token_count(usage.get("prompt_cache_hit_tokens"))  # DeepSeek
        return Usage(
            input_tokens=max(prompt - cached, 0),
            output_tokens=token_count(usage.get("completion_tokens")),
            cache_read_input_tokens=cached,
        )


class ChatStreamTranslator(FrameTranslator[SSEFrame]):
    """A Chat Completions SSE stream → Anthropic SSE frames (see the module docstring)."""

    __slots__ = ("_assembler", "_done")

    def __init__(self, call: ChatCall) -> None:
        self._assembler = ChoiceAssembler(call)
        super().__init__(SSEDecoder(), self._assembler.blocks)
        self._done = False

    @property
    def started(self) -> bool:
        return self.blocks.started

    @property
    def usage(self) -> Usage:
        return self._assembler.usage()

    def on_end(self) -> None:
        if self._assembler.finish_reason is None:
            raise UpstreamFailure(
                502, "the upstream stream ended without a finish_reason", error_type="api_error"
            )
        if not self._done:
            raise UpstreamFailure(502, "the upstream stream ended without [DONE]", error_type="api_error")

    def on_frame(self, frame: SSEFrame) -> None:
        data = frame.data
        if self._done or not data:
            return
        if data.strip() == DONE_MARKER:
            self._done = True
            if self._assembler.finish_reason is not None and self.started:
                self._assembler.finish()
            return
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            raise ValueError("a stream chunk is not a JSON object")
        if payload.get("error") is not None:
            raise in_band_error(payload)
        if not self.started:
            self._assembler.start()
        self._assembler.chunk(payload)

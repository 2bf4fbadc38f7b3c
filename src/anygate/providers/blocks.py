"""The one streaming state machine that turns upstream parts into Anthropic block events.

Upstreams stream several parts at once (reasoning, text, tool calls keyed by their own index) and may
interleave them; Anthropic streams one block at a time, each opened, filled and closed before the next,
with indexes equal to positions in the final content. Providers call :meth:`BlockStream.text`,
:meth:`~BlockStream.thinking` and :meth:`~BlockStream.tool_call` as parts arrive, and this class is the
only place that writes block events, so the ordering rules hold for every provider.

The rule for interleaving: before any tool call, text and thinking stream live, each part closing the
block before it. The first tool call (once its name is known) streams live too. From then on, anything
else (further tool calls, text, thinking) is held back and emitted whole, in order of first appearance,
when the message finishes, because the live tool call may still receive fragments and its block must
stay open until then. Tool calls that providers send one after another therefore cost nothing but the
streaming of the later calls' arguments, and interleaved fragments (index 0, 1, 0, 1) stay correct.
The live tool call's arguments stream once they are seen to start a JSON object; a call cut off
mid-arguments is completed by a suffix at close (``tool_json``), so its input is always an object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from anygate.hooks import Usage
from anygate.protocol.sse import encode_event
from anygate.providers.tool_json import completion_suffix, repair_arguments

F = TypeVar("F")
F_co = TypeVar("F_co", covariant=True)


@dataclass(slots=True, eq=False)
class _Part:
    """One upstream part being assembled (a text run, a reasoning run, or a tool call). Parts compare by
    identity: two identical parallel calls are two parts."""

    kind: str  # "text", "thinking", "redacted_thinking" or "tool_use"
    chunks: list[str] = field(default_factory=list)
    tool_id: str | None = None
    name: str | None = None
    index: int | None = None  # the Anthropic block index once the block is open on the wire
    sent: int = 0  # characters of a live tool call's arguments already sent as input_json_delta
    signature: str | None = None  # a thinking block's signature given by the provider (else computed)
    ended: bool = False  # a thinking part the upstream ended: further reasoning starts a new block

    @property
    def content(self) -> str:
        return "".join(self.chunks)


class BlockStream:
    """Builds the Anthropic event sequence of one message; events accumulate in :attr:`events`.

    Args:
        message_id: the ``msg_…`` id reported to the client.
        model: the model name the client asked for.
        sign_thinking: returns the signature for a finished thinking block's text.
    """

    __slots__ = (
        "_deferred",
        "_live",
        "_next_index",
        "_sign_thinking",
        "_tool_opened",
        "_tools",
        "events",
        "finished",
        "message_id",
        "model",
        "started",
        "stop_reason",
    )

    def __init__(self, *, message_id: str, model: str, sign_thinking: Callable[[str], str]) -> None:
        self.message_id = message_id
        self.model = model
        self.events: list[dict[str, Any]] = []
        self.started = False
        self.finished = False
        self.stop_reason: str | None = None
        """What :meth:`finish` was given: the answer's stop reason, for hooks (None until then)."""
        self._sign_thinking = sign_thinking
        self._next_index = 0
        self._live: _Part | None = None
        self._tools: dict[Hashable, _Part] = {}
        self._deferred: list[_Part] = []
        self._tool_opened = False

    def drain(self) -> list[dict[str, Any]]:
        """Take the events produced since the last call."""
        events, self.events = self.events, []
        return events

    def start(self, usage: Usage) -> None:
        """Emit ``message_start`` with the usage known so far (input tokens, counted or estimated)."""
        self.started = True
        self.events.append(
            {
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage_json(usage),
                },
            }
        )

    def text(self, text: str) -> None:
        """A fragment of visible text."""
        self._prose("text", text)

    def thinking(self, text: str, *, signature: str | None = None) -> None:
        """A fragment of reasoning, shown as a thinking block.

        ``signature`` (sealed upstream state) ends the block with that signature instead of the signer's
        mark; reasoning that follows opens a new block. With a signature the text may be empty: the block
        then only carries the state (an upstream part's signature that has no Anthropic field of its own).
        """
        if signature is None:
            self._prose("thinking", text)
            return
        part = self._open_thinking()
        if text:
            part.chunks.append(text)
            if part is self._live:
                self._delta(part, {"type": "thinking_delta", "thinking": text})
        part.signature = signature
        part.ended = True

    def end_thinking(self, signature: str) -> None:
        """The upstream's current reasoning item is complete: its thinking block gets ``signature``
        (sealed upstream state) instead of a computed one, and later reasoning starts a new block.

        When no reasoning text came for it (the upstream gave no summary), the item becomes a
        ``redacted_thinking`` block whose ``data`` is the signature.
        """
        part = self._live if self._live is not None and not self._tool_opened else None
        if part is None and self._deferred:
            part = self._deferred[-1]
        if part is not None and part.kind == "thinking" and not part.ended:
            part.signature = signature
            part.ended = True
            return
        self.redacted_thinking(signature)

    def redacted_thinking(self, data: str) -> None:
        """A whole ``redacted_thinking`` block (opaque reasoning the client must send back)."""
        part = _Part("redacted_thinking", [data], ended=True)
        if self._tool_opened:
            self._deferred.append(part)
            return
        self._open(part)
        self._close_live()

    def tool_call(
        self, key: Hashable, *, tool_id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        """A fragment of the tool call that the upstream identifies by ``key`` (its own index).

        ``tool_id`` and ``name`` may come with any fragment (normally the first); arguments are JSON
        text fragments that concatenate to the call's input.
        """
        part = self._tools.get(key)
        if part is None:
            part = _Part("tool_use")
            self._tools[key] = part
        if tool_id and not part.tool_id:
            part.tool_id = tool_id
        if name and not part.name:
            part.name = name
        if arguments:
            part.chunks.append(arguments)
        if part is self._live:
            if arguments:
                self._send_arguments(part)
            return
        if part.index is None and not self._tool_opened and part.name is not None:
            if part in self._deferred:
                self._deferred.remove(part)
            self._open(part)
            self._tool_opened = True
            self._send_arguments(part)
        elif part.index is None and part not in self._deferred:
            self._deferred.append(part)

    def finish(self, stop_reason: str | None, stop_sequence: str | None, usage: Usage) -> None:
        """Close every block, emit what was held back, then ``message_delta`` and ``message_stop``."""
        self._close_live()
        for part in self._deferred:
            self._emit_whole(part)
        self._deferred.clear()
        self.events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": usage_json(usage),
            }
        )
        self.events.append({"type": "message_stop"})
        self.finished = True
        self.stop_reason = stop_reason

    @property
    def has_tool_calls(self) -> bool:
        """Whether any tool call was seen (a ``stop`` finish with tool calls still means tool_use)."""
        return bool(self._tools)

    def _send_arguments(self, part: _Part) -> None:
        """Stream a live tool call's new argument text, once it is known to start an object: text that
        does not (``[1]``, prose) can only be repaired whole, so it is held and repaired at close."""
        content = part.content
        if part.sent == 0 and not content.lstrip().startswith("{"):
            return
        if len(content) > part.sent:
            self._delta(part, {"type": "input_json_delta", "partial_json": content[part.sent :]})
            part.sent = len(content)

    def _prose(self, kind: str, text: str) -> None:
        if not text:
            return
        if self._tool_opened:
            last = self._deferred[-1] if self._deferred else None
            if last is not None and last.kind == kind and not last.ended:
                last.chunks.append(text)
            else:
                self._deferred.append(_Part(kind, [text]))
            return
        live = self._live
        if live is None or live.kind != kind or live.ended:
            live = _Part(kind)
            self._open(live)
        live.chunks.append(text)
        delta_key = "text" if kind == "text" else "thinking"
        self._delta(live, {"type": f"{delta_key}_delta", delta_key: text})

    def _open_thinking(self) -> _Part:
        """The unsigned thinking block being assembled (live or held back), or a new one."""
        if self._tool_opened:
            last = self._deferred[-1] if self._deferred else None
            if last is None or last.kind != "thinking" or last.ended:
                last = _Part("thinking")
                self._deferred.append(last)
            return last
        live = self._live
        if live is None or live.kind != "thinking" or live.ended:
            live = _Part("thinking")
            self._open(live)
        return live

    def _open(self, part: _Part) -> None:
        self._close_live()
        part.index = self._next_index
        self._next_index += 1
        if part.kind == "tool_use" and not part.tool_id:
            part.tool_id = f"toolu_{self.message_id.removeprefix('msg_')}_{part.index}"
        self._live = part
        self.events.append(
            {"type": "content_block_start", "index": part.index, "content_block": _empty(part)}
        )

    def _delta(self, part: _Part, delta: dict[str, Any]) -> None:
        self.events.append({"type": "content_block_delta", "index": part.index, "delta": delta})

    def _close_live(self) -> None:
        part = self._live
        if part is None:
            return
        if part.kind == "thinking":
            signature = part.signature or self._sign_thinking(part.content)
            self._delta(part, {"type": "signature_delta", "signature": signature})
        elif part.kind == "tool_use":
            if part.sent:
                suffix = completion_suffix(part.content)
                if suffix:
                    self._delta(part, {"type": "input_json_delta", "partial_json": suffix})
            elif part.chunks:
                arguments = repair_arguments(part.content)
                if arguments != "{}":
                    self._delta(part, {"type": "input_json_delta", "partial_json": arguments})
        self.events.append({"type": "content_block_stop", "index": part.index})
        self._live = None

    def _emit_whole(self, part: _Part) -> None:
        """Open, fill and close a held-back part in one go."""
        self._open(part)
        content = part.content
        if part.kind == "tool_use":
            arguments = repair_arguments(content)
            if arguments != "{}":
                self._delta(part, {"type": "input_json_delta", "partial_json": arguments})
            part.chunks = []  # the repaired text is final; nothing left for _close_live to complete
        elif part.kind == "thinking":
            if content:
                self._delta(part, {"type": "thinking_delta", "thinking": content})
        elif part.kind == "redacted_thinking":
            pass  # whole in its content_block_start
        else:
            self._delta(part, {"type": "text_delta", "text": content})
        self._close_live()


def usage_json(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage`` object for a :class:`Usage`."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def _empty(part: _Part) -> dict[str, Any]:
    if part.kind == "text":
        return {"type": "text", "text": ""}
    if part.kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if part.kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": part.content}
    return {"type": "tool_use", "id": part.tool_id or "", "name": part.name or "", "input": {}}


class FrameDecoder(Protocol[F_co]):
    """Splits an upstream byte stream into frames (SSE frames, AWS event-stream messages…)."""

    def feed(self, chunk: bytes) -> Iterable[F_co]:
        """The frames a network chunk completed."""
        ...

    def flush(self) -> Iterable[F_co]:
        """The frames completed by the end of the stream."""
        ...


class FrameTranslator(ABC, Generic[F]):
    """The plumbing every translated stream shares: upstream bytes → frames (the provider's decoder) →
    the provider's handling of each frame, which drives :attr:`blocks` → Anthropic SSE bytes.

    A provider's stream translator subclasses this and implements :meth:`on_frame` and :meth:`on_end`
    (and ``usage``); it never writes events or bytes itself. The stop reason is the one the provider gave
    :meth:`BlockStream.finish`.
    """

    __slots__ = ("_decoder", "blocks")

    def __init__(self, decoder: FrameDecoder[F], blocks: BlockStream) -> None:
        self._decoder = decoder
        self.blocks = blocks

    def feed(self, chunk: bytes) -> bytes:
        for frame in self._decoder.feed(chunk):
            self.on_frame(frame)
        return self.drain()

    def finish(self) -> bytes:
        for frame in self._decoder.flush():
            self.on_frame(frame)
        self.on_end()
        return self.drain()

    @property
    def stop_reason(self) -> str | None:
        return self.blocks.stop_reason

    def drain(self) -> bytes:
        """The SSE bytes of the events produced since the last call."""
        events = self.blocks.drain()
        if not events:
            return b""
        return b"".join(encode_event(event) for event in events)

    @abstractmethod
    def on_frame(self, frame: F) -> None:
        """Handle one upstream frame (raise ValueError when it is malformed)."""

    @abstractmethod
    def on_end(self) -> None:
        """The upstream stream ended: finish the message, or raise GatewayError if it was incomplete."""

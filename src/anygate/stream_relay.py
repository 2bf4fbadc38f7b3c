"""The streams of an answer: an upstream stream read and translated (its first bytes, still retryable;
the rest with pings and an idle limit), and the byte streams the client gets, accounted once each.

:class:`ClientStreams` makes the client's streams (a relayed upstream stream, a server-tool turn, a
local answer replayed); the server-tool loop (:mod:`anygate.tools.loop`) reads upstream streams back as
events (:func:`stream_events`), one upstream call after another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from anygate.hooks import RequestRecord, Usage
from anygate.protocol.errors import GatewayError, InternalError, UpstreamFailure, malformed_upstream
from anygate.protocol.sse import PING_FRAME, SSEDecoder, encode_error, encode_event
from anygate.providers.base import StreamTranslator
from anygate.routing.retry import AttemptOutcome
from anygate.tools.loop import OpenStep, ServerToolTurn
from anygate.upstream import UpstreamResponse

log = logging.getLogger("anygate")


@dataclass(slots=True, frozen=True)
class OpenStream:
    """An upstream stream whose first translated bytes arrived (``Gateway._open_call``)."""

    response: UpstreamResponse
    translator: StreamTranslator
    first: bytes


async def first_bytes(response: UpstreamResponse, translator: StreamTranslator, timeout: float) -> bytes:
    """Read until the translator has something for the client. Failures here can still be retried,
    because the client has received nothing yet."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await response.read_chunk()
                if not chunk:
                    return translator.finish()
                out = translator.feed(chunk)
                if out:
                    return out
    except TimeoutError:
        raise UpstreamFailure(504, f"the upstream sent nothing within {timeout:g}s") from None
    except ValueError as exc:
        raise malformed_upstream("stream", exc) from None


class Translated:
    """The client's bytes of one upstream stream after its first bytes: each translated chunk, a
    ``ping`` frame every ``ping_interval`` seconds of upstream silence, and the translator's tail.

    A reader, not a generator, so the relay that wraps it pays one coroutine call per chunk instead of a
    second generator step. :meth:`next` raises :class:`~anygate.protocol.errors.UpstreamFailure` after
    ``idle_timeout`` seconds of silence and for a malformed stream (the translator's ``ValueError``);
    the caller owns the response.
    """

    __slots__ = ("_done", "_silent", "idle_timeout", "ping_interval", "response", "translator")

    def __init__(
        self,
        response: UpstreamResponse,
        translator: StreamTranslator,
        *,
        ping_interval: float | None,
        idle_timeout: float,
    ) -> None:
        self.response = response
        self.translator = translator
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self._done = False
        self._silent = 0.0
        """Seconds of upstream silence so far (across calls: a ``ping`` returned does not reset it)."""

    async def next(self) -> bytes | None:
        """The next bytes for the client (never empty), or None once the stream ended."""
        if self._done:
            return None
        idle_timeout = self.idle_timeout
        try:
            while True:
                wait = idle_timeout - self._silent
                if self.ping_interval:
                    wait = min(self.ping_interval, wait)
                try:
                    async with asyncio.timeout(wait):
                        chunk = await self.response.read_chunk()
                except TimeoutError:
                    self._silent += wait  # pings do not end the silence: only the upstream's bytes do
                    if self._silent >= idle_timeout:
                        raise UpstreamFailure(
                            504, f"the upstream stream was silent for {idle_timeout:g}s"
                        ) from None
                    return PING_FRAME
                self._silent = 0.0
                if not chunk:
                    self._done = True
                    return self.translator.finish() or None
                out = self.translator.feed(chunk)
                if out:
                    return out
        except ValueError as exc:
            raise malformed_upstream("stream", exc) from None


async def stream_events(
    opened: OpenStream, *, ping_interval: float | None, idle_timeout: float
) -> AsyncGenerator[dict[str, Any], None]:
    """The rest of an opened stream as Anthropic events (pings included), for code that reads a stream
    instead of relaying it (the server-tool loop). The response is released at the end, or dropped
    when the reader stops early or the stream fails."""
    decoder = SSEDecoder()
    rest = Translated(
        opened.response, opened.translator, ping_interval=ping_interval, idle_timeout=idle_timeout
    )
    completed = False
    try:
        chunk: bytes | None = opened.first
        while chunk is not None:
            for frame in decoder.feed(chunk):  # whole frames: see StreamTranslator.feed
                yield orjson.loads(frame.data)
            chunk = await rest.next()
        completed = True
    finally:
        if completed:
            opened.response.release()
        else:
            opened.response.close()


class ReleasingStream:
    """An answer's byte stream whose ``aclose()`` releases the upstream even if it was never iterated.

    An async generator closed before its first step never runs its ``finally``; a client that leaves
    between the gateway's answer and the first byte sent would otherwise keep the upstream connection
    open and the deployment's in-flight count raised.
    """

    __slots__ = ("_abandon", "_chunks", "_started")

    def __init__(self, chunks: AsyncGenerator[bytes, None], abandon: Callable[[], None]) -> None:
        self._chunks = chunks
        self._abandon = abandon
        self._started = False

    def __aiter__(self) -> ReleasingStream:
        return self

    async def __anext__(self) -> bytes:
        self._started = True
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        if not self._started:
            self._started = True
            self._abandon()
        await self._chunks.aclose()


Complete = Callable[..., None]
"""``Gateway._complete(record, failure, usage, *, client_gone=False)``: closes a request's record once."""


class ClientStreams:
    """The byte streams the gateway answers with, each accounted exactly once when it ends: complete,
    failed (after the first byte: an ``event: error`` frame, never a clean-looking end), or left by its
    client; and released even if the client never read it (:class:`ReleasingStream`).

    Args:
        complete: closes a request's record (``Gateway._complete``).
        ping_interval: seconds of upstream silence between ``ping`` frames (None: no pings).
        idle_timeout: seconds of upstream silence after which a stream is given up.
    """

    __slots__ = ("_complete", "idle_timeout", "ping_interval")

    def __init__(self, complete: Complete, *, ping_interval: float | None, idle_timeout: float) -> None:
        self._complete = complete
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout

    @property
    def limits(self) -> dict[str, Any]:
        """``ping_interval`` and ``idle_timeout``, as :func:`stream_events` takes them."""
        return {"ping_interval": self.ping_interval, "idle_timeout": self.idle_timeout}

    def relay(self, opened: OpenStream, done: AttemptOutcome, record: RequestRecord) -> ReleasingStream:
        """An upstream stream translated for the client."""
        chunks = self._relay(opened.response, opened.translator, opened.first, done, record)
        return ReleasingStream(chunks, self._abandon(done, record, opened.response))

    def turn(
        self,
        turn: ServerToolTurn,
        first: AsyncIterator[dict[str, Any]] | None,
        open_step: OpenStep,
        done: AttemptOutcome,
        record: RequestRecord,
        held: UpstreamResponse | None,
    ) -> ReleasingStream:
        """A server-tool turn's events (:mod:`anygate.tools.loop`) as SSE; ``held`` is the first
        upstream call's response, let go of if the client never reads."""
        return ReleasingStream(
            self._turn(turn, first, open_step, done, record), self._abandon(done, record, held)
        )

    def replay(
        self, events: list[dict[str, Any]], done: AttemptOutcome, record: RequestRecord, usage: Usage
    ) -> ReleasingStream:
        """A local answer as an SSE stream: one frame per event, yielding to the loop between frames."""
        return ReleasingStream(self._replay(events, done, record, usage), self._abandon(done, record, None))

    async def _relay(
        self,
        response: UpstreamResponse,
        translator: StreamTranslator,
        first: bytes,
        done: AttemptOutcome,
        record: RequestRecord,
    ) -> AsyncGenerator[bytes, None]:
        failure: GatewayError | None = None
        completed = False
        try:
            yield first
            rest = Translated(
                response, translator, ping_interval=self.ping_interval, idle_timeout=self.idle_timeout
            )
            while (out := await rest.next()) is not None:
                yield out
            completed = True
        except Exception as exc:
            failure = _stream_failure(exc, record)
        finally:
            if completed:
                response.release()
            else:
                response.close()
            self._ended(record, done, translator.usage, translator.stop_reason, failure, completed=completed)
        if failure is not None:
            yield _error_frame(failure, record)

    async def _turn(
        self,
        turn: ServerToolTurn,
        first: AsyncIterator[dict[str, Any]] | None,
        open_step: OpenStep,
        done: AttemptOutcome,
        record: RequestRecord,
    ) -> AsyncGenerator[bytes, None]:
        failure: GatewayError | None = None
        completed = False
        try:
            async with aclosing(turn.events(first, open_step)) as events:  # a client that leaves stops it
                async for event in events:
                    yield encode_event(event)
            completed = True
        except Exception as exc:
            failure = _stream_failure(exc, record)
        finally:
            self._ended(record, done, turn.usage, turn.stop_reason, failure, completed=completed)
        if failure is not None:
            yield _error_frame(failure, record)

    async def _replay(
        self, events: list[dict[str, Any]], done: AttemptOutcome, record: RequestRecord, usage: Usage
    ) -> AsyncGenerator[bytes, None]:
        completed = False
        try:
            for event in events:
                yield encode_event(event)
                await asyncio.sleep(0)
            completed = True
            record.stop_reason = final_delta(events)[1]
        finally:
            done(None)
            self._complete(record, None, usage, client_gone=not completed)

    def _ended(
        self,
        record: RequestRecord,
        done: AttemptOutcome,
        usage: Usage,
        stop_reason: str | None,
        failure: GatewayError | None,
        *,
        completed: bool,
    ) -> None:
        if completed:
            record.stop_reason = stop_reason
            done(None, tokens=usage.tokens)
            self._complete(record, None, usage)
        else:
            done(failure, abandoned=failure is None)
            self._complete(record, failure, usage, client_gone=failure is None)

    def _abandon(
        self, done: AttemptOutcome, record: RequestRecord, response: UpstreamResponse | None
    ) -> Callable[[], None]:
        """What a stream that was never read does when closed: let go of the upstream and the record."""

        def abandon() -> None:
            if response is not None:
                response.close()
            done(None, abandoned=True)
            self._complete(record, None, client_gone=True)

        return abandon


def final_delta(events: list[dict[str, Any]]) -> tuple[Usage, str | None]:
    """The usage and stop reason a local answer reports in its ``message_delta``."""
    for event in reversed(events):
        if event.get("type") == "message_delta":
            delta = event.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            return Usage.from_anthropic(event.get("usage")), stop_reason
    return Usage(), None


def _stream_failure(exc: Exception, record: RequestRecord) -> GatewayError:
    """What a stream that raised ``exc`` after it started tells its client (a bug is logged here)."""
    if isinstance(exc, GatewayError):
        return exc
    log.exception("stream %s failed inside the gateway", record.request_id)
    return InternalError()


def _error_frame(failure: GatewayError, record: RequestRecord) -> bytes:
    log.warning("stream %s failed after it started: %s", record.request_id, failure.message)
    return encode_error(failure.error_type, failure.message, record.request_id)

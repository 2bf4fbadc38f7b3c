"""Reading a translated upstream stream: the first bytes (still retryable), the rest with pings and an
idle limit, and the byte stream handed to the client.

The gateway wraps these with its accounting (:meth:`anygate.gateway.Gateway._relay`); the server-tool
loop (:mod:`anygate.tools.loop`) reads the same bytes back as events, one upstream call after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from anygate.protocol.errors import UpstreamFailure, malformed_upstream
from anygate.protocol.sse import PING_FRAME, SSEDecoder
from anygate.providers.base import StreamTranslator
from anygate.upstream import UpstreamResponse


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


async def translated(
    response: UpstreamResponse,
    translator: StreamTranslator,
    first: bytes,
    *,
    ping_interval: float | None,
    idle_timeout: float,
) -> AsyncGenerator[bytes, None]:
    """The client's bytes of one upstream stream: ``first``, then each translated chunk, a ``ping``
    frame every ``ping_interval`` seconds of upstream silence, and the translator's tail.

    Raises :class:`~anygate.protocol.errors.UpstreamFailure` after ``idle_timeout`` seconds of silence
    and for a malformed stream (the translator's ``ValueError``); the caller owns the response.
    """
    yield first
    silent = 0.0
    try:
        while True:
            wait = idle_timeout - silent
            if ping_interval:
                wait = min(ping_interval, wait)
            try:
                async with asyncio.timeout(wait):
                    chunk = await response.read_chunk()
            except TimeoutError:
                silent += wait
                if silent >= idle_timeout:
                    raise UpstreamFailure(
                        504, f"the upstream stream was silent for {idle_timeout:g}s"
                    ) from None
                yield PING_FRAME
                continue
            silent = 0.0
            if not chunk:
                break
            out = translator.feed(chunk)
            if out:
                yield out
        tail = translator.finish()
    except ValueError as exc:
        raise malformed_upstream("stream", exc) from None
    if tail:
        yield tail


async def stream_events(
    opened: OpenStream, *, ping_interval: float | None, idle_timeout: float
) -> AsyncGenerator[dict[str, Any], None]:
    """The rest of an opened stream as Anthropic events (pings included), for code that reads a stream
    instead of relaying it (the server-tool loop). The response is released at the end, or dropped
    when the reader stops early or the stream fails."""
    decoder = SSEDecoder()
    completed = False
    try:
        async for chunk in translated(
            opened.response,
            opened.translator,
            opened.first,
            ping_interval=ping_interval,
            idle_timeout=idle_timeout,
        ):
            for frame in decoder.feed(chunk):  # whole frames: see StreamTranslator.feed
                yield orjson.loads(frame.data)
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

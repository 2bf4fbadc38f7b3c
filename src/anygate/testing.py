"""An in-process upstream for tests: :class:`MockTransport` answers upstream requests without sockets.

Pass it to :class:`anygate.gateway.Gateway` (``transport=MockTransport(handler)``); ``handler`` receives
each :class:`~anygate.providers.base.UpstreamRequest` and returns a :class:`MockResponse`. Delays are
``asyncio.sleep`` calls on the running loop, so under a loop with virtual time (``looptime``) a test of
retries, backoff, cooldowns and timeouts runs in milliseconds with exact timing.

``MockResponse`` can also fail the way a network does: ``refuse`` (nothing listens), ``cut`` (the
connection breaks after the given chunks), or ``hang`` (headers never come).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from anygate.protocol.errors import UpstreamFailure, UpstreamUnreachable
from anygate.providers.base import UpstreamRequest
from anygate.upstream import answer_too_large


@dataclass
class MockResponse:
    """A scripted upstream answer.

    Attributes:
        status: the HTTP status.
        chunks: the body, as the pieces the client reads (``b""`` entries are skipped).
        headers: response headers (lower-case names).
        delay: seconds before the headers arrive.
        chunk_delay: seconds before each chunk.
        refuse: fail to connect instead of answering.
        hang: never send the headers.
        cut: break the connection after the chunks instead of ending the body.
    """

    status: int = 200
    chunks: Sequence[bytes] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    refuse: bool = False
    hang: bool = False
    cut: bool = False

    @classmethod
    def json(cls, body: object, status: int = 200, **kwargs: object) -> MockResponse:
        """A JSON answer."""
        return cls(status, [orjson.dumps(body)], {"content-type": "application/json"}, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def sse(cls, frames: Sequence[bytes], **kwargs: object) -> MockResponse:
        """A stream: each frame is one chunk."""
        return cls(200, list(frames), {"content-type": "text/event-stream"}, **kwargs)  # type: ignore[arg-type]


Handler = Callable[[UpstreamRequest], MockResponse | Awaitable[MockResponse]]


class MockTransport:
    """A :class:`~anygate.upstream.Transport` that asks ``handler`` instead of the network.

    Every request is kept in :attr:`requests`, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[UpstreamRequest] = []
        self.open_responses = 0
        """Answers neither released nor closed: a leak if not zero once a test is over."""

    async def open(self, request: UpstreamRequest) -> _MockUpstreamResponse:
        self.requests.append(request)
        answer = self._handler(request)
        scripted = answer if isinstance(answer, MockResponse) else await answer
        if scripted.refuse:
            raise UpstreamUnreachable("cannot connect to the upstream: Connect call failed")
        if scripted.hang:
            await asyncio.Event().wait()
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        self.open_responses += 1
        return _MockUpstreamResponse(self, scripted)

    async def aclose(self) -> None:
        return None


class _MockUpstreamResponse:
    __slots__ = ("_chunks", "_done", "_owner", "_scripted", "headers", "status")

    def __init__(self, owner: MockTransport, scripted: MockResponse) -> None:
        self._owner = owner
        self._scripted = scripted
        self._chunks = [chunk for chunk in scripted.chunks if chunk]
        self._done = False
        self.status = scripted.status
        self.headers: Mapping[str, str] = dict(scripted.headers)

    async def read_chunk(self) -> bytes:
        if self._scripted.chunk_delay:
            await asyncio.sleep(self._scripted.chunk_delay)
        if self._chunks:
            return self._chunks.pop(0)
        if self._scripted.cut:
            raise UpstreamFailure(502, "the upstream connection failed: ClientPayloadError")
        return b""

    async def read(self, max_bytes: int) -> bytes:
        body = b""
        while chunk := await self.read_chunk():
            body += chunk
            if len(body) > max_bytes:
                raise answer_too_large(max_bytes)
        return body

    def release(self) -> None:
        self._finish()

    def close(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._owner.open_responses -= 1

"""The transport seam: how the gateway talks HTTP to upstreams, and the one mapping of its failures.

The gateway sees only :class:`Transport` and :class:`UpstreamResponse`: a status, headers, chunks and a
way to let go of the connection. :class:`AiohttpTransport` is the real one; every aiohttp exception is
turned into a :class:`~anygate.protocol.errors.GatewayError` here and nowhere else. Tests swap in
:class:`anygate.testing.MockTransport` to run routing, retries and timeouts in-process.

aiohttp is used because its client holds up under concurrency far better than the alternatives measured
(see BENCHMARKS.md). A session belongs to an event loop, so the transport keeps one session per loop: the
proxy has exactly one loop; SDK users may call from several (``asyncio.run`` more than once). A session
closes itself when its loop shuts down (``asyncio.run`` finalizes async generators on exit), so SDK users
who never call ``aclose`` leak no connections and see no "unclosed session" warnings.

URLs are sent exactly as providers build them (already percent-encoded): AWS signs the encoded path, so
re-normalising ``%3A`` to ``:`` on the way out would break every signature of a model id with a colon.

Redirects are never followed: an upstream that answers 3xx would otherwise receive the client's whole
prompt again at another host, with the gateway's credentials. The answer is an error instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Final, Protocol

import aiohttp
import yarl

from anygate.protocol.errors import GatewayError, UpstreamFailure, UpstreamUnreachable
from anygate.providers.base import UpstreamRequest

CONNECTIONS_PER_HOST: Final = 0  # unlimited: the gateway's concurrency is the clients'
KEEPALIVE_SECONDS: Final = 60.0
DEFAULT_MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
"""The largest non-streaming upstream answer read (a Message is rarely more than a few hundred KB)."""


class UpstreamResponse(Protocol):
    """An upstream's answer whose body is still to be read."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read_chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` at its end. Raises GatewayError."""
        ...

    async def read(self, max_bytes: int) -> bytes:
        """The whole body; UpstreamFailure when it is larger than ``max_bytes``."""
        ...

    def release(self) -> None:
        """The body was read: the connection may serve another request."""
        ...

    def close(self) -> None:
        """Abandon the answer and its connection (the upstream stops generating)."""
        ...


class Transport(Protocol):
    """Sends upstream requests. Implementations map their own failures to GatewayError."""

    async def open(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send ``request`` and return once the response headers arrived."""
        ...

    async def aclose(self) -> None:
        """Close the connections of the running event loop."""
        ...


class UpstreamClient:
    """Deadlines and size limits around a :class:`Transport`; the gateway's only way out."""

    __slots__ = ("max_answer_bytes", "transport")

    def __init__(
        self, transport: Transport | None = None, *, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    ) -> None:
        self.transport: Transport = transport or AiohttpTransport()
        self.max_answer_bytes = max_answer_bytes

    async def fetch(
        self, request: UpstreamRequest, *, timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send and read the whole answer (status, headers, body) within ``timeout`` seconds.

        One timer covers the whole exchange: a non-streaming call is bounded as a whole, and each timer
        costs a little on every request.
        """
        with timeout_as_error(timeout):
            async with asyncio.timeout(timeout):
                response = await self.transport.open(request)
                try:
                    body = await response.read(self.max_answer_bytes)
                except BaseException:
                    response.close()
                    raise
                response.release()
                return response.status, response.headers, body

    async def send(self, request: UpstreamRequest, *, timeout: float) -> UpstreamResponse:
        """Send and wait for the response headers (a stream's body is read by the caller)."""
        with timeout_as_error(timeout):
            async with asyncio.timeout(timeout):
                return await self.transport.open(request)

    async def read(self, response: UpstreamResponse, *, timeout: float) -> bytes:
        """The whole body of an answer from :meth:`send`, within ``timeout`` seconds."""
        try:
            with timeout_as_error(timeout):
                async with asyncio.timeout(timeout):
                    body = await response.read(self.max_answer_bytes)
        except BaseException:
            response.close()
            raise
        response.release()
        return body

    async def aclose(self) -> None:
        await self.transport.aclose()


@contextlib.contextmanager
def timeout_as_error(timeout: float) -> Iterator[None]:
    """A deadline that passed becomes a retryable 504."""
    try:
        yield
    except TimeoutError:
        raise UpstreamFailure(504, f"the upstream did not answer within {timeout:g}s") from None


def answer_too_large(limit: int) -> UpstreamFailure:
    return UpstreamFailure(
        502, f"the upstream's answer exceeds the gateway's limit of {limit} bytes", error_type="api_error"
    )


# --- aiohttp ---------------------------------------------------------------------------------------------


class AiohttpTransport:
    """The real transport: one pooled aiohttp session per event loop."""

    __slots__ = ("_closers", "_sessions")

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = (
            weakref.WeakKeyDictionary()
        )

    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=CONNECTIONS_PER_HOST,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_SECONDS,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),  # upstream APIs set no cookies worth keeping
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[loop] = session
            closer = _close_at_loop_shutdown(session)
            await anext(closer)  # now suspended, and known to the loop, which closes it at shutdown
            self._closers[loop] = closer
        return session

    async def open(self, request: UpstreamRequest) -> AiohttpResponse:
        with aiohttp_failures():
            session = await self._session()
            response = await session.request(
                request.method,
                yarl.URL(request.url, encoded=True),  # sent verbatim: a signature covers the exact path
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
            )
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        """Close the session of the running loop (the others close with their loops)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()


class AiohttpResponse:
    """:class:`UpstreamResponse` over an ``aiohttp.ClientResponse``."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read_chunk(self) -> bytes:
        with aiohttp_failures():
            return await self._response.content.readany()

    async def read(self, max_bytes: int) -> bytes:
        response = self._response
        declared = response.content_length
        if declared is not None and declared > max_bytes:
            raise answer_too_large(max_bytes)
        with aiohttp_failures():
            if declared is not None:
                return await response.read()
            chunks: list[bytes] = []
            size = 0
            while chunk := await response.content.readany():
                size += len(chunk)
                if size > max_bytes:
                    raise answer_too_large(max_bytes)
                chunks.append(chunk)
            return b"".join(chunks)

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


async def _close_at_loop_shutdown(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """Waits at its ``yield`` for the loop's ``shutdown_asyncgens()``, then closes ``session``."""
    try:
        yield
    finally:
        await session.close()


@contextlib.contextmanager
def aiohttp_failures() -> Iterator[None]:
    """aiohttp's exceptions → the errors routing understands: :class:`UpstreamUnreachable` for a refused
    connection (the deployment cools down at once), a retryable 502 for a broken one. Messages name the
    kind of failure only: addresses and TLS library detail stay out of what clients see."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnreachable(f"cannot connect to the upstream: {connect_failure_reason(exc)}") from None
    except aiohttp.ClientError as exc:
        raise connection_failed(exc) from None


def connection_failed(exc: BaseException) -> GatewayError:
    """A connection to the upstream broke: retryable, reported as an ``api_error``."""
    return UpstreamFailure(
        502, f"the upstream connection failed: {type(exc).__name__}", error_type="api_error"
    )


# What a failed connection is called in a client's error message: the transport's own text names internal
# addresses ("Cannot connect to host 10.0.3.7:8000") and OpenSSL internals ("[SSL: CERTIFICATE_VERIFY_FAILED]
# … (_ssl.c:1000)"), useful in a debugger and an information leak in an API answer.

ERRNO_REASONS: Final[Mapping[int, str]] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EADDRNOTAVAIL: "address not available",
}


def connect_failure_reason(exc: aiohttp.ClientConnectorError) -> str:
    """A short, address-free reason a connection to an upstream could not be made."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "the upstream's TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError) or isinstance(exc.os_error, ssl.SSLError):
        return "the TLS handshake failed"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if (dns_error is not None and isinstance(exc, dns_error)) or isinstance(exc.os_error, socket.gaierror):
        return "the upstream's host name did not resolve"
    if isinstance(exc.os_error, TimeoutError):
        return "connection timed out"
    code = exc.os_error.errno if isinstance(exc.os_error, OSError) else None
    return ERRNO_REASONS.get(code or 0, "connection failed")

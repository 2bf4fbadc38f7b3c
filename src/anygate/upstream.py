"""The one pooled HTTP client the gateway uses to call upstreams.

aiohttp is used because its client holds up under concurrency far better than the alternatives measured
(see BENCHMARKS.md). A session belongs to an event loop, so the pool keeps one session per loop: the
proxy has exactly one loop; SDK users may call from several (``asyncio.run`` more than once). A
session closes itself when its loop shuts down (``asyncio.run`` finalizes async generators on exit), so
SDK users who never call ``aclose`` leak no connections and see no "unclosed session" warnings.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Final

import aiohttp

from anygate.protocol.errors import GatewayError
from anygate.providers.base import UpstreamRequest
from anygate.transport_errors import connect_failure_reason

CONNECTIONS_PER_HOST: Final = 0  # unlimited: the gateway's concurrency is the clients'
KEEPALIVE_SECONDS: Final = 60.0


class UpstreamClient:
    """Sends :class:`UpstreamRequest` objects; maps transport failures to :class:`GatewayError`."""

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

    async def fetch(
        self, request: UpstreamRequest, *, timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send and read the whole answer (status, headers, body) within ``timeout`` seconds.

        One timer covers the whole exchange: a non-streaming call is bounded as a whole, and each timer
        costs a little on every request.
        """
        with transport_failures(timeout):
            async with asyncio.timeout(timeout):
                session = await self._session()
                async with session.request(
                    request.method, request.url, headers=request.headers, data=request.body
                ) as response:
                    return response.status, response.headers, await response.read()

    async def send(self, request: UpstreamRequest, *, timeout: float) -> aiohttp.ClientResponse:
        """Send and wait for the response headers (a stream's body is read by the caller)."""
        with transport_failures(timeout):
            async with asyncio.timeout(timeout):
                session = await self._session()
                return await session.request(
                    request.method, request.url, headers=request.headers, data=request.body
                )

    async def read(self, response: aiohttp.ClientResponse, *, timeout: float) -> bytes:
        """The whole body, within ``timeout`` seconds."""
        try:
            with transport_failures(timeout):
                async with asyncio.timeout(timeout):
                    return await response.read()
        finally:
            response.release()

    async def close(self) -> None:
        """Close the session of the running loop (the others close with their loops)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()


async def _close_at_loop_shutdown(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """Waits at its ``yield`` for the loop's ``shutdown_asyncgens()``, then closes ``session``."""
    try:
        yield
    finally:
        await session.close()


class UpstreamUnreachable(GatewayError):
    """Connection refused or no route: the deployment is down, which routing cools down at once."""

    def __init__(self, message: str) -> None:
        super().__init__(502, message, error_type="api_error", retryable=True)


@contextlib.contextmanager
def transport_failures(timeout: float) -> Iterator[None]:
    """Turn timeouts and transport errors into the gateway errors routing understands: 504 for a
    timeout, :class:`UpstreamUnreachable` for a refused connection, 502 for a broken one."""
    try:
        yield
    except TimeoutError:
        raise GatewayError(504, f"the upstream did not answer within {timeout:g}s", retryable=True) from None
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnreachable(f"cannot connect to the upstream: {connect_failure_reason(exc)}") from None
    except aiohttp.ClientError as exc:
        raise connection_failed(exc) from None


def connection_failed(exc: BaseException) -> GatewayError:
    """A connection to the upstream broke: retryable, reported as an ``api_error``."""
    return GatewayError(
        502, f"the upstream connection failed: {type(exc).__name__}", error_type="api_error", retryable=True
    )

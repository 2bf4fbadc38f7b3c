"""The HTTP server around the ASGI app: uvicorn's httptools protocol with the gateway's limits enforced.

uvicorn and httptools leave a server open to cheap attacks: httptools has no limit on the size of a
request head (and joins header pieces quadratically, so a 64 MB header stalls every client for seconds),
nothing times out a connection that never finishes its head or body (slowloris), a fresh connection that
sends nothing is held forever, and ``limit_concurrency`` answers in plain text. :class:`GuardedProtocol`
closes those gaps where they must be closed, in the protocol, before bytes are buffered:

- the head (request line + headers) is counted as it arrives and refused with 431 once it exceeds
  ``max_header_size_kb``, without handing the excess to the parser;
- ``header_timeout`` bounds the time from a connection's opening (or a request's first byte) to the end
  of its headers, ``body_timeout`` the time to the end of its body; one sweeper task per server checks
  the deadlines, so a request costs a float store, not a timer;
- ``max_connections`` and ``max_concurrent_requests`` answer 529 ``overloaded_error``;
- malformed HTTP gets a 400 in Anthropic's error shape instead of uvicorn's plain text.

:class:`Server` makes SIGHUP a graceful shutdown like SIGTERM (uvicorn ignores it, so the default action
killed the process mid-stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Generator
from typing import Any, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from anygate.limits import Limits
from anygate.protocol.errors import error_body

log = logging.getLogger("anygate.server")

NO_LIMIT: Final = 1e9
"""Stands for a limit set to 0 (off): seconds or counts no client reaches."""
SWEEP_BOUNDS: Final = (0.05, 1.0)
"""The deadline sweeper runs every quarter of the shortest timeout, within these seconds."""
_HEAD, _BODY = "head", "body"
_REASONS: Final = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    529: b"Overloaded",
}


def _off_if_zero(value: float) -> float:
    return value if value > 0 else NO_LIMIT


def error_response(status: int, error_type: str, message: str, *, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 error response in Anthropic's shape, written straight to a transport (the ASGI
    app never saw the request) and closing the connection."""
    from anygate.gateway import new_request_id

    request_id = new_request_id()
    body = error_body(error_type, message, request_id)
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"request-id: " + request_id.encode(),
        b"connection: close",
    ]
    if retry_after is not None:
        head.append(b"retry-after: %d" % retry_after)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def _overloaded_app(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer for a request over ``max_concurrent_requests`` (in place of uvicorn's text 503)."""
    from anygate.gateway import new_request_id

    request_id = new_request_id()
    message = "the gateway is serving its maximum of concurrent requests"
    body = error_body("overloaded_error", message, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 529, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _limits_of(config: uvicorn.Config) -> Limits:
    """The limits of the app this server serves (found once through uvicorn's middleware wrappers)."""
    cached: Limits | None = getattr(config, "_anygate_limits", None)
    if cached is not None:
        return cached
    app: Any = config.loaded_app
    for _ in range(8):
        found = getattr(app, "limits", None)
        if isinstance(found, Limits):
            break
        app = getattr(app, "app", None)
    else:
        found = None
    limits = found if isinstance(found, Limits) else Limits()
    config._anygate_limits = limits  # type: ignore[attr-defined]
    return limits


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size, slow-client timeouts and concurrency limits."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = _limits_of(config)
        self.timeout_keep_alive = _off_if_zero(limits.keep_alive_timeout)  # type: ignore[assignment]
        self._max_head = int(_off_if_zero(limits.max_header_bytes))
        self._header_timeout = _off_if_zero(limits.header_timeout)
        self._body_timeout = _off_if_zero(limits.body_timeout)
        self._max_connections = _off_if_zero(limits.max_connections)
        self._max_requests = _off_if_zero(limits.max_concurrent_requests)
        self._reading_head = True
        self._head_bytes = 0
        self.deadline: float | None = None
        self._phase = _HEAD
        _Sweeper.ensure(self.loop, server_state, limits)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            log.warning("refused a connection: %d connections are open", len(self.connections) - 1)
            self._refuse(529, "overloaded_error", "the gateway has its maximum of open connections", 1)
            return
        self._arm(_HEAD, self._header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            if self.deadline is None:
                self._arm(_HEAD, self._header_timeout)
            room = self._max_head - self._head_bytes
            if len(data) > room:
                self._feed_past_head_limit(data, room)
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def _feed_past_head_limit(self, data: bytes, room: int) -> None:
        """Feed only what the head may still take; the rest only if the head ended within it (a body
        that arrives with its head is not head)."""
        if room > 0:
            super().data_received(data[:room])
        if self._reading_head:
            if not self.transport.is_closing():
                limit = self._max_head // 1024
                self._refuse(431, "request_too_large", f"the request head exceeds the limit of {limit} KB")
            return
        if self.parser is not None and not self.transport.is_closing():
            self.data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._arm(_BODY, self._body_timeout)
        if len(self.tasks) >= self._max_requests:
            log.warning("answered 529: %d requests are in progress", len(self.tasks))
            app, self.app = self.app, _overloaded_app
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.deadline = None
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "invalid_request_error", f"malformed HTTP request: {msg}")

    def _arm(self, phase: str, seconds: float) -> None:
        self._phase = phase
        self.deadline = self.loop.time() + seconds

    def _refuse(self, status: int, error_type: str, message: str, retry_after: int | None = None) -> None:
        self.deadline = None
        self.transport.write(error_response(status, error_type, message, retry_after=retry_after))
        self.transport.close()

    def expire(self) -> None:
        """The current deadline passed: close the connection, answering 408 when a request was begun."""
        if self.transport is None or self.transport.is_closing():
            self.deadline = None
            return
        cycle = self.cycle
        if self._phase == _HEAD:
            if cycle is not None and not cycle.response_complete:
                self._arm(_HEAD, self._header_timeout)  # a pipelined head waits for the answer before it
                return
            if self._head_bytes == 0:
                self.deadline = None
                self.transport.close()  # idle: nothing was asked, nothing to answer
                return
            self._refuse(408, "timeout_error", "the request headers did not arrive in time")
            return
        # The body is late: the app is waiting for it. Answer, then tell the app its client is gone.
        self.deadline = None
        if cycle is not None and not cycle.response_started:
            self.transport.write(
                error_response(408, "timeout_error", "the request body did not arrive in time")
            )
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


class _Sweeper:
    """One task per server that closes connections whose deadline has passed."""

    @staticmethod
    def ensure(loop: asyncio.AbstractEventLoop, server_state: Any, limits: Limits) -> None:
        if getattr(server_state, "_anygate_sweeper", None) is not None:
            return
        timeouts = [t for t in (limits.header_timeout, limits.body_timeout) if t > 0]
        if not timeouts:
            server_state._anygate_sweeper = True
            return
        low, high = SWEEP_BOUNDS
        interval = min(max(min(timeouts) / 4, low), high)
        sweep = _Sweeper._run(loop, server_state.connections, interval)
        server_state._anygate_sweeper = loop.create_task(sweep)

    @staticmethod
    async def _run(loop: asyncio.AbstractEventLoop, connections: set[Any], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            expired = [c for c in connections if (getattr(c, "deadline", None) or now + 1) <= now]
            for connection in expired:
                try:
                    connection.expire()
                except Exception:
                    log.exception("closing a connection past its deadline failed")


class Server(uvicorn.Server):
    """uvicorn's server, with SIGHUP handled like SIGTERM: a graceful shutdown.

    An operator's SIGHUP most often means "the terminal went away"; uvicorn does not handle it, so the
    default action killed the process at once, cutting streams without an ``event: error``. A graceful
    shutdown ends every stream visibly and answers what it can. (The multi-worker supervisor keeps
    uvicorn's meaning: SIGHUP restarts the workers, each of which shuts down gracefully.)
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            with super().capture_signals():
                yield
            return
        previous = signal.signal(signal.SIGHUP, self.handle_exit)
        try:
            with super().capture_signals():
                yield
        finally:
            signal.signal(signal.SIGHUP, previous)


def server_options() -> dict[str, Any]:
    """The uvicorn options the CLI and the tests' server share (the limits come from the app)."""
    return {
        "loop": "uvloop",
        "http": GuardedProtocol,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
    }

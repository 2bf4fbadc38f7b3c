"""The real anygate ASGI app under uvicorn on a free 127.0.0.1 port, in a background thread.

Every gateway loop runs with asyncio's slow-callback detection once it has started
(``loop.slow_callback_duration``, default 0.1 s, ``ANYGATE_SLOW_CALLBACK`` to change it): a step of the
gateway that holds the event loop longer stalls every other client, and :data:`SLOW_CALLBACKS` collects
them for the suite's loop-blocking check (tests/conftest.py fails the test that caused one).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn

from anygate.config import Config, parse_config
from anygate.hooks import Hook
from anygate.server.app import Route, create_app
from anygate.server.runtime import server_options

SLOW_CALLBACK_SECONDS = float(os.environ.get("ANYGATE_SLOW_CALLBACK", "0.1"))
SLOW_CALLBACKS: list[str] = []
"""Slow-callback warnings logged by a gateway loop, in the order they happened."""
_GATEWAY_THREADS: set[int] = set()


_GC_PAUSES: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
"""(start, end) of the test process's recent garbage collections: the test process holds far more
objects than a server (which freezes its start-up heap), so a collection that lands inside a gateway step
is the suite's pause, not the gateway's."""
_gc_started = [0.0]


def _gc_watch(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.monotonic()
    else:
        _GC_PAUSES.append((_gc_started[0], time.monotonic()))


gc.callbacks.append(_gc_watch)


def _gc_time_within(start: float, end: float) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in list(_GC_PAUSES))


BLOCKED_WALL_SECONDS = 1.0
CPU_SAMPLE_INTERVAL = 0.01
_CPU_SAMPLES: dict[int, collections.deque[tuple[float, float]]] = {}
"""Per gateway thread: (monotonic time, the thread's CPU time) every 10 ms, taken by the loop itself."""


def _sample_cpu(loop: asyncio.AbstractEventLoop) -> None:
    samples = _CPU_SAMPLES.setdefault(threading.get_ident(), collections.deque(maxlen=1024))
    samples.append((time.monotonic(), time.thread_time()))
    loop.call_later(CPU_SAMPLE_INTERVAL, _sample_cpu, loop)


def _cpu_since(thread: int, start: float) -> float | None:
    """The thread's CPU seconds from its last sample before ``start`` until now (an upper bound of what
    a callback that started at ``start`` used); None without such a sample."""
    before = [cpu for at, cpu in _CPU_SAMPLES.get(thread, ()) if at <= start]
    return time.thread_time() - before[-1] if before else None


class _SlowCallbackRecorder(logging.Handler):
    """Collects asyncio's "Executing <handle> took N seconds" warnings from gateway threads only (the
    fake upstreams and the test's own loops are not the gateway).

    asyncio measures wall time, which a busy machine or the test process's other threads (holding the
    interpreter lock) stretch. A callback counts as blocking when the gateway thread also spent over
    :data:`SLOW_CALLBACK_SECONDS` on the CPU in it (its own time, read in the thread itself, less garbage
    collections inside), or when it held the loop for over :data:`BLOCKED_WALL_SECONDS` whatever it did:
    blocking I/O (a download, a DNS lookup) uses no CPU, and contention never stretches a step that far.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread not in _GATEWAY_THREADS or not str(record.msg).startswith("Executing"):
            return
        took = float(record.args[-1]) if isinstance(record.args, tuple) and record.args else 1.0
        now = time.monotonic()
        cpu = _cpu_since(threading.get_ident(), now - took)
        busy = took if cpu is None or took > BLOCKED_WALL_SECONDS else min(took, cpu)
        if busy - _gc_time_within(now - took, now) > SLOW_CALLBACK_SECONDS:
            SLOW_CALLBACKS.append(f"{record.getMessage()} (CPU {busy:.3f} s)")


logging.getLogger("asyncio").addHandler(_SlowCallbackRecorder(logging.WARNING))


class _LoopCapture:
    """Wraps the app to learn the server's event loop at start-up (``app`` stays reachable, so the HTTP
    protocol still finds the app's limits)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


def _watch_slow_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    loop.slow_callback_duration = SLOW_CALLBACK_SECONDS
    loop.set_debug(True)
    _sample_cpu(loop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GatewayServer:
    """Serves a config the way ``anygate --config`` does (uvloop, httptools), for the tests' clients."""

    def __init__(
        self, config: Config | str, *, hooks: Sequence[Hook] = (), routes: Mapping[str, Route] | None = None
    ) -> None:
        self.config = parse_config(config) if isinstance(config, str) else config
        self.app = create_app(self.config, hooks=hooks, routes=routes)
        self.port = free_port()
        self._capture = _LoopCapture(self.app)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._capture,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                **server_options(),
            )
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        _GATEWAY_THREADS.add(threading.get_ident())
        self._server.run()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self):  # type: ignore[no-untyped-def]
        return self.app.gateway

    def start(self) -> GatewayServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway server did not start")
            time.sleep(0.01)
        if self._capture.loop is not None:  # measured from here: start-up work is not a request's
            self._capture.loop.call_soon_threadsafe(_watch_slow_callbacks, self._capture.loop)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

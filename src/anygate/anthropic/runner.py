"""An event loop on its own thread, so synchronous callers can drive the async gateway, and a clean end
for it.

The gateway is async (aiohttp pools, timeouts, streams that are read piece by piece); a synchronous caller
may be a plain script, a thread, or code inside a running event loop (where it cannot start another loop
in its own thread). One private loop thread serves all of them. What makes it safe to forget about is
its end: :meth:`LoopRunner.close` (the clients' ``close()`` and ``with`` blocks), garbage collection of
the runner, and interpreter exit all run the same shutdown on the loop itself: the owner's closing
coroutine (the gateway's pools and hooks), then the loop's async generators (which close any pool left,
see :func:`anygate.upstream._close_at_loop_shutdown`) and its default executor (the threads that load
tokenizers), and only then stop and join the thread. So no "Unclosed client session" warning, thread or
socket outlives the runner.

A runner starts its thread on first use and may be used again after :meth:`close` (a new thread starts).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Final, TypeVar

log = logging.getLogger("anygate")

T = TypeVar("T")

SHUTDOWN_TIMEOUT: Final = 10.0
"""Seconds the shutdown waits for the closing coroutine and the loop's generators and executor."""

Closer = Callable[[], Awaitable[None]]


class _LoopThread:
    """One started loop and its thread: what the shutdown needs, without referring to the runner (so a
    finalizer can hold it while the runner is collected)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def shutdown(self, closer: Closer | None) -> None:
        """Close what runs on the loop, stop it, and join its thread (from any thread but its own)."""
        if self.loop.is_closed():
            return
        if threading.current_thread() is self.thread:
            # The last reference died on the loop itself: nothing may block here; finish in the loop.
            self.loop.create_task(self._finish(closer)).add_done_callback(lambda _: self.loop.stop())
            return
        future = asyncio.run_coroutine_threadsafe(self._finish(closer), self.loop)
        try:
            future.result(SHUTDOWN_TIMEOUT)
        except Exception:
            log.warning("closing the in-process gateway's event loop failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(SHUTDOWN_TIMEOUT)

    async def _finish(self, closer: Closer | None) -> None:
        try:
            if closer is not None:
                await closer()
        finally:
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()


class LoopRunner:
    """Runs coroutines on a private loop thread for synchronous callers.

    Args:
        name: the thread's name (it shows in debuggers and thread dumps).
        closer: awaited on the loop when the runner closes (the gateway's ``aclose``).
    """

    def __init__(self, name: str = "anygate-sync", closer: Closer | None = None) -> None:
        self._name = name
        self._closer = closer
        self._lock = threading.Lock()
        self._current: _LoopThread | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop thread and wait for its result (its exception is raised here)."""
        current = self._started()
        if threading.current_thread() is current.thread:
            coroutine.close()
            raise RuntimeError("the synchronous anygate API cannot be called from its own event loop")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, current.loop)
        return future.result()

    def _started(self) -> _LoopThread:
        with self._lock:
            current = self._current
            if current is None or current.loop.is_closed():
                current = self._current = _LoopThread(self._name)
                # At exit (before daemon threads are killed) or when the runner is collected.
                self._finalizer = weakref.finalize(self, current.shutdown, self._closer)
            return current

    def close(self) -> None:
        """Shut the loop thread down (the closer first); a later :meth:`run` starts a new one."""
        with self._lock:
            finalizer, self._finalizer, self._current = self._finalizer, None, None
        if finalizer is not None:
            finalizer()

    @property
    def running(self) -> bool:
        """Whether a loop thread is running now."""
        current = self._current
        return current is not None and current.thread.is_alive()

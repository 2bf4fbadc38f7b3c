"""Credentials that expire (OAuth access tokens, STS session credentials), cached and refreshed early.

A provider whose requests need such a credential keeps one :class:`RefreshingCredential` per deployment
and awaits :meth:`~RefreshingCredential.get` in its ``authorize`` step. The fetch function is usually
blocking (google-auth, botocore), so it runs in a worker thread; one fetch at a time, however many
requests are waiting. A credential is refreshed in the background once it is within ``refresh_before``
seconds of expiry, so requests keep using the still-valid one and never wait for the refresh; only the
very first request (nothing cached) or a credential already expired waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

log = logging.getLogger("anygate.credentials")

T = TypeVar("T")

DEFAULT_REFRESH_BEFORE: Final = 300.0
"""Seconds before expiry at which a credential is refreshed in the background."""


@dataclass(frozen=True, slots=True)
class Expiring(Generic[T]):
    """A credential and when it stops working (``time.time()`` seconds; None: never)."""

    value: T
    expires_at: float | None = None


class RefreshingCredential(Generic[T]):
    """A cached credential, fetched by ``fetch`` (blocking, run in a worker thread).

    Args:
        fetch: returns a fresh credential; its exceptions reach the requests that wait for it.
        refresh_before: refresh in the background this many seconds before expiry.
        clock: wall-clock seconds (tests pass their own).
    """

    def __init__(
        self,
        fetch: Callable[[], Expiring[T]],
        *,
        refresh_before: float = DEFAULT_REFRESH_BEFORE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._refresh_before = refresh_before
        self._clock = clock
        self._current: Expiring[T] | None = None
        self._refreshing: asyncio.Task[Expiring[T]] | None = None

    async def get(self) -> T:
        """The current credential: cached, refreshed in the background when it nears expiry, fetched
        (and waited for) only when there is none or it has expired."""
        current = self._current
        now = self._clock()
        if current is not None and (current.expires_at is None or now < current.expires_at):
            if current.expires_at is not None and now >= current.expires_at - self._refresh_before:
                self._refresh()  # early: requests go on with the valid one
            return current.value
        return (await self._refresh()).value

    def _refresh(self) -> asyncio.Task[Expiring[T]]:
        """The running refresh, or a new one (one at a time)."""
        task = self._refreshing
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._run())
            task.add_done_callback(_observe)
            self._refreshing = task
        return task

    async def _run(self) -> Expiring[T]:
        fresh = await asyncio.to_thread(self._fetch)
        self._current = fresh
        return fresh

    def invalidate(self) -> None:
        """Forget the cached credential (the upstream rejected it): the next request fetches anew."""
        self._current = None


def _observe(task: asyncio.Task[Expiring[T]]) -> None:
    """Log a failed refresh (by its kind only: messages of auth libraries can carry secrets). The
    requests waiting for it get the exception itself; a background refresh has no one waiting."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("refreshing a credential failed: %s", type(exc).__name__)

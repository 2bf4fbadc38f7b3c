"""The spend ledger: requests' spend rows and costs, buffered in memory and written in batches.

A background task writes the buffer every ``proxy_batch_write_at`` seconds (1 s by default) in one
transaction; when the database is down the buffer is kept and the write retried, so requests are served
as usual and their spend arrives once the database is back. On shutdown the buffer is written before
the process exits. What a hard kill (SIGKILL, power loss) loses is what was buffered: at most one
interval of spend, plus whatever piled up while the database was unreachable.

The buffer is bounded (``MAX_BUFFERED_ROWS``): beyond it the oldest spend rows are dropped with a
warning, but their costs are kept as per-owner totals, so budgets stay right even then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Final

from anygate.teams.records import EntityKind
from anygate.teams.store import SpendDelta, SpendRow, Store, refused_data

log = logging.getLogger("anygate.teams")

MAX_BUFFERED_ROWS: Final = 100_000
WARN_EVERY: Final = 30.0


class Ledger:
    """Buffered spend; :meth:`pending` tells the cache what this process spent that is not written."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float,
        keep_rows: bool = True,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        """``on_written`` is told the ``spend`` counter value of each successful write."""
        self._store = store
        self._on_written = on_written
        self._interval = max(interval, 0.01)
        self._keep_rows = keep_rows
        self._rows: list[SpendRow] = []
        self._deltas: list[SpendDelta] = []
        self._pending: defaultdict[tuple[EntityKind, str], float] = defaultdict(float)
        """Each owner's cost of the buffered requests."""
        self._in_flight: dict[tuple[EntityKind, str], float] = {}
        """Each owner's cost of the requests the write in progress took."""
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_warning = 0.0
        self._settled: set[int] = set()
        """During a flush, the rows and costs (by ``id()``) that a write split apart left out or wrote
        without a row to find them by: not put back if the flush then fails."""
        self._retrying = False
        """A write failed since the last success: the buffer may hold rows the database has (an
        acknowledgement lost), so the next write checks which rows are new."""
        self.written = 0
        self.failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="anygate-spend-ledger")

    def add(self, row: SpendRow | None, cost: float, owners: tuple[tuple[EntityKind, str], ...]) -> None:
        """Buffer one request (never blocks)."""
        request_id = ""
        if row is not None and self._keep_rows:
            request_id = row.request_id
            self._rows.append(row)
            if len(self._rows) > MAX_BUFFERED_ROWS:
                self._drop_oldest()
        self._deltas.append(SpendDelta(request_id, cost, owners))
        if cost:
            for owner in owners:
                self._pending[owner] += cost

    def pending(self, kind: EntityKind, entity_id: str) -> float:
        owner = (kind, entity_id)
        return self._pending.get(owner, 0.0) + self._in_flight.get(owner, 0.0)

    @property
    def buffered(self) -> int:
        return len(self._deltas)

    def _drop_oldest(self) -> None:
        dropped = self._rows.pop(0)
        for delta in self._deltas:
            if delta.request_id == dropped.request_id:
                delta.request_id = ""  # its cost still counts, once
                break
        self._warn(f"spend buffer full ({MAX_BUFFERED_ROWS} rows): dropping the oldest spend rows")

    async def flush(self) -> bool:
        """Write what is buffered; False (and everything kept) when the database refused."""
        async with self._lock:
            if not self._deltas:
                return True
            rows, deltas, totals = self._rows, self._deltas, self._pending
            self._rows, self._deltas, self._pending = [], [], defaultdict(float)
            self._in_flight = totals
            try:
                try:
                    counters = [
                        await self._store.write_spend(rows, deltas, fresh=not self._retrying, totals=totals)
                    ]
                except Exception as exc:
                    if not refused_data(exc):
                        raise
                    counters = await self._write_apart(rows, deltas, exc)
            except BaseException as exc:
                settled, self._settled = self._settled, set()
                if settled:  # settled by _write_apart already (left out, or costs written): not retried
                    rows = [row for row in rows if id(row) not in settled]
                    deltas = [delta for delta in deltas if id(delta) not in settled]
                self._rows[:0] = rows
                self._deltas[:0] = deltas
                for owner, cost in totals.items():
                    self._pending[owner] += cost
                self._in_flight = {}
                self._retrying = True
                if not isinstance(exc, Exception):
                    raise  # cancelled mid-write: the batch is back in the buffer for aclose
                self.failures += 1
                self._warn(f"could not write spend ({len(deltas)} requests kept for the next try): {exc!r}")
                return False
            self._in_flight = {}
            self._retrying = False
            self._settled = set()
            self.written += len(deltas)
            if self._on_written is not None:
                for counter in counters:
                    self._on_written(counter)
            return True

    async def _write_apart(
        self, rows: list[SpendRow], deltas: list[SpendDelta], refusal: Exception
    ) -> list[int]:
        """The database refused a value of this batch (``refusal``): write it in halves, down to
        single requests, so that only a request whose row is refused is left out (logged by its
        request id), its cost still added to its owners unless that is refused too. Any other failure
        on the way fails the flush as usual: what was written stays written (rows are keyed by
        request id, so the retry adds nothing twice), and the requests left out are not retried.
        Returns the writes' spend counters."""
        by_request = {delta.request_id: delta for delta in deltas if delta.request_id}
        counters: list[int] = []

        def owned(part: list[SpendRow]) -> list[SpendDelta]:
            return [by_request[row.request_id] for row in part if row.request_id in by_request]

        async def write(part: list[SpendRow], part_deltas: list[SpendDelta]) -> None:
            try:
                counters.append(await self._store.write_spend(part, part_deltas))
            except Exception as exc:
                if not refused_data(exc):
                    raise
                await split(part, part_deltas, exc)
            else:  # a cost without a row is not found again by request id: not to be retried
                self._settled.update(id(delta) for delta in part_deltas if not delta.request_id)

        async def split(part: list[SpendRow], part_deltas: list[SpendDelta], exc: Exception) -> None:
            if len(part) > 1:
                half = len(part) // 2
                await write(part[:half], owned(part[:half]))
                await write(part[half:], owned(part[half:]))
            elif not part and len(part_deltas) > 1:  # costs without rows: one by one
                for delta in part_deltas:
                    await write([], [delta])
            else:
                await self._leave_out(part, part_deltas, exc, counters)

        loose = [delta for delta in deltas if not delta.request_id]
        await split(rows, owned(rows), refusal)
        if loose:
            await write([], loose)
        return counters

    async def _leave_out(
        self, rows: list[SpendRow], deltas: list[SpendDelta], refusal: Exception, counters: list[int]
    ) -> None:
        """One request the database refuses: its row is left out and its cost, alone, written."""
        self._settled.update(id(entry) for entry in (*rows, *deltas))
        named = rows[0].request_id if rows else "(no row)"
        if rows:
            costs = [SpendDelta("", delta.cost, delta.owners) for delta in deltas]
            try:
                if costs:
                    counters.append(await self._store.write_spend([], costs))
                log.error(
                    "the database refused the spend row of request %s (%r); its cost counts", named, refusal
                )
                return
            except Exception as exc:
                if not refused_data(exc):
                    raise
                refusal = exc
        log.error("the database refused the spend of request %s (%r): it is left out", named, refusal)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning(message)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:  # never let the writer die
                log.exception("spend ledger failed")

    async def aclose(self, *, attempts: int = 5) -> None:
        """Stop the background writer and write the rest (retrying a few times if the database is
        briefly unavailable)."""
        if self._task is not None:
            async with self._lock:  # a write in progress ends first: cancelled, its outcome is unknown
                self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for attempt in range(attempts):
            if await self.flush():
                return
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
        log.error("spend of %d requests could not be written before shutdown", len(self._deltas))

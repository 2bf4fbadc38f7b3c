"""The database: async SQLAlchemy Core over aiosqlite (default) or asyncpg (``postgresql://…``).

Only background tasks and the admin API await it; the request path reads the cache (:mod:`.cache`) and
hands spend to the ledger (:mod:`.ledger`). Every change to a key, team or user bumps the ``revision``
counter in the same transaction and stamps the rows it wrote with it; spend writes do the same with
the ``spend`` counter. The counter row's lock serialises writers, so an instance that has seen counter
value N has seen every change up to N.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any, Final, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from anygate.teams import schema
from anygate.teams.records import EntityKind, duration_seconds

log = logging.getLogger("anygate.teams")

TABLES: Final[Mapping[EntityKind, sa.Table]] = {
    "key": schema.keys,
    "team": schema.teams,
    "user": schema.users,
}
PRIMARY: Final[Mapping[EntityKind, str]] = {"key": "token", "team": "team_id", "user": "user_id"}
"""Each kind's id column, in its table and in its spend table."""
SPEND_TABLES: Final[Mapping[EntityKind, sa.Table]] = schema.spend_tables
SQLITE_INSERT_ROWS: Final = 512
"""Spend rows one SQLite statement carries at most (12,288 parameters; SQLite allows 32,766); see
:meth:`Store._write_rows`."""
SQLITE_UPDATE_ROWS: Final = 128
"""Keys (teams, users) one SQLite ``UPDATE`` moves at most: the ``CASE`` that picks each one's amount
is searched once per row it updates."""
SQLITE_CHECKPOINT_PAGES: Final = 10_000
"""Pages SQLite's write-ahead log reaches before it is copied back into the database (see
:func:`_sqlite_pragmas`)."""
MIGRATION_LOCK: Final = 0x616E7967  # a Postgres advisory lock id for concurrent start-ups ("anyg")


def async_url(url: str) -> str:
    """The SQLAlchemy URL with the async driver: ``sqlite:///f.db`` → aiosqlite, ``postgres(ql)://`` →
    asyncpg. URLs naming a driver already are kept."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"database_url {url!r} is not a URL (sqlite:///path.db or postgresql://…)")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        return url
    raise ValueError(f"database_url {url!r}: unsupported database (use sqlite:/// or postgresql://)")


@dataclass(slots=True)
class Changes:
    revision: int
    rows: dict[EntityKind, list[dict[str, Any]]]
    deleted: list[tuple[EntityKind, str]]


class SpendRow(NamedTuple):
    """One request's spend row, its fields in the table's column order, ready for the driver.

    A tuple rather than a dict: a spend write hands the driver thousands of rows a second, and
    chaining tuples is all it then does per row (``metadata`` is JSON text already)."""

    request_id: str
    call_type: str
    api_key: str
    key_alias: str | None
    team_id: str | None
    user: str | None
    end_user: str | None
    session_id: str | None
    model: str
    model_id: str | None
    custom_llm_provider: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    spend: float
    start_time: float
    end_time: float
    completion_start_time: float | None
    status: str
    status_code: int
    day: str
    metadata: str
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


SPEND_COLUMNS: Final = tuple(column.name for column in schema.spend_logs.columns)
if SpendRow._fields != SPEND_COLUMNS:  # pragma: no cover - a schema change without this class's
    raise RuntimeError(f"SpendRow's fields {SpendRow._fields} differ from the table's {SPEND_COLUMNS}")
SPEND_UPDATE_FIELDS: Final = ("entity", "delta", "counter")
"""The fields of an owner's spend update (:func:`_spend_update_rows`): its id, its cost, the counter."""


@dataclass(slots=True)
class SpendDelta:
    """One request's cost, to add to the spend of its key, team and user (applied once per stored
    spend row; with an empty ``request_id``, applied unconditionally)."""

    request_id: str
    cost: float
    owners: tuple[tuple[EntityKind, str], ...]


class Store:
    """Async access to the tables; one engine (a small pool) per process.

    On SQLite, spend writes also have an engine of their own, used from one worker thread: a write is
    dozens of statements, and through the async engine each of them is a hand-over between the event
    loop and the driver's thread (and back), all of it on the event loop's thread too. In the worker
    thread the whole write is one hand-over, and the event loop does nothing for it."""

    def __init__(self, engine: AsyncEngine, writer: sa.Engine | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._writer = writer
        self._writer_thread = (
            ThreadPoolExecutor(1, thread_name_prefix="anygate-spend") if writer is not None else None
        )
        self._compiled: dict[
            tuple[str, int], tuple[str, tuple[tuple[int, str], ...], tuple[str, ...] | None]
        ] = {}
        self._json_sql: dict[str, str] = {}

    @classmethod
    async def open(cls, url: str, *, target: int = schema.SCHEMA_VERSION) -> Store:
        """Connect and run the migrations the database needs (up to ``target``: an older schema, for
        tests and benchmarks)."""
        full = async_url(url)
        writer = None
        if full.startswith("sqlite"):
            sqlite3.register_adapter(type(None), _null)
            engine = create_async_engine(full, connect_args={"timeout": 30})
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            if not _in_memory(engine.url):  # a second engine would open a database of its own
                writer = sa.create_engine(
                    engine.url.set(drivername="sqlite"), connect_args={"timeout": 30}, pool_size=1
                )
                sa.event.listen(writer, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(full, pool_size=5, max_overflow=5, pool_pre_ping=True)
        store = cls(engine, writer)
        try:
            await store.migrate(target)
        except BaseException:
            await store.close()
            raise
        return store

    async def migrate(self, target: int = schema.SCHEMA_VERSION) -> int:
        """Bring the database to schema version ``target``; returns the version it had. Instances
        starting at once take turns: each migrates under a lock held to its commit (Postgres: an
        advisory lock; SQLite: the database's write lock, taken before the version is read), so the
        next one finds the database migrated."""
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            else:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            before = await conn.run_sync(schema.migrate, target)
        if before < target:
            log.info("database schema upgraded from version %d to %d", before, target)
        return before

    async def close(self) -> None:
        if self._writer_thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer_thread, self._close_writer)
            self._writer_thread.shutdown()
            self._writer_thread = None
        await self.engine.dispose()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.dispose()

    # --- counters ------------------------------------------------------------------------------------

    @staticmethod
    async def _bump(conn: AsyncConnection, name: str) -> int:
        return int((await conn.execute(_bump_counter(name))).scalar_one())

    async def counters(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(schema.meta.c.name, schema.meta.c.value))
            return {name: int(value) for name, value in rows}

    # --- keys, teams, users ----------------------------------------------------------------------------

    async def insert(self, kind: EntityKind, values: Mapping[str, Any]) -> None:
        """A new key, team or user (``spend`` in ``values`` is its spend so far; 0 without)."""
        await self.insert_many(kind, [values])

    async def insert_many(self, kind: EntityKind, rows: Sequence[Mapping[str, Any]]) -> None:
        """New keys, teams or users in one transaction, stamped with one revision: one change for
        every instance's cache. The rows must name the same fields."""
        if not rows:
            return
        primary = PRIMARY[kind]
        entities: list[dict[str, Any]] = []
        spends: list[dict[str, Any]] = []
        for values in rows:
            fields, spend = _without_spend(values)
            entities.append(fields)
            spends.append({primary: fields[primary], "spend": spend or 0.0, "spend_revision": 0})
        async with self.engine.begin() as conn:
            revision = await self._bump(conn, "revision")
            await conn.execute(sa.insert(TABLES[kind]), [{**e, "revision": revision} for e in entities])
            await conn.execute(sa.insert(SPEND_TABLES[kind]), spends)

    async def update(self, kind: EntityKind, entity_id: str, values: Mapping[str, Any]) -> bool:
        """Change a key, team or user; False when it does not exist. A ``spend`` in ``values`` sets
        its spend (stamped with the ``spend`` counter, as spend writes are)."""
        table, primary = TABLES[kind], PRIMARY[kind]
        fields, spend = _without_spend(values)
        async with self.engine.begin() as conn:
            revision = await self._bump(conn, "revision")
            counter = await self._bump(conn, "spend") if spend is not None else None
            result = await conn.execute(
                sa.update(table).where(table.c[primary] == entity_id).values(**fields, revision=revision)
            )
            if counter is not None and result.rowcount:
                await _set_spend(conn, kind, entity_id, spend or 0.0, counter)
            return bool(result.rowcount)

    async def delete(self, kind: EntityKind, ids: Sequence[str]) -> list[str]:
        """Delete rows; returns the ids that existed."""
        table = TABLES[kind]
        column = table.c[PRIMARY[kind]]
        async with self.engine.begin() as conn:
            revision = await self._bump(conn, "revision")  # first: takes SQLite's write lock at once
            found = [r[0] for r in await conn.execute(sa.select(column).where(column.in_(ids)))]
            if not found:
                return []
            await conn.execute(sa.delete(table).where(column.in_(found)))
            spent = SPEND_TABLES[kind]
            await conn.execute(sa.delete(spent).where(spent.c[PRIMARY[kind]].in_(found)))
            await conn.execute(
                sa.insert(schema.deletions),
                [{"kind": kind, "entity_id": i, "revision": revision} for i in found],
            )
            return found

    async def rekey(self, old_token: str, row: Mapping[str, Any], spend: float | None = None) -> float | None:
        """Replace a key's token (regeneration): the old one stops working on every instance. The key
        keeps its spend (the old token's, read in the same transaction; a ``spend`` in ``row`` is not
        used) unless ``spend`` sets one. Returns the spend the key has now; None when the old token
        does not exist."""
        table, spent = schema.keys, SPEND_TABLES["key"]
        fields, _ = _without_spend(row)
        async with self.engine.begin() as conn:
            revision = await self._bump(conn, "revision")
            result = await conn.execute(sa.delete(table).where(table.c.token == old_token))
            if not result.rowcount:
                return None
            kept = (
                await conn.execute(
                    sa.delete(spent).where(spent.c.token == old_token).returning(spent.c.spend)
                )
            ).scalar_one_or_none()
            if spend is None:
                spend = float(kept or 0.0)
            await conn.execute(sa.insert(table).values(**fields, revision=revision))
            await conn.execute(sa.insert(spent).values(token=fields["token"], spend=spend, spend_revision=0))
            await conn.execute(
                sa.insert(schema.deletions), [{"kind": "key", "entity_id": old_token, "revision": revision}]
            )
            return spend

    async def get(self, kind: EntityKind, entity_id: str) -> dict[str, Any] | None:
        """A key, team or user with its spend and ``spend_revision``; None when it does not exist."""
        table = TABLES[kind]
        async with self.engine.connect() as conn:
            query = _with_spend(kind).where(table.c[PRIMARY[kind]] == entity_id)
            row = (await conn.execute(query)).first()
            return None if row is None else dict(row._mapping)

    async def find(
        self,
        kind: EntityKind,
        where: Mapping[str, Any] | None = None,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Rows matching equality filters, in creation order, and the total count."""
        table = TABLES[kind]
        conditions = [table.c[name] == value for name, value in (where or {}).items()]
        async with self.engine.connect() as conn:
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(table).where(*conditions))
            ).scalar_one()
            query = _with_spend(kind).where(*conditions).order_by(table.c.created_at, table.c[PRIMARY[kind]])
            if limit is not None:
                query = query.offset(offset).limit(limit)
            rows = [dict(r._mapping) for r in await conn.execute(query)]
            return rows, int(total)

    async def changes(self, since: int) -> Changes:
        """Rows written and ids deleted after revision ``since`` (``since=-1``: everything)."""
        async with self.engine.connect() as conn:
            revision = (
                await conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.name == "revision"))
            ).scalar_one()
            rows: dict[EntityKind, list[dict[str, Any]]] = {}
            for kind, table in TABLES.items():
                query = _with_spend(kind)
                if since >= 0:
                    query = query.where(table.c.revision > since)
                rows[kind] = [dict(r._mapping) for r in await conn.execute(query)]
            deleted: list[tuple[EntityKind, str]] = []
            if since >= 0:
                gone = await conn.execute(
                    sa.select(schema.deletions.c.kind, schema.deletions.c.entity_id).where(
                        schema.deletions.c.revision > since
                    )
                )
                deleted = [(kind, entity_id) for kind, entity_id in gone]
            return Changes(int(revision), rows, deleted)

    async def spend_since(self, since: int) -> tuple[int, list[tuple[EntityKind, str, float, float | None]]]:
        """(spend counter, [(kind, id, spend, budget_reset_at)]) for rows whose spend moved after
        ``since``."""
        async with self.engine.connect() as conn:
            counter = (
                await conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.name == "spend"))
            ).scalar_one()
            found: list[tuple[EntityKind, str, float, float | None]] = []
            if int(counter) > since:
                for kind, table in TABLES.items():
                    spent, primary = SPEND_TABLES[kind], PRIMARY[kind]
                    rows = await conn.execute(
                        sa.select(spent.c[primary], spent.c.spend, table.c.budget_reset_at)
                        .select_from(spent.join(table, table.c[primary] == spent.c[primary]))
                        .where(spent.c.spend_revision > since)
                    )
                    found.extend((kind, i, float(s), r) for i, s, r in rows)
            return int(counter), found

    # --- spend ----------------------------------------------------------------------------------------

    async def write_spend(
        self,
        logs: Sequence[SpendRow],
        deltas: Sequence[SpendDelta],
        *,
        fresh: bool = False,
        totals: Mapping[tuple[EntityKind, str], float] | None = None,
    ) -> int:
        """Insert spend rows and add their costs to their owners, once: a request id already stored (a
        batch retried after a lost acknowledgement) adds nothing.

        ``fresh``: the caller knows that no row of this batch was written before (its first attempt),
        so the rows go in without asking which of them were new, and ``totals`` (each owner's sum of
        the deltas, when the caller keeps them) is what the owners' spend grows by. The rows and the
        owners' spend updates go to the driver as plain tuples for statements SQLAlchemy compiled once
        (:meth:`_driver_sql`): SQLAlchemy's per-row parameter handling was most of a spend write's
        CPU, and spend writes most of what teams add to a request. Returns the ``spend`` counter value
        the write was stamped with."""
        write = partial(self._write_spend, logs=logs, deltas=deltas, fresh=fresh, totals=totals)
        if self._writer_thread is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._writer_thread, self._in_writer, write)
        async with self.engine.begin() as conn:
            return await conn.run_sync(write)

    def _in_writer(self, write: Callable[[sa.Connection], int]) -> int:
        assert self._writer is not None
        with self._writer.begin() as conn:
            return write(conn)

    def _write_spend(
        self,
        conn: sa.Connection,
        *,
        logs: Sequence[SpendRow],
        deltas: Sequence[SpendDelta],
        fresh: bool,
        totals: Mapping[tuple[EntityKind, str], float] | None,
    ) -> int:
        """:meth:`write_spend` on a connection in a transaction (the worker thread's, or the async
        engine's through ``run_sync``)."""
        counter = int(conn.execute(_bump_counter("spend")).scalar_one())
        applied: Iterable[SpendDelta] = deltas
        if logs and not fresh:
            stored = _stored_request_ids(conn, [row.request_id for row in logs])
            if stored:
                logs = [row for row in logs if row.request_id not in stored]
                applied = [d for d in deltas if not d.request_id or d.request_id not in stored]
        if logs:
            if self.dialect == "postgresql":
                self._write_json(conn, "spend_logs", _spend_insert_columns, logs)
            else:
                self._write_rows(
                    conn, "spend_logs", self._spend_insert_rows, logs, SPEND_COLUMNS, SQLITE_INSERT_ROWS
                )
        if totals is None or not fresh:
            summed: defaultdict[tuple[EntityKind, str], float] = defaultdict(float)
            for delta in applied:
                for owner in delta.owners:
                    summed[owner] += delta.cost
            totals = summed
        by_kind: dict[EntityKind, list[tuple[str, float, int]]] = {kind: [] for kind in TABLES}
        for (kind, entity_id), cost in totals.items():
            if cost:
                by_kind[kind].append((entity_id, cost, counter))
        for kind, owned in by_kind.items():
            if not owned:
                continue
            owned.sort()  # by id: the updates then walk the table's index in order (7% less on SQLite)
            if self.dialect == "postgresql":
                builder = partial(_spend_update_columns, kind)
                self._write_json(conn, f"spend_{kind}", builder, owned)
            else:
                builder = partial(_spend_update_rows, kind)
                self._write_rows(
                    conn, f"spend_{kind}", builder, owned, SPEND_UPDATE_FIELDS, SQLITE_UPDATE_ROWS
                )
        return counter

    @staticmethod
    def _spend_insert_rows(count: int) -> Any:
        rows: list[dict[str, Any]] = [
            {name: sa.bindparam(f"{name}__{i}") for name in SPEND_COLUMNS} for i in range(count)
        ]
        return (
            sqlite.insert(schema.spend_logs)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["request_id"])
        )

    def _write_rows(
        self,
        conn: sa.Connection,
        name: str,
        build: Callable[[int], Any],
        rows: Sequence[tuple[Any, ...]],
        fields: tuple[str, ...],
        largest: int,
    ) -> None:
        """On SQLite, run the statement ``build(n)`` makes for ``n`` rows (its parameters named
        ``{field}__{row}``) over ``rows``, tuples of the values of ``fields``, handing the driver plain
        values: up to ``largest`` rows in each statement (in power-of-two batches, so a handful of
        compiled statements serve every batch). Why: SQLite runs in a worker thread, and the driver
        gives the interpreter lock back and takes it again around every statement it steps; a
        statement per row made thousands of lock hand-overs per write between that thread and the
        busy event loop thread, each a pair of context switches, which cost the gateway more CPU than
        the database's own work."""
        position = {field: i for i, field in enumerate(fields)}
        start = 0
        while start < len(rows):
            count = min(largest, 1 << ((len(rows) - start).bit_length() - 1))
            chunk = rows[start : start + count]
            start += count
            sql, spots, row_fields = self._driver_sql(name, count, build)
            if row_fields == fields:  # the statement takes whole rows, one after the other
                params = tuple(chain.from_iterable(chunk))
            else:  # a tuple: SQLAlchemy reads a list as many parameter sets
                params = tuple([chunk[row][position[field]] for row, field in spots])
            conn.exec_driver_sql(sql, params)

    def _write_json(
        self, conn: sa.Connection, name: str, build: Callable[[], Any], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """On Postgres, run the statement ``build()`` makes, which reads its rows from one JSON
        parameter, over ``rows`` (tuples in the statement's field order): the whole batch is one
        statement and one text the JSON library writes. Why: as one statement per row (asyncpg's
        pipelined ``executemany``) every row's every value was encoded on the event loop's thread
        (2-3 µs a row), and arrays per column cost more still; the server parses the JSON instead."""
        sql = self._json_sql.get(name)
        if sql is None:
            sql = self._json_sql[name] = str(build().compile(dialect=self.engine.dialect))
        conn.exec_driver_sql(sql, (orjson.dumps(rows, default=tuple).decode(),))

    def _driver_sql(
        self, name: str, count: int, build: Callable[[int], Any]
    ) -> tuple[str, tuple[tuple[int, str], ...], tuple[str, ...] | None]:
        """``build(count)`` compiled for this database once: its SQL, (row, field) of each of its
        positional parameters in order, and the fields of one row when the parameters are simply row
        after row with the same fields."""
        found = self._compiled.get((name, count))
        if found is None:
            compiled = build(count).compile(dialect=self.engine.dialect)
            spots = []
            for parameter in compiled.positiontup or ():
                field, _, row = parameter.rpartition("__")
                spots.append((int(row), field))
            fields = tuple(field for row, field in spots if row == 0)
            row_major = spots == [(row, field) for row in range(count) for field in fields]
            found = self._compiled[(name, count)] = (
                str(compiled),
                tuple(spots),
                fields if row_major else None,
            )
        return found

    async def reset_budgets(self, at: float) -> int:
        """Zero the spend of every budget whose window ended, and move its reset time on; returns how
        many were reset. Instances racing to do it reset each budget once (the update re-checks the old
        reset time)."""
        due: list[tuple[EntityKind, str, str | None, float]] = []
        async with self.engine.connect() as conn:
            for kind, table in TABLES.items():
                rows = await conn.execute(
                    sa.select(table.c[PRIMARY[kind]], table.c.budget_duration, table.c.budget_reset_at).where(
                        table.c.budget_reset_at <= at
                    )
                )
                due.extend((kind, i, d, r) for i, d, r in rows)
        if not due:
            return 0
        async with self.engine.begin() as conn:
            counter = await self._bump(conn, "spend")
            for kind, entity_id, duration, reset_at in due:
                table = TABLES[kind]
                following = None
                if duration:
                    step = duration_seconds(duration)
                    following = reset_at + ((at - reset_at) // step + 1) * step
                primary = PRIMARY[kind]
                moved = await conn.execute(
                    sa.update(table)
                    .where(table.c[primary] == entity_id, table.c.budget_reset_at == reset_at)
                    .values(budget_reset_at=following)
                )
                if moved.rowcount:  # not reset by another instance meanwhile
                    await _set_spend(conn, kind, entity_id, 0.0, counter)
        return len(due)

    async def spend_logs(
        self, filters: Mapping[str, Any], start: float | None, end: float | None, limit: int
    ) -> list[dict[str, Any]]:
        table = schema.spend_logs
        conditions = [table.c[name] == value for name, value in filters.items()]
        if start is not None:
            conditions.append(table.c.start_time >= start)
        if end is not None:
            conditions.append(table.c.start_time < end)
        query = sa.select(table).where(*conditions).order_by(table.c.start_time.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def spend_totals(
        self, group: Sequence[str], filters: Mapping[str, Any], start: float | None, end: float | None
    ) -> list[dict[str, Any]]:
        """Spend, tokens and requests summed by the ``group`` columns over a time range."""
        table = schema.spend_logs
        columns = [table.c[name] for name in group]
        conditions = [table.c[name] == value for name, value in filters.items()]
        if start is not None:
            conditions.append(table.c.start_time >= start)
        if end is not None:
            conditions.append(table.c.start_time < end)
        query = (
            sa.select(
                *columns,
                sa.func.sum(table.c.spend).label("spend"),
                sa.func.sum(table.c.prompt_tokens).label("input_tokens"),
                sa.func.sum(table.c.completion_tokens).label("output_tokens"),
                sa.func.sum(table.c.cache_read_input_tokens).label("cache_read_input_tokens"),
                sa.func.sum(table.c.cache_creation_input_tokens).label("cache_creation_input_tokens"),
                sa.func.count().label("requests"),
            )
            .where(*conditions)
            .group_by(*columns)
            .order_by(*columns)
        )
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]


def refused_data(exc: BaseException) -> bool:
    """Whether a spend write failed on a value it wrote, not on the database: the driver could not
    encode it (a number too large, an unserialisable value) or the database refused it (SQLSTATE
    classes 22 and 23: data exceptions, constraint violations such as a NaN's NULL). Anything else
    (connection, timeout, lock, disk full) keeps the batch for the next try."""
    if isinstance(exc, TypeError | ValueError | OverflowError | sa.exc.DataError | sa.exc.IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    return isinstance(code, str) and code[:2] in ("22", "23")


def _bump_counter(name: str) -> Any:
    """Add one to a counter of ``anygate_meta`` and return its new value (the row's lock, held to the
    end of the transaction, orders the writers)."""
    counter = schema.meta
    return (
        sa.update(counter)
        .where(counter.c.name == name)
        .values(value=counter.c.value + 1)
        .returning(counter.c.value)
    )


def _without_spend(values: Mapping[str, Any]) -> tuple[dict[str, Any], float | None]:
    """A key's, team's or user's fields for its own table, and its spend (None: not given), which its
    spend table holds. ``revision`` and ``spend_revision`` (a row read back has them) are left out:
    the store stamps them."""
    fields = dict(values)
    spend = fields.pop("spend", None)
    fields.pop("revision", None)
    fields.pop("spend_revision", None)
    return fields, None if spend is None else float(spend)


async def _set_spend(
    conn: AsyncConnection, kind: EntityKind, entity_id: str, spend: float, counter: int
) -> None:
    """Set an entity's spend, stamped with the ``spend`` counter ``counter``; its spend row is made if
    it has none (every write path makes both rows, but a spend set must never vanish)."""
    spent, primary = SPEND_TABLES[kind], PRIMARY[kind]
    moved = await conn.execute(
        sa.update(spent).where(spent.c[primary] == entity_id).values(spend=spend, spend_revision=counter)
    )
    if not moved.rowcount:
        await conn.execute(
            sa.insert(spent).values({primary: entity_id, "spend": spend, "spend_revision": counter})
        )


def _with_spend(kind: EntityKind) -> sa.Select[Any]:
    """Select whole key, team or user rows with their spend and ``spend_revision``."""
    table, spent = TABLES[kind], SPEND_TABLES[kind]
    primary = PRIMARY[kind]
    return sa.select(
        table,
        sa.func.coalesce(spent.c.spend, 0.0).label("spend"),
        sa.func.coalesce(spent.c.spend_revision, 0).label("spend_revision"),
    ).select_from(table.outerjoin(spent, spent.c[primary] == table.c[primary]))


def _stored_request_ids(conn: sa.Connection, request_ids: Sequence[str]) -> set[str]:
    """Which of these request ids have a spend row already."""
    column = schema.spend_logs.c.request_id
    stored: set[str] = set()
    for start in range(0, len(request_ids), 500):
        chunk = request_ids[start : start + 500]
        stored.update(r[0] for r in conn.execute(sa.select(column).where(column.in_(chunk))))
    return stored


def _json_rows(table: sa.Table, fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Rows given as one JSON parameter ``rows``, an array of arrays (Postgres): for each ``(field,
    column)``, the row's value at that field's position, as the column's type."""
    given = (
        sa.func.json_array_elements(sa.cast(sa.bindparam("rows", type_=sa.Text), postgresql.JSON))
        .table_valued("value")
        .render_derived("given")
    )
    return {
        field: sa.cast(given.c.value.op("->>")(sa.literal_column(str(position))), table.c[column].type)
        for position, (field, column) in enumerate(fields)
    }


def _spend_insert_columns() -> Any:
    """Postgres: insert the spend rows given as one JSON array (:meth:`Store._write_json`)."""
    table = schema.spend_logs
    values = _json_rows(table, [(name, name) for name in SPEND_COLUMNS])
    return (
        postgresql.insert(table)
        .from_select(list(SPEND_COLUMNS), sa.select(*values.values()))
        .on_conflict_do_nothing(index_elements=["request_id"])
    )


def _spend_update_columns(kind: EntityKind) -> Any:
    """Postgres: add each amount to the spend of its entity, ``[entity, delta, counter]`` rows given
    as one JSON array (:meth:`Store._write_json`)."""
    table = SPEND_TABLES[kind]
    primary = PRIMARY[kind]
    given = _json_rows(table, [("entity", primary), ("delta", "spend"), ("counter", "spend_revision")])
    return (
        sa.update(table)
        .where(table.c[primary] == given["entity"])
        .values(spend=table.c.spend + given["delta"], spend_revision=given["counter"])
    )


def _spend_update_rows(kind: EntityKind, count: int) -> Any:
    """Add ``delta__i`` to the spend of entity ``entity__i`` for ``count`` entities at once."""
    table = SPEND_TABLES[kind]
    column = table.c[PRIMARY[kind]]
    if count == 1:
        delta: Any = sa.bindparam("delta__0")
        where: Any = column == sa.bindparam("entity__0")
    else:
        entities: list[Any] = [sa.bindparam(f"entity__{i}") for i in range(count)]
        delta = sa.case(
            {entity: sa.bindparam(f"delta__{i}") for i, entity in enumerate(entities)}, value=column
        )
        where = column.in_(entities)
    return (
        sa.update(table)
        .where(where)
        .values(spend=table.c.spend + delta, spend_revision=sa.bindparam("counter__0"))
    )


def _in_memory(url: sa.URL) -> bool:
    """Whether a SQLite URL names an in-memory database (``sqlite://``, ``:memory:``, ``mode=memory``)."""
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _null(value: None) -> None:
    """Python's ``sqlite3`` adapter for ``None``: SQL ``NULL``, as without one, found at once. Why: the
    driver binds ``int``, ``float`` and ``str`` directly but looks every other value up as an adapter,
    and for ``None``, finding none, asks the protocol and the value for one, raising and clearing a
    formatted ``AttributeError`` on the way. A spend row has up to eight ``None`` values, and that
    search would be a fifth of the instructions SQLite's writer thread spends on a row."""
    return value


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer; several worker processes share the file) and a busy
    timeout instead of instant "database is locked" errors. The log is copied back into the database
    every 10,000 pages (about 40 MB) instead of SQLite's 1,000: a spend write rewrites the spend rows of
    the keys that spent, hundreds to thousands of pages under load, so with the default nearly every
    write ended in a checkpoint copying them all again (9% of a write's CPU in `bench.teams_overhead`,
    measured when spend was kept in the keys' own rows)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
    cursor.close()

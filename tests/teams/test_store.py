"""The store and the ledger on a real database: migrations, change tracking, spend written once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from anygate.teams import schema
from anygate.teams.cache import Directory
from anygate.teams.ledger import Ledger
from anygate.teams.store import SpendDelta, SpendRow, Store, async_url


def _key(token: str, **extra: object) -> dict[str, object]:
    return {"token": token, "key_name": "sk-...abcd", "models": [], "metadata": {}, "spend": 0.0,
            "blocked": False, "created_at": 1.0, "updated_at": 1.0, **extra}  # fmt: skip


def _row(request_id: str, cost: float, **fields: object) -> SpendRow:
    """A spend row as the teams hook writes it: every column."""
    values: dict[str, object] = {
        "request_id": request_id, "call_type": "anthropic_messages", "api_key": "k1", "key_alias": None,
        "team_id": None, "user": None, "end_user": None, "session_id": "s1", "model": "m",
        "model_id": "m#0", "custom_llm_provider": "mock", "prompt_tokens": 10, "completion_tokens": 20,
        "total_tokens": 30, "spend": cost, "start_time": 1.0, "end_time": 2.0,
        "completion_start_time": None, "status": "success", "status_code": 200, "day": "1970-01-01",
        "metadata": '{"latency_ms":1.5,"stream":false}', "cache_read_input_tokens": 3,
        "cache_creation_input_tokens": 0, **fields,
    }  # fmt: skip
    return SpendRow(**values)  # type: ignore[arg-type]


async def test_an_older_database_is_upgraded_on_start(database_url: str) -> None:
    store = Store(create_async_engine(async_url(database_url)))
    assert await store.migrate(target=1) == 0  # a database made by the first schema version
    async with store.engine.connect() as conn:
        columns = await conn.run_sync(
            lambda c: {col["name"] for col in sa.inspect(c).get_columns(schema.SPEND_LOGS)}
        )
    assert "cache_read_input_tokens" not in columns
    async with store.engine.connect() as conn:
        before = await conn.run_sync(
            lambda c: {tuple(i["column_names"]) for i in sa.inspect(c).get_indexes(schema.SPEND_LOGS)}
        )
    assert ("api_key",) in before and ("model",) in before and len(before) == 7
    await store.close()
    upgraded = await Store.open(database_url)
    assert (await upgraded.counters())["schema"] == schema.SCHEMA_VERSION
    async with upgraded.engine.connect() as conn:
        columns = await conn.run_sync(
            lambda c: {col["name"] for col in sa.inspect(c).get_columns(schema.SPEND_LOGS)}
        )
    assert "cache_read_input_tokens" in columns
    async with upgraded.engine.connect() as conn:
        indexes = await conn.run_sync(
            lambda c: {tuple(i["column_names"]) for i in sa.inspect(c).get_indexes(schema.SPEND_LOGS)}
        )
    # Version 1 indexed six more columns one by one; version 3 keeps what reports need.
    expected = {("start_time",)}
    if upgraded.dialect == "postgresql":
        expected.add(("api_key",))
    assert indexes == expected
    assert await upgraded.migrate() == schema.SCHEMA_VERSION  # nothing left to do
    await upgraded.close()


async def test_spend_moves_to_its_own_tables_on_upgrade(database_url: str) -> None:
    """Version 4 keeps spend apart from the keys', teams' and users' rows: an older database's spend
    and spend counters come along, and the old columns go."""
    store = Store(create_async_engine(async_url(database_url)))
    assert await store.migrate(target=3) == 0
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO anygate_keys (token, key_name, models, metadata, spend, blocked, created_at, "
                "updated_at, revision, spend_revision, budget_reset_at) VALUES "
                "('k1', 'sk-...k1', '[]', '{}', 2.5, false, 1, 1, 1, 7, 99.0), "
                "('k2', 'sk-...k2', '[]', '{}', 0.0, false, 2, 2, 1, 0, NULL)"
            )
        )
        await conn.execute(
            sa.text(
                "INSERT INTO anygate_teams (team_id, members_with_roles, models, metadata, spend, blocked, "
                "created_at, updated_at, revision, spend_revision) VALUES "
                "('t1', '[]', '[]', '{}', 40.25, false, 1, 1, 1, 3)"
            )
        )
        await conn.execute(sa.text("UPDATE anygate_meta SET value = 7 WHERE name = 'spend'"))
    await store.close()
    upgraded = await Store.open(database_url)
    async with upgraded.engine.connect() as conn:
        columns = await conn.run_sync(
            lambda c: {
                (table, col["name"])
                for table in ("anygate_keys", "anygate_teams", "anygate_users")
                for col in sa.inspect(c).get_columns(table)
            }
        )
    assert not {name for _, name in columns} & {"spend", "spend_revision"}
    key = await upgraded.get("key", "k1")
    assert key is not None and key["spend"] == 2.5 and key["spend_revision"] == 7
    team = await upgraded.get("team", "t1")
    assert team is not None and team["spend"] == 40.25
    assert [(k, i, s, r) for k, i, s, r in (await upgraded.spend_since(2))[1]] == [
        ("key", "k1", 2.5, 99.0),
        ("team", "t1", 40.25, None),
    ]
    rows, total = await upgraded.find("key")
    assert total == 2 and [(r["token"], r["spend"]) for r in rows] == [("k1", 2.5), ("k2", 0.0)]
    await upgraded.write_spend([], [SpendDelta("", 0.5, (("key", "k2"), ("team", "t1")))])
    assert (await upgraded.get("key", "k2") or {})["spend"] == 0.5
    assert (await upgraded.get("team", "t1") or {})["spend"] == 40.75
    await upgraded.close()


async def test_spend_follows_its_key_through_updates_regeneration_and_deletion(database_url: str) -> None:
    store = await Store.open(database_url)
    await store.insert("key", _key("k1", spend=1.5))
    await store.write_spend([], [SpendDelta("", 0.25, (("key", "k1"),))])
    assert (await store.get("key", "k1") or {})["spend"] == 1.75
    before = (await store.counters())["spend"]
    assert await store.update("key", "k1", {"key_alias": "renamed"})
    assert (await store.counters())["spend"] == before  # no spend given: the spend stays, unstamped
    assert await store.update("key", "k1", {"spend": 10.0})
    moved = await store.spend_since(before)
    assert moved[1] == [("key", "k1", 10.0, None)]
    assert not await store.update("key", "nope", {"spend": 1.0})
    row = await store.get("key", "k1")
    assert row is not None
    row.pop("spend")
    assert await store.rekey("k1", {**row, "token": "k9", "key_name": "sk-...k9"}) == 10.0  # kept
    assert await store.get("key", "k1") is None
    regenerated = await store.get("key", "k9")
    assert regenerated is not None and regenerated["spend"] == 10.0 and regenerated["key_alias"] == "renamed"
    assert await store.rekey("k9", {**regenerated, "token": "k8"}, spend=4.0) == 4.0  # set
    assert (await store.get("key", "k8") or {})["spend"] == 4.0
    assert await store.rekey("k9", {**regenerated, "token": "k7"}) is None  # gone already
    assert await store.delete("key", ["k8"]) == ["k8"]
    async with store.engine.connect() as conn:
        counted = sa.select(sa.func.count()).select_from(schema.spend_tables["key"])
        left = (await conn.execute(counted)).scalar()
    assert left == 0
    await store.close()


async def test_instances_starting_at_once_migrate_once(database_url: str) -> None:
    """Several processes opening an older database at the same moment: one migrates, the others wait
    for it and find the work done."""
    older = await Store.open(database_url, target=3)
    async with older.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO anygate_keys (token, key_name, models, metadata, spend, blocked, created_at, "
                "updated_at, revision, spend_revision) "
                "VALUES ('k1', 'sk-...k1', '[]', '{}', 1.5, false, 1, 1, 1, 0)"
            )
        )
    await older.close()
    stores = await asyncio.gather(*(Store.open(database_url) for _ in range(4)))
    for store in stores:
        assert (await store.counters())["schema"] == schema.SCHEMA_VERSION
    assert (await stores[0].get("key", "k1") or {})["spend"] == 1.5
    for store in stores:
        await store.close()


async def test_changes_reach_a_second_cache(database_url: str) -> None:
    one, two = await Store.open(database_url), await Store.open(database_url)
    cache = Directory()
    cache.apply(await two.changes(-1), lambda kind, entity_id: 0.0)
    await one.insert("key", _key("a" * 64, rpm_limit=5))
    cache.apply(await two.changes(cache.revision), lambda kind, entity_id: 0.0)
    assert cache.keys["a" * 64].rpm_limit == 5
    await one.delete("key", ["a" * 64])
    cache.apply(await two.changes(cache.revision), lambda kind, entity_id: 0.0)
    assert "a" * 64 not in cache.keys
    await one.close()
    await two.close()


async def test_spend_is_written_once_even_when_a_batch_is_retried(database_url: str) -> None:
    store = await Store.open(database_url)
    await store.insert("key", _key("k1"))
    deltas = [SpendDelta("r1", 0.5, (("key", "k1"),))]
    await store.write_spend([_row("r1", 0.5)], deltas)
    await store.write_spend([_row("r1", 0.5)], deltas)  # the acknowledgement was lost: written again
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.5
    logs = await store.spend_logs({}, None, None, 10)
    assert len(logs) == 1 and logs[0]["cache_read_input_tokens"] == 3
    await store.close()


class _Flaky(Store):
    """A store whose database is down until ``up`` is set."""

    up = False

    async def write_spend(self, logs, deltas, **options):  # type: ignore[no-untyped-def]
        if not self.up:
            raise ConnectionRefusedError("database is down")
        return await super().write_spend(logs, deltas, **options)


async def test_the_ledger_keeps_spend_while_the_database_is_down(database_url: str) -> None:
    real = await Store.open(database_url)
    store = _Flaky(real.engine)
    await store.insert("key", _key("k1"))
    ledger = Ledger(store, interval=0.01)
    ledger.add(_row("r1", 0.25), 0.25, (("key", "k1"),))
    assert not await ledger.flush()
    assert ledger.pending("key", "k1") == 0.25 and ledger.buffered == 1
    store.up = True
    await ledger.aclose()
    assert ledger.pending("key", "k1") == 0.0
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.25
    await store.close()


async def test_a_row_the_database_refuses_is_left_out_and_the_rest_written(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One request's figure too large for the column, another's NaN cost: every other row of the
    batch is written, the first one's cost still counts, and both are named in the log; the buffer
    is empty afterwards (nothing is retried forever)."""
    store = await Store.open(database_url)
    await store.insert("key", _key("k1"))
    ledger = Ledger(store, interval=60)
    for i in range(7):
        row = _row(f"r{i}", 0.125)
        if i == 2:
            row = _row("r2", 0.5, prompt_tokens=2**64 - 1)
        if i == 5:
            row = _row("r5", float("nan"))
        ledger.add(row, row.spend, (("key", "k1"),))
    with caplog.at_level(logging.ERROR, logger="anygate.teams"):
        assert await ledger.flush()
    assert ledger.buffered == 0 and ledger.pending("key", "k1") == 0
    stored = {log["request_id"] for log in await store.spend_logs({}, None, None, 10)}
    assert stored == {"r0", "r1", "r3", "r4", "r6"}
    key = await store.get("key", "k1")
    assert key is not None and key["spend"] == 5 * 0.125 + 0.5
    logged = caplog.text
    assert "request r2" in logged and "its cost counts" in logged
    assert "request r5" in logged and "left out" in logged
    await store.close()


class _DownOnCall(Store):
    """A store whose database goes away on one spend write (counted from 1)."""

    down_on = 4
    calls = 0

    async def write_spend(self, logs, deltas, **options):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.down_on:
            raise ConnectionResetError("the database went away")
        return await super().write_spend(logs, deltas, **options)


async def test_costs_written_while_splitting_a_batch_are_not_written_again(database_url: str) -> None:
    """Spend rows not kept: the costs go alone. One is refused (NaN), and the database goes away
    just after the other was written apart: the next flush writes neither of them again."""
    real = await Store.open(database_url)
    store = _DownOnCall(real.engine)
    await store.insert("key", _key("k1"))
    ledger = Ledger(store, interval=60, keep_rows=False)
    ledger.add(None, 0.25, (("key", "k1"),))
    ledger.add(None, float("nan"), (("key", "k1"),))
    assert not await ledger.flush()  # 1: the batch, refused; 2: both costs, refused; 3: 0.25; 4: down
    assert ledger.buffered == 1
    assert await ledger.flush()  # the NaN alone, refused again: left out
    assert ledger.buffered == 0
    key = await store.get("key", "k1")
    assert key is not None and key["spend"] == 0.25
    await store.close()


class _LostAcknowledgement(Store):
    """A store whose first spend write commits, then fails as if the acknowledgement was lost."""

    lost = 1

    async def write_spend(self, logs, deltas, **options):  # type: ignore[no-untyped-def]
        counter = await super().write_spend(logs, deltas, **options)
        if self.lost:
            self.lost -= 1
            raise ConnectionResetError("connection lost before the commit was acknowledged")
        return counter


async def test_spend_written_but_not_acknowledged_counts_once(database_url: str) -> None:
    real = await Store.open(database_url)
    store = _LostAcknowledgement(real.engine)
    await store.insert("key", _key("k1"))
    ledger = Ledger(store, interval=60)
    ledger.add(_row("r1", 0.25), 0.25, (("key", "k1"),))
    assert not await ledger.flush()  # stored, but the ledger cannot know
    ledger.add(_row("r2", 0.5), 0.5, (("key", "k1"),))
    assert await ledger.flush()  # r1 again with r2: this write checks which rows are new
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.75
    logs = {log["request_id"]: log for log in await store.spend_logs({}, None, None, 10)}
    assert sorted(logs) == ["r1", "r2"]
    assert logs["r1"]["metadata"] == {"latency_ms": 1.5, "stream": False}
    assert logs["r1"]["session_id"] == "s1" and logs["r1"]["total_tokens"] == 30
    ledger.add(_row("r3", 0.125), 0.125, (("key", "k1"),))
    assert await ledger.flush()  # back to first attempts
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.875
    await store.close()


async def test_a_cache_does_not_read_back_its_own_spend_but_reads_anothers(database_url: str) -> None:
    store, other = await Store.open(database_url), await Store.open(database_url)
    await store.insert("key", _key("k1"))
    cache = Directory()
    ledger = Ledger(store, interval=60, on_written=cache.own_spend_written)
    cache.apply(await store.changes(-1), ledger.pending)
    cache.apply_spend(*await store.spend_since(-1), ledger.pending)
    key = cache.keys["k1"]
    key.spend += 0.25  # what the hook does as a request ends
    ledger.add(_row("r1", 0.25), 0.25, (("key", "k1"),))
    assert await ledger.flush()
    assert cache.spend_counter == (await store.counters())["spend"]  # nothing left to read
    assert key.spend == 0.25
    await other.write_spend([_row("r2", 0.5)], [SpendDelta("r2", 0.5, (("key", "k1"),))])
    key.spend += 0.125
    ledger.add(_row("r3", 0.125), 0.125, (("key", "k1"),))
    assert await ledger.flush()  # another write came between: the cache must read
    assert cache.spend_counter < (await store.counters())["spend"]
    cache.apply_spend(*await store.spend_since(cache.spend_counter), ledger.pending)
    assert key.spend == 0.875
    await store.close()
    await other.close()


async def test_a_large_spend_write_lands_whole(database_url: str) -> None:
    """Hundreds of rows and keys in one write: SQLite takes them in several multi-row statements."""
    store = await Store.open(database_url)
    keys = [f"k{i:03d}" for i in range(150)]
    await store.insert_many("key", [_key(key) for key in keys])
    rows = [_row(f"r{i}", 0.001 * (i % 7 + 1)) for i in range(700)]
    deltas = [SpendDelta(f"r{i}", 0.001 * (i % 7 + 1), (("key", keys[i % 150]),)) for i in range(700)]
    await store.write_spend(rows, deltas, fresh=True)
    stored = {log["request_id"]: log for log in await store.spend_logs({}, None, None, 1000)}
    assert len(stored) == 700 and stored["r699"]["metadata"] == {"latency_ms": 1.5, "stream": False}
    for number in (0, 127, 128, 149):
        expected = sum(d.cost for d in deltas if d.owners[0][1] == keys[number])
        row = await store.get("key", keys[number])
        assert row is not None and abs(row["spend"] - expected) < 1e-12
    await store.close()


async def test_a_spend_row_reads_back_exactly_as_it_was_given(database_url: str) -> None:
    """Every column of a spend row round-trips unchanged: floats to the last bit, nulls, the largest
    token figures, texts with quotes, backslashes and emoji, metadata JSON."""
    store = await Store.open(database_url)
    team = {"team_id": "t1", "members_with_roles": [], "models": [], "metadata": {}, "spend": 0.5,
            "blocked": False, "created_at": 1.0, "updated_at": 1.0}  # fmt: skip
    await store.insert("key", _key("k1"))
    await store.insert("team", team)
    odd = 'a "quoted" \\ back\\slash 🚀 é'
    row = _row(
        "r-exact", 0.1 + 0.2, key_alias=odd, team_id="t1", user=odd, end_user=odd, session_id=None, model=odd,
        prompt_tokens=2**53 - 1, completion_tokens=0, total_tokens=2**53 - 1, start_time=1764547200.123456,
        end_time=1764547200.987654321, completion_start_time=1e-300, status_code=599,
        metadata='{"error":"x \\u0000 \\"y\\"","n":[1,2.5,null]}', cache_read_input_tokens=2**53 - 1,
    )  # fmt: skip
    owners = (("key", "k1"), ("team", "t1"))
    await store.write_spend([row], [SpendDelta("r-exact", 0.1 + 0.2, owners)], fresh=True)  # type: ignore[arg-type]
    [stored] = await store.spend_logs({}, None, None, 10)
    expected = row._asdict()
    expected["metadata"] = {"error": 'x \x00 "y"', "n": [1, 2.5, None]}
    assert stored == expected
    key, team_row = await store.get("key", "k1"), await store.get("team", "t1")
    assert key is not None and key["spend"] == 0.1 + 0.2
    assert team_row is not None and team_row["spend"] == 0.5 + (0.1 + 0.2)
    await store.close()


class _Held(Store):
    """A store whose spend write waits for ``release``, then fails while ``fail`` is set."""

    fail = True

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.started, self.release = asyncio.Event(), asyncio.Event()

    async def write_spend(self, logs, deltas, **options):  # type: ignore[no-untyped-def]
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise ConnectionResetError("the database went away mid-write")
        return await super().write_spend(logs, deltas, **options)


async def test_spend_being_written_still_counts_as_pending(database_url: str) -> None:
    """While a write is in flight, the cache must still see its costs (a sync in between adds the
    ledger's pending spend to what the database says); after a failure they are buffered again."""
    real = await Store.open(database_url)
    store = _Held(real.engine)
    await store.insert("key", _key("k1"))
    ledger = Ledger(store, interval=60)
    ledger.add(_row("r1", 0.25), 0.25, (("key", "k1"), ("team", "t1")))
    writing = asyncio.create_task(ledger.flush())
    await store.started.wait()
    ledger.add(_row("r2", 0.5), 0.5, (("key", "k1"),))
    assert ledger.pending("key", "k1") == 0.75 and ledger.pending("team", "t1") == 0.25
    store.release.set()
    assert not await writing
    assert ledger.pending("key", "k1") == 0.75 and ledger.buffered == 2
    store.fail = False
    assert await ledger.flush()
    assert ledger.pending("key", "k1") == 0.0 and ledger.pending("team", "t1") == 0.0
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.75
    await real.close()


class _Unstoppable(_Held):
    """A held store whose spend write, once started, commits even when its caller is cancelled (as a
    write handed to a worker thread does)."""

    fail = False

    async def write_spend(self, logs, deltas, **options):  # type: ignore[no-untyped-def]
        return await asyncio.shield(asyncio.ensure_future(super().write_spend(logs, deltas, **options)))


async def test_shutdown_waits_for_a_write_in_progress_instead_of_writing_it_twice(database_url: str) -> None:
    real = await Store.open(database_url)
    store = _Unstoppable(real.engine)
    await store.insert("key", _key("k1"))
    ledger = Ledger(store, interval=0.01, keep_rows=False)  # no rows: nothing tells a retry it was stored
    ledger.start()
    ledger.add(_row("r1", 0.25), 0.25, (("key", "k1"),))
    await store.started.wait()  # the background write is under way
    closing = asyncio.create_task(ledger.aclose())
    await asyncio.sleep(0.05)
    store.release.set()
    await closing
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.25
    await real.close()


async def test_an_in_memory_sqlite_database_takes_spend_too() -> None:
    """Spend writes of a file database go through an engine of their own; in memory, that would be
    another, empty database, so they share the one engine."""
    store = await Store.open("sqlite://")
    await store.insert("key", _key("k1"))
    await store.write_spend([_row("r1", 0.5)], [SpendDelta("r1", 0.5, (("key", "k1"),))], fresh=True)
    row = await store.get("key", "k1")
    assert row is not None and row["spend"] == 0.5
    await store.close()

"""Virtual keys for the teams variants of the benchmark: a database filled with them, and wrk's key file.

The `--teams` variants of `bench.run` measure the small-request scenarios with teams on and 10,000
virtual keys in the database, each request presenting one of them, so what the run measures is what a
gateway shared by many developers pays per request: the key's hash looked up among 10,000, its limits
counted, its spend buffered and written, and the cache kept current while spend moves on thousands of
keys. Filling the database through 10,000 admin calls would take minutes; `seed` writes the teams and
then the keys with `Store.insert_many` (`anygate.teams.store.Store.open` migrates the database first),
each stamped with one `revision` as an admin change would be, so the gateway loads them exactly as it
loads keys made through `/key/generate`.

What the keys look like (`KEY_LIMITS`, `TEAM_LIMITS`): every key has an rpm limit and a monthly budget
and belongs to one of `TEAMS` teams that has a monthly budget too, so each request is checked against
two budgets and a rate limit (with Redis, counted there too). The limits are far above what
the run sends, so nothing is refused.

This module is imported by the harness (bench/.venv: no database drivers) for the key names and the
key file, and run as a script with the project's Python (which has SQLAlchemy, asyncpg and redis) for
the database work:

    .venv/bin/python -m bench.teams_keys seed sqlite:////tmp/x/anygate.db --keys 10000
    .venv/bin/python -m bench.teams_keys drop postgresql://postgres@127.0.0.1:5432/anygate_bench_1a2b
    .venv/bin/python -m bench.teams_keys clear-redis redis://127.0.0.1:6379/0 anygate-bench:1a2b:
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Final

KEYS: Final = 10_000
TEAMS: Final = 50
KEY_LIMITS: Final[dict[str, Any]] = {
    "rpm_limit": 100_000,
    "max_budget": 1_000.0,
    "budget_duration": "30d",
}
"""Per key: far above the run's ~20 requests per key and minute, and its spend of a few cents."""
TEAM_LIMITS: Final[dict[str, Any]] = {"max_budget": 1_000_000.0, "budget_duration": "30d"}
ADMIN_DATABASE: Final = "test"
"""The database on the Postgres server that the benchmark's own database is created from and dropped
from (this project's machines have ``test``)."""


def bench_key(index: int) -> str:
    """The ``index``-th virtual key of the benchmark (deterministic, so the harness and the seeded
    database agree without passing 10,000 keys around)."""
    return f"sk-bench-vk-{index:06d}"


def write_key_file(path: Path, distinct: int) -> list[str]:
    """The first ``distinct`` bench keys, one a line, for wrk to rotate through; returns them."""
    if distinct < 1:
        raise ValueError("need at least one key")
    keys = [bench_key(i) for i in range(distinct)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(keys) + "\n")
    return keys


def key_rows(count: int, teams: int, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(team rows, key rows) as the admin API would write them; key ``i`` belongs to team ``i % teams``."""
    from anygate.teams.records import abbreviate, duration_seconds, hash_key

    def budget(limits: dict[str, Any]) -> dict[str, Any]:
        return {**limits, "budget_reset_at": now + duration_seconds(limits["budget_duration"])}

    common = {"models": [], "metadata": {}, "spend": 0.0, "blocked": False, "created_at": now,
              "updated_at": now, "created_by": "bench", "updated_by": "bench"}  # fmt: skip
    team_rows = [
        {**common, **budget(TEAM_LIMITS), "team_id": f"bench-team-{t:03d}", "members_with_roles": []}
        for t in range(teams)
    ]
    key_rows = []
    for i in range(count):
        key = bench_key(i)
        key_rows.append(
            {
                **common,
                **budget(KEY_LIMITS),
                "token": hash_key(key),
                "key_name": abbreviate(key),
                "key_alias": f"bench-{i:06d}",
                "team_id": team_rows[i % teams]["team_id"] if teams else None,
            }
        )
    return team_rows, key_rows


async def seed(database_url: str, keys: int = KEYS, teams: int = TEAMS) -> float:
    """Create (migrate) the database and write ``teams`` teams and ``keys`` keys (a transaction each);
    returns the seconds it took. A Postgres database named in the URL is created first."""
    from anygate.teams.store import Store

    started = time.monotonic()
    if database_url.startswith(("postgres://", "postgresql://")):
        await _postgres_admin(database_url, "CREATE DATABASE {}")
    store = await Store.open(database_url)
    try:
        team_rows, rows = key_rows(keys, teams, time.time())
        await store.insert_many("team", team_rows)
        await store.insert_many("key", rows)
    finally:
        await store.close()
    return time.monotonic() - started


async def drop(database_url: str) -> None:
    """Drop the benchmark's Postgres database (SQLite files go with the run's folder)."""
    if database_url.startswith(("postgres://", "postgresql://")):
        await _postgres_admin(database_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


async def clear_redis(redis_url: str, prefix: str) -> int:
    """Delete the keys under the run's prefix; returns how many."""
    if not prefix or "*" in prefix:
        raise ValueError("a literal, non-empty key prefix is required")
    from redis import asyncio as redis_asyncio

    client = redis_asyncio.from_url(redis_url)
    removed = 0
    try:
        batch: list[bytes] = []
        async for name in client.scan_iter(match=f"{prefix}*", count=1_000):
            batch.append(name)
            if len(batch) >= 1_000:
                removed += await client.delete(*batch)
                batch = []
        if batch:
            removed += await client.delete(*batch)
    finally:
        await client.aclose()
    return removed


async def _postgres_admin(database_url: str, statement: str, admin_database: str = ADMIN_DATABASE) -> None:
    """Run ``statement`` (with the URL's database name, quoted, in place of ``{}``) on the server's
    ``admin_database``: a database cannot be created or dropped from a connection to itself."""
    import asyncpg

    server, _, name = database_url.partition("://")[2].rpartition("/")
    name = name.split("?", 1)[0]
    if not name.startswith("anygate_bench"):
        raise ValueError(
            f"refusing to create or drop {name!r}: the benchmark's databases are anygate_bench_*"
        )
    connection = await asyncpg.connect(f"postgresql://{server}/{admin_database}")
    try:
        await connection.execute(statement.format(f'"{name}"'))
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.teams_keys", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed", help="create the database and write the keys and teams")
    seeding.add_argument("database_url")
    seeding.add_argument("--keys", type=int, default=KEYS)
    seeding.add_argument("--teams", type=int, default=TEAMS)
    dropping = commands.add_parser("drop", help="drop the benchmark's Postgres database")
    dropping.add_argument("database_url")
    clearing = commands.add_parser("clear-redis", help="delete the run's Redis keys")
    clearing.add_argument("redis_url")
    clearing.add_argument("prefix")
    args = parser.parse_args(argv)
    if args.command == "seed":
        seconds = asyncio.run(seed(args.database_url, args.keys, args.teams))
        print(f"{args.keys} keys in {args.teams} teams written in {seconds:.1f} s")
    elif args.command == "drop":
        asyncio.run(drop(args.database_url))
    else:
        print(f"{asyncio.run(clear_redis(args.redis_url, args.prefix))} Redis keys removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

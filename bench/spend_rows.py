"""What a spend row costs SQLite as the spend table grows: schema version 2 against the current one.

Every request of a teams gateway leaves one spend row, written in batches by a background task; on
SQLite that work runs inside the gateway's process. A row's cost depends on the table's indexes and on
where in each index its values land: a value that differs from row to row (the key, the user, a random
request id) dirties an index page of its own per row, and SQLite writes every dirty page to its log at
each commit, so that cost grows with the table.

This writes batches of `--batch` rows (one second of a busy gateway) through the project's own
`Store.write_spend` into two SQLite files:
  - "version 2": the schema before migration 3 (eight indexes) and random request ids, as before;
  - "current": today's schema (request id and start time) and today's ids (time first),
after filling each with `--stored` rows the same way, and prints the CPU per row (the process's, so
SQLite's worker thread counts) at each size. Keys rotate through `--keys` distinct values.

    .venv/bin/python -m bench.spend_rows                      # 0, 50,000 and 200,000 rows stored
    .venv/bin/python -m bench.spend_rows --keys 50 --stored 0,200000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import tempfile
import time
from collections.abc import Callable

from anygate.protocol.ids import new_request_id
from anygate.teams.schema import SCHEMA_VERSION
from anygate.teams.store import SpendDelta, SpendRow, Store

_RANDOM = random.Random(7)


def _random_id() -> str:
    """A request id as versions before migration 3 made them: 96 random bits."""
    return f"req_{_RANDOM.getrandbits(96):024x}"


def _rows(count: int, start: int, keys: list[str], make_id: Callable[[], str]) -> list[SpendRow]:
    """Rows as a teams gateway writes them, for requests ``start`` to ``start + count``."""
    now = time.time()
    return [
        SpendRow(
            request_id=make_id(),
            call_type="anthropic_messages",
            api_key=keys[i % len(keys)],
            key_alias=f"alias-{i % len(keys)}",
            team_id=f"team-{i % 50}",
            user=f"user-{i % len(keys)}",
            end_user=None,
            session_id=None,
            model="bench-openai",
            model_id="bench-openai#0",
            custom_llm_provider="openai",
            prompt_tokens=15,
            completion_tokens=15,
            total_tokens=30,
            spend=0.0001,
            start_time=now,
            end_time=now + 0.01,
            completion_start_time=None,
            status="success",
            status_code=200,
            day="2026-11-30",
            metadata='{"latency_ms":10.0,"attempts":1,"stream":false}',
            cache_read_input_tokens=0,
            cache_creation_input_tokens=0,
        )
        for i in range(start, start + count)
    ]


async def _write(store: Store, rows: list[SpendRow]) -> None:
    deltas = [SpendDelta(row.request_id, row.spend, ()) for row in rows]
    await store.write_spend(rows, deltas, fresh=True)


async def measure(version: int, make_id: Callable[[], str], args: argparse.Namespace) -> list[float]:
    """CPU µs per row at each size in ``args.stored``, median of ``args.rounds`` batches."""
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(f"sqlite:///{folder}/spend.db", target=version)
        try:
            return await _measure(store, make_id, args)
        finally:
            await store.close()


async def _measure(store: Store, make_id: Callable[[], str], args: argparse.Namespace) -> list[float]:
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(args.keys)]
    written, figures = 0, []
    for size in args.stored:
        while written < size:
            count = min(20_000, size - written)
            await _write(store, _rows(count, written, keys, make_id))
            written += count
        per_row = []
        for _ in range(args.rounds):
            rows = _rows(args.batch, written, keys, make_id)
            started = time.process_time()
            await _write(store, rows)
            per_row.append((time.process_time() - started) / args.batch * 1e6)
            written += args.batch
        figures.append(statistics.median(per_row))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spend_rows", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", default="0,50000,200000", help="table sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=1500, help="rows per write (default 1500)")
    parser.add_argument("--keys", type=int, default=10_000, help="distinct keys (default 10,000)")
    parser.add_argument("--rounds", type=int, default=7, help="batches measured per size (default 7)")
    args = parser.parse_args()
    args.stored = [int(size) for size in args.stored.split(",")]
    old = asyncio.run(measure(2, _random_id, args))
    new = asyncio.run(measure(SCHEMA_VERSION, new_request_id, args))
    print(
        f"SQLite, CPU µs per spend row, batches of {args.batch}, {args.keys:,} keys, median of {args.rounds}:"
    )
    print(f"  {'rows stored':>12} {'version 2':>10} {'current':>10}")
    for size, before, after in zip(args.stored, old, new, strict=True):
        print(f"  {size:>12,} {before:>10.1f} {after:>10.1f}")


if __name__ == "__main__":
    main()

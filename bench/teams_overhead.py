"""CPU the teams hook adds to a request, in-process, with 10,000 keys in the database.

The same keys as the HTTP benchmark's `--teams` variants (`bench/teams_keys.py`: each key with an rpm
limit and a budget, in teams with budgets), and requests rotating through all of them. Each round runs
`--batch` requests through the hook's three stages (authenticate, admit, completed), then the ledger's
batched spend write of those requests and a cache sync, as the background tasks would after a second
at that rate. Prints CPU microseconds per request of each part (process CPU: the SQLite thread counts).

What this leaves out, and the HTTP benchmark includes: the collector's work on the buffered rows, and
the background work running beside a busy event loop instead of after it. With Redis the requests here
are admitted one after the other (a script call each); under concurrent load they share calls.

    .venv/bin/python -m bench.teams_overhead                       # SQLite
    .venv/bin/python -m bench.teams_overhead --backend postgres-redis
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

from anygate.config import parse_config
from anygate.hooks import RequestRecord, Usage
from anygate.teams.hook import TeamsHook
from bench import teams_keys

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"


async def measure(backend: str, batch: int, rounds: int) -> dict[str, list[float]]:
    run = uuid.uuid4().hex[:10]
    redis = ""
    if backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/anygate.db"
    else:
        url = f"{POSTGRES}/anygate_bench_{run}"
        redis = f", redis_url: '{REDIS}', redis_key_prefix: 'anygate-bench:{run}:'"
    await teams_keys.seed(url)
    config = parse_config(
        f"""
model_list:
  - model_name: bench-openai
    litellm_params: {{model: openai/gpt-4o-mini, api_key: sk-unused}}
general_settings: {{master_key: sk-bench-master, database_url: '{url}'{redis},
                   proxy_batch_write_at: 3600, key_sync_interval: 3600}}
"""
    )
    hook = TeamsHook(config, url)
    await hook.start()
    keys = [teams_keys.bench_key(i) for i in range(teams_keys.KEYS)]
    parts: dict[str, list[float]] = {"hook stages": [], "spend write": [], "cache sync": []}
    sent = 0
    try:
        for index in range(rounds + 1):  # the first round warms up
            started = time.process_time()
            for _ in range(batch):
                headers = {"x-api-key": keys[sent % len(keys)], "anthropic-version": "2023-06-01"}
                sent += 1
                principal = await hook.authenticate(headers)
                assert principal is not None
                record = RequestRecord(
                    f"req_{run}_{sent}", "messages", principal, headers, model="bench-openai"
                )
                await hook.admit(record)
                record.deployment_id, record.provider, record.usage = (
                    "bench-openai#0",
                    "openai",
                    Usage(15, 15),
                )
                record.ended, record.outcome, record.status = record.started + 0.01, "ok", 200
                hook.completed(record)
            stages = time.process_time()
            assert await hook.ledger.flush()
            written = time.process_time()
            await hook.sync()
            synced = time.process_time()
            if index:
                for name, seconds in zip(
                    parts, (stages - started, written - stages, synced - written), strict=True
                ):
                    parts[name].append(seconds / batch * 1e6)
    finally:
        await hook.aclose()
        if backend != "sqlite":
            await teams_keys.drop(url)
            await teams_keys.clear_redis(REDIS, f"anygate-bench:{run}:")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.teams_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres-redis"), default="sqlite")
    parser.add_argument("--batch", type=int, default=3000, help="requests per spend write (default 3000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    parts = asyncio.run(measure(args.backend, args.batch, args.rounds))
    medians = {name: statistics.median(values) for name, values in parts.items()}
    print(
        f"{args.backend}, {teams_keys.KEYS:,} keys, {args.batch} requests per spend write, "
        f"median of {args.rounds} rounds:"
    )
    for name, value in medians.items():
        print(f"  {name:12} {value:6.1f} us/request")
    print(f"  {'total':12} {sum(medians.values()):6.1f} us/request")


if __name__ == "__main__":
    main()

"""CPU the teams hook adds to a request, in-process, with 10,000 keys in the database.

The same keys as the HTTP benchmark's `--teams` variants (`bench/teams_keys.py`: each key with an rpm
limit and a budget, in teams with budgets), and requests rotating through all of them. Each round runs
`--batch` requests through the hook's three stages (authenticate, admit, completed), then the ledger's
batched spend write of those requests and a cache sync, as the background tasks would after a second
at that rate. Prints CPU microseconds per request of each part (process CPU: the SQLite thread counts).

`--concurrency N` (default 1) runs the requests as N tasks at once, each waiting `--upstream-ms`
between its admission and its end as if the upstream answered, as under load through HTTP. The same
driver also runs without the hook, and "hook stages" is the difference (the tasks and the waits cost
both runs the same). With Redis, "limits sent" is the script call that reports what the round left
queued (the calls the limiter made during the round are in "hook stages").

The garbage collector is tuned as the server tunes it (`anygate.server.app.tune_garbage_collector`).
What this leaves out, and the HTTP benchmark includes: the collector's work on the buffered rows, the
background work running beside a busy event loop instead of after it, and the request path's own work,
which makes everything here (a key's entity, its counters) colder in the caches: inside a loaded
gateway the same functions take about three times as long.

    .venv/bin/python -m bench.teams_overhead                       # SQLite
    .venv/bin/python -m bench.teams_overhead --backend postgres-redis --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
import uuid

from anygate.config import parse_config
from anygate.hooks import MASTER, RequestRecord, Usage
from anygate.server.app import tune_garbage_collector
from anygate.teams.hook import TeamsHook
from anygate.teams.limits import RedisLimiter
from bench import teams_keys

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"


async def measure(
    backend: str, batch: int, rounds: int, concurrency: int = 1, upstream_ms: float = 0.0
) -> dict[str, list[float]]:
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
    tune_garbage_collector()  # as the server does, before its first request loads the keys
    await hook.start()
    keys = [teams_keys.bench_key(i) for i in range(teams_keys.KEYS)]
    names = ("hook stages", "limits sent", "spend write", "cache sync")
    parts: dict[str, list[float]] = {name: [] for name in names}
    sent = 0
    upstream = upstream_ms / 1000

    async def requests(count: int, with_hook: bool) -> None:
        nonlocal sent
        remaining = count

        async def one_worker() -> None:
            nonlocal sent, remaining
            while remaining > 0:
                remaining -= 1
                headers = {"x-api-key": keys[sent % len(keys)], "anthropic-version": "2023-06-01"}
                sent += 1
                principal = await hook.authenticate(headers) if with_hook else MASTER
                assert principal is not None
                record = RequestRecord(
                    f"req_{run}_{sent}", "messages", principal, headers, model="bench-openai"
                )
                if with_hook:
                    await hook.admit(record)
                if upstream:
                    await asyncio.sleep(upstream)
                record.deployment_id, record.provider, record.usage = (
                    "bench-openai#0",
                    "openai",
                    Usage(15, 15),
                )
                record.ended, record.outcome, record.status = record.started + 0.01, "ok", 200
                if with_hook:
                    hook.completed(record)

        await asyncio.gather(*(one_worker() for _ in range(concurrency)))

    try:
        for index in range(rounds + 1):  # the first round warms up
            baseline = 0.0
            if concurrency > 1 or upstream:
                started = time.process_time()
                await requests(batch, with_hook=False)
                baseline = time.process_time() - started
            started = time.process_time()
            await requests(batch, with_hook=True)
            stages = time.process_time()
            if isinstance(hook.limiter, RedisLimiter):
                assert await hook.limiter.flush()
            sent_limits = time.process_time()
            assert await hook.ledger.flush()
            written = time.process_time()
            await hook.sync()
            synced = time.process_time()
            if index:
                ends = (stages, sent_limits, written, synced)
                spans = (stages - started - baseline, *(b - a for a, b in itertools.pairwise(ends)))
                for name, seconds in zip(parts, spans, strict=True):
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
    parser.add_argument("--concurrency", type=int, default=1, help="requests at once (default 1)")
    parser.add_argument(
        "--upstream-ms", type=float, default=None, help="each request's wait between admission and end "
        "(default 1 with --concurrency above 1, else 0)",
    )  # fmt: skip
    args = parser.parse_args()
    upstream_ms = args.upstream_ms if args.upstream_ms is not None else (1.0 if args.concurrency > 1 else 0.0)
    parts = asyncio.run(measure(args.backend, args.batch, args.rounds, max(1, args.concurrency), upstream_ms))
    medians = {name: statistics.median(values) for name, values in parts.items()}
    print(
        f"{args.backend}, {teams_keys.KEYS:,} keys, {args.batch} requests per spend write, "
        f"{args.concurrency} at once, {upstream_ms:g} ms upstream, median of {args.rounds} rounds:"
    )
    for name, value in medians.items():
        print(f"  {name:12} {value:6.1f} us/request")
    print(f"  {'total':12} {sum(medians.values()):6.1f} us/request")


if __name__ == "__main__":
    main()

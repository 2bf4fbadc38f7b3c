"""CPU the teams hook adds to a request, with 10,000 keys in the database (SQLite).

Runs the hook's three stages (authenticate, admit, completed) in-process for a virtual key with and
without limits, then the ledger's batched write of those requests, and prints CPU milliseconds per
request. The HTTP path is the same with or without teams, so this is the added cost; it does not replace
a wrk run of the small-request scenarios.

    .venv/bin/python -m bench.teams_overhead
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import sqlalchemy as sa

from anygate.config import parse_config
from anygate.hooks import RequestRecord, Usage
from anygate.teams import schema
from anygate.teams.hook import TeamsHook
from anygate.teams.records import hash_key

KEYS = 10_000
REQUESTS = 20_000


async def main() -> None:
    folder = tempfile.mkdtemp()
    config = parse_config(
        f"""
model_list:
  - model_name: m
    litellm_params: {{model: mock/claude}}
general_settings:
  master_key: sk-bench-master
  database_url: sqlite:///{folder}/anygate.db
"""
    )
    assert config.general.database_url is not None
    hook = TeamsHook(config, config.general.database_url)
    await hook.start()
    rows = [
        {"token": hash_key(f"sk-key-{i:06d}"), "key_name": "sk-...", "models": [], "metadata": {},
         "spend": 0.0,
         "blocked": False, "created_at": 1.0, "updated_at": 1.0, "revision": 1,
         "rpm_limit": 10**9 if i % 2 else None, "max_budget": 1e9 if i % 2 else None}
        for i in range(KEYS)
    ]  # fmt: skip
    async with hook.store.engine.begin() as conn:
        await conn.execute(sa.insert(schema.keys), rows)
        await conn.execute(sa.update(schema.meta).where(schema.meta.c.name == "revision").values(value=1))
    await hook.sync()
    print(f"{len(hook.directory.keys)} keys cached")
    for limited in (False, True):
        headers = {"x-api-key": f"sk-key-{1 if limited else 2:06d}"}
        started = time.process_time()
        for i in range(REQUESTS):
            principal = await hook.authenticate(headers)
            assert principal is not None
            record = RequestRecord(f"req_{limited}_{i}", "messages", principal, headers, model="m")
            await hook.admit(record)
            record.deployment_id, record.provider, record.usage = "m#0", "mock", Usage(10, 20)
            record.ended, record.outcome, record.status = record.started + 0.01, "ok", 200
            hook.completed(record)
        stages = (time.process_time() - started) / REQUESTS * 1000
        started = time.process_time()
        await hook.ledger.flush()
        write = (time.process_time() - started) / REQUESTS * 1000
        label = "key with rpm and budget" if limited else "key without limits"
        print(
            f"{label}: hook {stages:.4f} ms + batched write {write:.4f} ms"
            f" = {stages + write:.4f} ms CPU/request"
        )
    await hook.aclose()


if __name__ == "__main__":
    asyncio.run(main())

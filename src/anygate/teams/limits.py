"""Budgets, rpm / tpm and parallel-request limits of keys, teams and users; the tightest one refuses.

Two limiters with one interface: :class:`LocalLimiter` counts in this process (without Redis every
process has its own counters: N processes allow up to N times a rate limit, and budgets are shared
through the database only, with the lag of a spend write plus a sync); :class:`RedisLimiter` counts in
Redis for every instance, with one script call per request (all checks, then all increments,
atomically) and the completions of many requests sent together by a background task.

Rate windows are fixed minutes (LiteLLM's choice too); ``retry-after`` is the time to the next one.
``tpm`` counts input + output tokens of requests that ended; a request is refused once the minute's
tokens reached the limit, so the overshoot is at most the tokens of the requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from anygate.protocol.errors import GatewayError
from anygate.teams.records import Entity

log = logging.getLogger("anygate.teams")

WINDOW: Final = 60.0
PARALLEL_TTL: Final = 600
"""Seconds an idle Redis parallel-request counter lives: what a crashed instance's in-flight requests
keep holding at most."""


def budget_exceeded(entity: Entity, at: float) -> GatewayError:
    """402 ``billing_error`` with ``x-should-retry: false``: retrying cannot help before the reset, so
    clients (the Anthropic SDKs, Claude Code) stop instead of retrying."""
    reset = entity.next_reset(at)
    when = (
        f"; it resets at {datetime.fromtimestamp(reset, UTC).isoformat(timespec='seconds')}"
        f" (in {_human(reset - at)})"
        if reset is not None
        else "; it does not reset: ask an administrator to raise it"
    )
    return GatewayError(
        402,
        f"budget exceeded: {_name(entity)} has spent ${entity.window_spend(at):.4f} of its "
        f"max_budget ${entity.max_budget:g}{when}",
        error_type="billing_error",
        headers={"x-should-retry": "false"},
    )


def rate_limited(entity: Entity, what: str, limit: int, retry_after: float) -> GatewayError:
    seconds = max(1, math.ceil(retry_after))
    return GatewayError(
        429,
        f"rate limit reached: {_name(entity)} allows {limit} {what}; retry in {seconds}s",
        headers={"retry-after": str(seconds)},
    )


def _name(entity: Entity) -> str:
    label = (
        f" {entity.alias!r}"
        if entity.alias
        else f" {entity.id[:12]}"
        if entity.kind == "key"
        else f" {entity.id!r}"
    )
    return f"{entity.kind}{label}"


def _human(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m {seconds % 60}s"


@dataclass(slots=True)
class _Counter:
    window: float = 0.0
    requests: int = 0
    tokens: int = 0
    parallel: int = 0

    def roll(self, window: float) -> None:
        if window != self.window:
            self.window, self.requests, self.tokens = window, 0, 0


class LocalLimiter:
    """Counters in this process."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], _Counter] = {}

    async def admit(self, entities: Sequence[Entity], at: float) -> object:
        window = at - at % WINDOW
        counters = []
        for entity in entities:
            if entity.max_budget is not None and entity.window_spend(at) >= entity.max_budget:
                raise budget_exceeded(entity, at)
            counter = self._counters.get((entity.kind, entity.id))
            if counter is None:
                counter = self._counters[(entity.kind, entity.id)] = _Counter(window)
            counter.roll(window)
            if entity.rpm_limit is not None and counter.requests >= entity.rpm_limit:
                raise rate_limited(entity, "requests per minute", entity.rpm_limit, window + WINDOW - at)
            if entity.tpm_limit is not None and counter.tokens >= entity.tpm_limit:
                raise rate_limited(entity, "tokens per minute", entity.tpm_limit, window + WINDOW - at)
            if entity.max_parallel_requests is not None and counter.parallel >= entity.max_parallel_requests:
                raise rate_limited(entity, "parallel requests", entity.max_parallel_requests, 1)
            counters.append(counter)
        for counter in counters:
            counter.requests += 1
            counter.parallel += 1
        return counters

    def release(
        self, ticket: object, entities: Sequence[Entity], tokens: int, cost: float, at: float
    ) -> None:
        assert isinstance(ticket, list)
        window = at - at % WINDOW
        for counter in ticket:
            counter.parallel -= 1
            counter.roll(window)
            counter.tokens += tokens

    async def aclose(self) -> None:
        pass


# --- Redis -------------------------------------------------------------------------------------------

ADMIT_SCRIPT: Final = """
local now = tonumber(ARGV[1])
local minute = math.floor(now / 60)
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local b = 3 + i * 7
  local tag = ARGV[b]
  local budget = tonumber(ARGV[b + 1])
  if budget >= 0 then
    local key = tag .. ':spend:' .. ARGV[b + 3]
    local spent = redis.call('GET', key)
    if not spent then
      redis.call('SET', key, ARGV[b + 2], 'EX', 2 * 86400 + 3600)
      spent = ARGV[b + 2]
    end
    if tonumber(spent) >= budget then return {1, i, tostring(spent)} end
  end
  local rpm = tonumber(ARGV[b + 4])
  if rpm >= 0 and tonumber(redis.call('GET', tag .. ':rpm:' .. minute) or '0') >= rpm then
    return {2, i, tostring(60 - now % 60)}
  end
  local tpm = tonumber(ARGV[b + 5])
  if tpm >= 0 and tonumber(redis.call('GET', tag .. ':tpm:' .. minute) or '0') >= tpm then
    return {3, i, tostring(60 - now % 60)}
  end
  local par = tonumber(ARGV[b + 6])
  if par >= 0 and tonumber(redis.call('GET', tag .. ':par') or '0') >= par then
    return {4, i, '1'}
  end
end
for i = 0, n - 1 do
  local b = 3 + i * 7
  local tag = ARGV[b]
  if tonumber(ARGV[b + 4]) >= 0 then
    redis.call('INCR', tag .. ':rpm:' .. minute)
    redis.call('EXPIRE', tag .. ':rpm:' .. minute, 120)
  end
  if tonumber(ARGV[b + 6]) >= 0 then
    redis.call('INCR', tag .. ':par')
    redis.call('EXPIRE', tag .. ':par', PARALLEL_TTL)
  end
end
return {0}
""".replace("PARALLEL_TTL", str(PARALLEL_TTL))
"""All checks, then all increments: a refused request counts nowhere. Spend counters live per budget
window (the window's reset time is in the key) and start from the database's figure."""

RELEASE_SCRIPT: Final = """
local now = tonumber(ARGV[1])
local minute = math.floor(now / 60)
local i = 2
while i <= #ARGV do
  local tag, tokens, cost, window, par = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if tokens > 0 then
    redis.call('INCRBY', tag .. ':tpm:' .. minute, tokens)
    redis.call('EXPIRE', tag .. ':tpm:' .. minute, 120)
  end
  if window ~= '' and tonumber(cost) > 0 and redis.call('EXISTS', tag .. ':spend:' .. window) == 1 then
    redis.call('INCRBYFLOAT', tag .. ':spend:' .. window, cost)
  end
  if par == '1' and tonumber(redis.call('GET', tag .. ':par') or '0') > 0 then
    redis.call('DECR', tag .. ':par')
  end
  i = i + 5
end
return 0
"""
"""The ends of many requests at once: tokens to the minute's tpm, cost to the budget window, and the
parallel slot back."""

_REFUSALS: Final = {2: "requests per minute", 3: "tokens per minute", 4: "parallel requests"}


class RedisLimiter:
    """Counters in Redis, shared by every instance. Releases are queued and sent every
    ``flush_interval`` seconds (one round trip for all of them), so a request costs one round trip.
    A release that spends against a budget wakes the sender at once: while it waits, every instance
    would admit requests on a stale spend, so a budget's overshoot would grow with the request rate
    instead of staying at the cost of the requests in flight."""

    def __init__(self, client: Any, prefix: str, *, flush_interval: float = 0.05) -> None:
        self._client = client
        self._prefix = prefix
        self._admit = client.register_script(ADMIT_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._queue: list[str] = []
        self._flush_interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def tag(self, entity: Entity) -> str:
        return f"{self._prefix}{entity.kind}:{entity.id}"

    @staticmethod
    def window(entity: Entity, at: float) -> str:
        reset = entity.next_reset(at)
        return "" if entity.max_budget is None else ("never" if reset is None else f"{reset:.0f}")

    async def admit(self, entities: Sequence[Entity], at: float) -> object:
        args: list[Any] = [repr(at), len(entities)]
        for entity in entities:
            args += [
                self.tag(entity),
                -1 if entity.max_budget is None else entity.max_budget,
                repr(entity.window_spend(at)),
                self.window(entity, at),
                -1 if entity.rpm_limit is None else entity.rpm_limit,
                -1 if entity.tpm_limit is None else entity.tpm_limit,
                -1 if entity.max_parallel_requests is None else entity.max_parallel_requests,
            ]
        result = await self._admit(args=args)
        code = int(result[0])
        if code == 0:
            return True
        entity = entities[int(result[1])]
        value = float(result[2])
        if code == 1:
            entity.spend = max(entity.spend, value)  # Redis knows more than this process's cache
            raise budget_exceeded(entity, at)
        limit = {2: entity.rpm_limit, 3: entity.tpm_limit, 4: entity.max_parallel_requests}[code]
        raise rate_limited(entity, _REFUSALS[code], int(limit or 0), value)

    def release(
        self, ticket: object, entities: Sequence[Entity], tokens: int, cost: float, at: float
    ) -> None:
        budgeted = False
        for entity in entities:
            if entity.limited:
                budgeted = budgeted or (cost > 0 and entity.max_budget is not None)
                self._queue += [
                    self.tag(entity),
                    str(tokens if entity.tpm_limit is not None else 0),
                    repr(cost),
                    self.window(entity, at),
                    "1" if entity.max_parallel_requests is not None else "0",
                ]
        if budgeted:
            self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(self._flush_interval)  # Redis unreachable: no tight retry loop

    async def flush(self) -> bool:
        """Send the queued request ends; False (and all of them kept for the next try) on failure."""
        if not self._queue:
            return True
        batch, self._queue = self._queue, []
        try:
            await self._release(args=[repr(time.time()), *batch])
        except Exception as exc:
            log.warning("could not send %d request ends to Redis (%s); retrying", len(batch) // 5, exc)
            self._queue[:0] = batch
            return False
        return True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()
        await self._client.aclose()

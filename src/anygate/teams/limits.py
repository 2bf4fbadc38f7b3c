"""Budgets, rpm / tpm and parallel-request limits of keys, teams and users; the tightest one refuses.

Two limiters with one interface: :class:`LocalLimiter` counts in this process (without Redis every
process has its own counters: N processes allow up to N times a rate limit, and budgets are shared
through the database only, with the lag of a spend write plus a sync); :class:`RedisLimiter` counts in
Redis for every instance: one script call checks and counts every request waiting to be admitted
(each atomically: all its checks, then all its increments) and carries the ends of the requests that
finished since the last call, so a request costs at most one round trip, and under load many requests
share one.

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

import orjson

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

BATCH_SCRIPT: Final = """
local batch = cjson.decode(ARGV[1])
local minute = math.floor(batch[1] / 60)
for _, e in ipairs(batch[2]) do
  local tag, tokens, cost, window = e[1], e[2], e[3], e[4]
  if tokens > 0 then
    redis.call('INCRBY', tag .. ':tpm:' .. minute, tokens)
    redis.call('EXPIRE', tag .. ':tpm:' .. minute, 120)
  end
  if window ~= '' and tonumber(cost) > 0 and redis.call('EXISTS', tag .. ':spend:' .. window) == 1 then
    redis.call('INCRBYFLOAT', tag .. ':spend:' .. window, cost)
  end
  if e[5] == 1 and tonumber(redis.call('GET', tag .. ':par') or '0') > 0 then
    redis.call('DECR', tag .. ':par')
  end
end

local function admit(now, entities)
  local minute = math.floor(now / 60)
  for i, e in ipairs(entities) do
    local tag, budget, rpm, tpm, par = e[1], e[2], e[5], e[6], e[7]
    if budget >= 0 then
      local key = tag .. ':spend:' .. e[4]
      local spent = redis.call('GET', key)
      if not spent then
        redis.call('SET', key, e[3], 'EX', 2 * 86400 + 3600)
        spent = e[3]
      end
      if tonumber(spent) >= budget then return {1, i - 1, tostring(spent)} end
    end
    if rpm >= 0 and tonumber(redis.call('GET', tag .. ':rpm:' .. minute) or '0') >= rpm then
      return {2, i - 1, tostring(60 - now % 60)}
    end
    if tpm >= 0 and tonumber(redis.call('GET', tag .. ':tpm:' .. minute) or '0') >= tpm then
      return {3, i - 1, tostring(60 - now % 60)}
    end
    if par >= 0 and tonumber(redis.call('GET', tag .. ':par') or '0') >= par then
      return {4, i - 1, '1'}
    end
  end
  for _, e in ipairs(entities) do
    local tag = e[1]
    if e[5] >= 0 then
      redis.call('INCR', tag .. ':rpm:' .. minute)
      redis.call('EXPIRE', tag .. ':rpm:' .. minute, 120)
    end
    if e[7] >= 0 then
      redis.call('INCR', tag .. ':par')
      redis.call('EXPIRE', tag .. ':par', PARALLEL_TTL)
    end
  end
  return {0, 0, ''}
end

local out = {}
for _, request in ipairs(batch[3]) do
  out[#out + 1] = admit(request[1], request[2])
end
if #out == 0 then return '[]' end
return cjson.encode(out)
""".replace("PARALLEL_TTL", str(PARALLEL_TTL))
"""One argument, JSON: ``[time, ends, admissions]``. An end is ``[tag, tokens, cost, budget window,
1 if it held a parallel slot else 0]``; an admission is ``[time, entities]``, an entity ``[tag, max
budget, spend, budget window, rpm, tpm, parallel]`` (-1: no limit). The ends are counted first: tokens to
the minute's tpm, cost to the budget window, the parallel slot back. Then each request in turn gets all
its checks, then all its increments, so a refused request counts nowhere and the requests of one call
see each other's counts. Spend counters live per budget window (the window's reset time is in the key)
and start from the database's figure. Returns, as JSON, ``[code, entity index, value]`` per admission:
code 0 admitted, or the refusal (1 budget, 2 rpm, 3 tpm, 4 parallel) with the spend or the seconds to
wait. Why JSON: the client library's cost is per argument, and a batch of requests has hundreds."""

SPEND_DELAY: Final = 0.005
"""Seconds a request end that spends against a budget waits at most for an admission's call to carry it."""
_REFUSALS: Final = {2: "requests per minute", 3: "tokens per minute", 4: "parallel requests"}


@dataclass(slots=True)
class _Waiting:
    """A request waiting for its admission: the script's arguments for it, and where the answer goes."""

    args: list[Any]
    """``[time, entities]`` of :data:`BATCH_SCRIPT`."""
    entities: Sequence[Entity]
    at: float
    answer: asyncio.Future[tuple[int, int, str]]


class RedisLimiter:
    """Counters in Redis, shared by every instance.

    Admissions and request ends are queued and sent by one background task, one script call at a time:
    a call carries every admission queued meanwhile and every request end, so at low load each request
    has its own round trip, as fast as a direct call, and under load the requests that arrive during one
    round trip share the next (CPU per request falls as load rises instead of staying at a round trip
    each). Request ends ride along with the next admission. Without one, they go every
    ``flush_interval`` seconds, or within ``spend_delay`` when they spend against a budget: while they
    wait, every instance admits requests on a stale spend, so a budget's overshoot is the cost of the
    requests in flight plus at most ``spend_delay`` of spend. Under load an admission comes well within
    that delay: sending each such end at once made half of all script calls carry only ends.
    """

    def __init__(
        self, client: Any, prefix: str, *, flush_interval: float = 0.05, spend_delay: float = SPEND_DELAY
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(BATCH_SCRIPT)
        self._ends: list[list[Any]] = []
        self._waiting: list[_Waiting] = []
        self._flush_interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._urgent = False
        self._spend_delay = spend_delay
        self._spend_due = False
        """Ends that spend against a budget are queued, and a timer will send them if nothing else does."""
        self._lock = asyncio.Lock()

    def tag(self, entity: Entity) -> str:
        tag = entity.redis_tag
        if not tag:
            tag = entity.redis_tag = f"{self._prefix}{entity.kind}:{entity.id}"
        return tag

    @staticmethod
    def window(entity: Entity, at: float) -> str:
        """The budget window's name: when it resets (``never``; ``""`` without a budget). Every
        request of an entity names the same window until it resets, so the text is made once."""
        if entity.max_budget is None:
            return ""
        reset_at = entity.budget_reset_at
        if reset_at is not None and at < reset_at:
            made = entity.budget_window
            if made is None or made[0] != reset_at:
                made = entity.budget_window = (reset_at, f"{reset_at:.0f}")
            return made[1]
        reset = entity.next_reset(at)
        return "never" if reset is None else f"{reset:.0f}"

    async def admit(self, entities: Sequence[Entity], at: float) -> object:
        args: list[Any] = [
            at,
            [
                [
                    self.tag(entity),
                    -1 if entity.max_budget is None else entity.max_budget,
                    repr(entity.window_spend(at)),
                    self.window(entity, at),
                    -1 if entity.rpm_limit is None else entity.rpm_limit,
                    -1 if entity.tpm_limit is None else entity.tpm_limit,
                    -1 if entity.max_parallel_requests is None else entity.max_parallel_requests,
                ]
                for entity in entities
            ],
        ]
        answer: asyncio.Future[tuple[int, int, str]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(args, entities, at, answer))
        self._kick(urgent=True)
        code, index, value = await answer
        if code == 0:
            return True
        entity = entities[index]
        if code == 1:
            entity.spend = max(entity.spend, float(value))  # Redis knows more than this process's cache
            raise budget_exceeded(entity, at)
        limit = {2: entity.rpm_limit, 3: entity.tpm_limit, 4: entity.max_parallel_requests}[code]
        raise rate_limited(entity, _REFUSALS[code], int(limit or 0), float(value))

    def release(
        self, ticket: object, entities: Sequence[Entity], tokens: int, cost: float, at: float
    ) -> None:
        self._queue_ends(entities, tokens, cost, at)
        self._kick(urgent=False)
        if cost > 0 and not self._spend_due and any(e.max_budget is not None for e in entities):
            self._spend_due = True
            asyncio.get_running_loop().call_later(self._spend_delay, self._spend_timer)

    def _spend_timer(self) -> None:
        if self._spend_due:  # no call took the ends since
            self._kick(urgent=True)

    def _queue_ends(self, entities: Sequence[Entity], tokens: int, cost: float, at: float) -> None:
        for entity in entities:
            # An end counts tokens, spend and the parallel slot: an entity limited by rpm alone has
            # nothing to count.
            if (
                entity.tpm_limit is not None
                or entity.max_budget is not None
                or entity.max_parallel_requests is not None
            ):
                self._ends.append(
                    [
                        self.tag(entity),
                        tokens if entity.tpm_limit is not None else 0,
                        repr(cost),
                        self.window(entity, at),
                        1 if entity.max_parallel_requests is not None else 0,
                    ]
                )

    def _kick(self, *, urgent: bool) -> None:
        """Make sure the sender runs; ``urgent``: send now rather than at the next interval."""
        self._urgent = self._urgent or urgent
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="anygate-teams-redis")
        if urgent and self._wake is not None:
            _resolve(self._wake)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._urgent:
                self._wake = loop.create_future()
                timer = loop.call_later(self._flush_interval, _resolve, self._wake)
                try:
                    await self._wake
                finally:
                    timer.cancel()
            self._urgent = False
            try:
                sent = await self.flush()
            except Exception:  # never let the sender die: admissions would wait forever
                log.exception("the Redis limiter failed")
                sent = False
            if not sent:
                await asyncio.sleep(self._flush_interval)  # Redis unreachable: no tight retry loop

    async def flush(self) -> bool:
        """Send what is queued in one script call: False when Redis could not be reached (the request
        ends are kept for the next try; the waiting requests are refused with 529 ``overloaded_error``,
        which clients retry)."""
        async with self._lock:
            waiting = [w for w in self._waiting if not w.answer.done()]  # callers gone: not counted
            ends, self._ends, self._waiting = self._ends, [], []
            self._spend_due = False
            if not waiting and not ends:
                return True
            batch = orjson.dumps([time.time(), ends, [request.args for request in waiting]])
            try:
                result = orjson.loads(await self._script(args=[batch]))
                if len(result) != len(waiting):
                    raise ValueError(f"{len(result)} answers for {len(waiting)} admissions")
            except BaseException as exc:
                self._ends[:0] = ends
                self._urgent = self._urgent or bool(ends)  # sent again right after the back-off
                for request in waiting:
                    if not request.answer.done():
                        request.answer.set_exception(_unavailable(exc))
                if not isinstance(exc, Exception):
                    raise
                log.warning("could not reach Redis (%r); %d request ends kept", exc, len(ends))
                return False
            for request, (code, index, value) in zip(waiting, result, strict=False):
                if not request.answer.done():
                    request.answer.set_result((int(code), int(index), str(value)))
                elif int(code) == 0:
                    # The caller went away while its admission was on the wire: give back what it took.
                    self._queue_ends(request.entities, 0, 0.0, request.at)
            return True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
        await self._client.aclose()


def _unavailable(exc: BaseException) -> GatewayError:
    """What a request waiting for its admission gets when Redis cannot answer (the error's type only:
    its text may name the server)."""
    why = "the gateway is shutting down" if not isinstance(exc, Exception) else type(exc).__name__
    return GatewayError(
        529, f"rate limits and budgets cannot be checked right now ({why}); retry shortly",
        error_type="overloaded_error",
    )  # fmt: skip


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

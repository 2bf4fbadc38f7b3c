"""Budgets, rpm / tpm and parallel-request limits of keys, teams and users; the tightest one refuses.

Two limiters with one interface: :class:`LocalLimiter` counts in this process (without Redis every
process has its own counters: N processes allow up to N times a rate limit, and budgets are shared
through the database only, with the lag of a spend write plus a sync); :class:`RedisLimiter` counts in
Redis for every instance, admitting most requests on what Redis last said (rpm slots leased ahead,
spend and tokens at most 50 ms old) and reporting to it with one script call every 50 ms, so Redis
costs an instance a few calls a second however many requests it serves; near an rpm limit, and for
parallel-request limits, a request waits for its call (at most one round trip).

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
local function encode(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end

local function count_tokens(tag, minute, tokens)
  if tokens > 0 then
    redis.call('INCRBY', tag .. ':tpm:' .. minute, tokens)
    redis.call('EXPIRE', tag .. ':tpm:' .. minute, 120)
  end
end

for _, e in ipairs(batch[2]) do
  local tag, cost, window = e[1], e[3], e[4]
  count_tokens(tag, math.floor(e[6] / 60), e[2])
  if window ~= '' and cost > 0 and redis.call('EXISTS', tag .. ':spend:' .. window) == 1 then
    redis.call('INCRBYFLOAT', tag .. ':spend:' .. window, cost)
  end
  if e[5] == 1 and tonumber(redis.call('GET', tag .. ':par') or '0') > 0 then
    redis.call('DECR', tag .. ':par')
  end
end

local leased = {}
for _, a in ipairs(batch[3]) do
  local tag, minute, rpm, want, served = a[1], math.floor(a[2] / 60), a[3], a[4], a[5]
  local grant, left, tokens, spent = 0, -1, 0, '0'
  count_tokens(tag, minute, a[10])
  if a[7] >= 0 then
    local key = tag .. ':spend:' .. a[9]
    if redis.call('EXISTS', key) == 0 then
      redis.call('SET', key, a[8], 'EX', SPEND_TTL)  -- this instance's figure counts its ends
    elseif a[11] > 0 then
      redis.call('INCRBYFLOAT', key, a[11])
    end
    spent = redis.call('GET', key)
  end
  if rpm >= 0 then
    local key = tag .. ':rpm:' .. minute
    local count = tonumber(redis.call('GET', key) or '0')
    grant = math.max(math.min(want, rpm - count), 0)
    local counted = math.max(grant, served)
    if counted > 0 then
      redis.call('INCRBY', key, counted)
      redis.call('EXPIRE', key, 120)
    end
    left = math.max(rpm - count - counted, 0)
  end
  if a[6] >= 0 then tokens = tonumber(redis.call('GET', tag .. ':tpm:' .. minute) or '0') end
  leased[#leased + 1] = {grant, left, tokens, tostring(spent)}
end

local function admit(now, entities)
  local minute = math.floor(now / 60)
  for i, e in ipairs(entities) do
    local tag, budget, rpm, tpm, par = e[1], e[2], e[5], e[6], e[7]
    if budget >= 0 then
      local key = tag .. ':spend:' .. e[4]
      local spent = redis.call('GET', key)
      if not spent then
        redis.call('SET', key, e[3], 'EX', SPEND_TTL)
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

local admitted = {}
for _, request in ipairs(batch[4]) do
  admitted[#admitted + 1] = admit(request[1], request[2])
end
return {encode(leased), encode(admitted)}
""".replace("PARALLEL_TTL", str(PARALLEL_TTL)).replace("SPEND_TTL", str(2 * 86400 + 3600))
"""One argument, JSON: ``[time, ends, asks, admissions]``, answered with two JSON texts, one per ask
and one per admission.

- An end (of a request that held a parallel slot) is ``[tag, tokens, cost, budget window, 1, time]``:
  its tokens go to its minute's tpm, its cost to the budget window, the parallel slot back.
- An ask is ``[tag, time, rpm, wanted, served, tpm, max budget, spend, budget window, tokens, cost]``
  (-1: no limit), one per entity and call: the ``tokens`` and ``cost`` of its requests that ended
  since the last call go to the minute's tpm and the budget window (which starts from ``spend``, this
  instance's figure, costs included, when Redis has none yet); then it takes up to ``wanted`` rpm
  slots of the minute, ``served`` of them at least whatever the count (those requests were admitted
  already), and reads the minute's tpm tokens and the window's spend. Answer: ``[slots granted, rpm
  slots left, tokens, spend]``.
- An admission is ``[time, entities]``, an entity ``[tag, max budget, spend, budget window, rpm, tpm,
  parallel]``: all its checks, then all its increments, so a refused request counts nowhere. Answer:
  ``[code, entity index, value]``, code 0 admitted, or the refusal (1 budget, 2 rpm, 3 tpm, 4
  parallel) with the spend or the seconds to wait.

Spend counters live per budget window (the window's reset time is in the key) and start from the
database's figure. Why JSON: the client library's cost is per argument, and a batch has hundreds."""

LEASE_SHARE: Final = 50
"""An rpm lease is a fiftieth of the limit: about a second of traffic at the full rate, so an entity
busy on an instance asks Redis about once a second, and what an instance holds unused at a minute's
end (refused to the other instances meanwhile) is at most 2% of the limit."""
NEAR_SHARE: Final = 10
NEAR_MIN: Final = 2
"""Within ``max(NEAR_MIN, limit // NEAR_SHARE)`` requests of an rpm limit (by Redis's last answer) a
request without a leased slot waits for Redis."""
FRESH: Final = 0.05
"""Seconds what Redis said of an entity's spend and tokens is trusted before it is asked again (the
request that finds it older is admitted and the answer serves the next ones)."""
_REFUSALS: Final = {2: "requests per minute", 3: "tokens per minute", 4: "parallel requests"}


@dataclass(slots=True, eq=False)
class _Lease:
    """What this instance knows of an entity's counters in Redis, and the rpm slots it holds.

    ``left`` is how many rpm requests Redis had left at its last answer, less those this instance
    admitted on trust since (None: not asked this minute); ``full``: Redis said none is left;
    ``unconfirmed``: a request admitted on trust has not been counted by Redis yet (until it is, no
    other request of the entity is admitted on trust: at most one can be over the limit)."""

    entity: Entity
    minute: int
    slots: int = 0
    left: int | None = None
    full: bool = False
    unconfirmed: bool = False
    tokens: int = 0
    spend: float = 0.0
    window: str = ""
    heard: float = -math.inf
    ask: _Ask | None = None
    """The ask queued for the next call (None once it is sent)."""

    def roll(self, minute: int) -> None:
        """Start a new minute. Not the one before: a request that waited across a minute's end is
        counted in the new minute; but any earlier (the clock was set back)."""
        if minute > self.minute or minute < self.minute - 1:
            self.minute, self.slots, self.left, self.full, self.tokens = minute, 0, None, False, 0
            self.heard, self.ask, self.unconfirmed = -math.inf, None, False


@dataclass(slots=True, eq=False)
class _Ask:
    """One entity's question for the next script call: rpm slots ``wanted``, ``served`` of which went
    to requests already admitted on trust; ``answered`` is set for the requests that wait for it."""

    lease: _Lease
    minute: int
    at: float
    wanted: int = 0
    served: int = 0
    tokens: int = 0
    cost: float = 0.0
    """Of this entity's requests that ended since the last call."""
    answered: asyncio.Future[None] | None = None


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

    A request does not wait for Redis unless its entity is near a limit. rpm is leased: an instance
    takes slots of an entity's minute from Redis (a fiftieth of the limit at a time) and admits from
    them alone. Without a slot, a request is admitted on trust while Redis's last answer (or, not
    asked yet this minute, the limit itself) left more than a tenth of the limit (at least 2) and Redis
    has counted the entity's last request admitted so, and its ask, which counts it and takes the next
    lease, goes with the next call; otherwise it waits for a call, sent at once. So an rpm limit is
    exceeded by at most one request per instance a minute: the one admitted on trust when the other
    instances had just taken the rest. Limits under 50 a minute lease no slots: a request of such an
    entity waits for Redis while the previous one admitted on trust is not counted yet. Budgets and
    ``tpm`` are checked against what Redis said at most :data:`FRESH` seconds before (the request that
    finds it older asks again, without waiting), plus this instance's own ends since. A request of an
    entity with a parallel-request limit waits for Redis, which checks and counts all its limits at
    once (exact). Asks, request ends and those waiting admissions go in one script call, sent at once
    when a request waits and every ``flush_interval`` seconds otherwise, so under load an instance
    makes about 1 / ``flush_interval`` calls a second, whatever the request rate.
    """

    def __init__(self, client: Any, prefix: str, *, flush_interval: float = 0.05) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(BATCH_SCRIPT)
        self._ends: list[list[Any]] = []
        self._asks: list[_Ask] = []
        self._waiting: list[_Waiting] = []
        self._leases: dict[str, _Lease] = {}
        self._minute = 0
        self._trusted = False
        """The last call succeeded: requests may be admitted before Redis has seen them."""
        self._flush_interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._urgent = False
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

    # --- admission -----------------------------------------------------------------------------------

    async def admit(self, entities: Sequence[Entity], at: float) -> object:
        for entity in entities:
            if entity.max_parallel_requests is not None:
                return await self._admit_exactly(entities, at)
        minute = int(at // WINDOW)
        if minute > self._minute or minute < self._minute - 1:
            self._forget_idle(minute)
        while True:
            leases = [self._lease(entity, minute) for entity in entities]
            answered = self._settle(leases, at)
            if answered is None:
                return True
            self._kick(urgent=True)
            await asyncio.shield(answered)

    def _lease(self, entity: Entity, minute: int, *, admitting: bool = True) -> _Lease:
        tag = entity.redis_tag or self.tag(entity)
        lease = self._leases.get(tag)
        if lease is None:
            lease = self._leases[tag] = _Lease(entity, minute)
        else:
            if admitting:  # an admission sees the cache's newest copy (an end may hold an older one)
                lease.entity = entity
            lease.roll(minute)
        return lease

    def _settle(self, leases: list[_Lease], at: float) -> asyncio.Future[None] | None:
        """Admit a request on what this instance knows, or say which ask it must wait for (None:
        admitted). Refusals raise; nothing is taken unless the request is admitted."""
        on_trust = [False] * len(leases)
        for i, lease in enumerate(leases):
            entity = lease.entity
            self._check(entity, lease, at)
            rpm = entity.rpm_limit
            if rpm is None or lease.slots > 0:
                continue
            left = rpm if lease.left is None else lease.left
            if self._trusted and not lease.unconfirmed and left > max(NEAR_MIN, rpm // NEAR_SHARE):
                on_trust[i] = True
                continue
            ask = lease.ask
            if ask is None:
                ask = self._queue_ask(lease, at)
            ask.wanted += 1
            if ask.answered is None:
                ask.answered = asyncio.get_running_loop().create_future()
            return ask.answered
        clock = time.monotonic()
        for lease, trusted in zip(leases, on_trust, strict=True):
            entity = lease.entity
            if trusted:
                ask = lease.ask or self._queue_ask(lease, at)
                ask.wanted += 1 + (entity.rpm_limit or 0) // LEASE_SHARE
                ask.served += 1
                lease.unconfirmed = True
                if lease.left is not None:
                    lease.left -= 1
            else:
                if entity.rpm_limit is not None:
                    lease.slots -= 1
                if (
                    lease.ask is None
                    and clock - lease.heard > FRESH
                    and (entity.max_budget is not None or entity.tpm_limit is not None)
                ):
                    self._queue_ask(lease, at)
        if self._asks:
            self._kick(urgent=False)
        return None

    def _check(self, entity: Entity, lease: _Lease, at: float) -> None:
        if entity.max_budget is not None:
            spent = entity.window_spend(at)
            if lease.spend > spent and lease.window == self.window(entity, at):
                spent = lease.spend  # Redis knows more than this process's cache
            if spent >= entity.max_budget:
                entity.spend = max(entity.spend, spent)
                raise budget_exceeded(entity, at)
        if entity.tpm_limit is not None and lease.tokens >= entity.tpm_limit:
            raise rate_limited(entity, "tokens per minute", entity.tpm_limit, WINDOW - at % WINDOW)
        if entity.rpm_limit is not None and lease.full and lease.slots <= 0:
            raise rate_limited(entity, "requests per minute", entity.rpm_limit, WINDOW - at % WINDOW)

    def _queue_ask(self, lease: _Lease, at: float) -> _Ask:
        at = max(at, lease.minute * WINDOW)  # in the lease's minute
        ask = lease.ask = _Ask(lease, lease.minute, at)
        self._asks.append(ask)
        return ask

    def _forget_idle(self, minute: int) -> None:
        """Once a minute: drop what is known of entities idle for a minute (their leases have expired)."""
        self._minute = minute
        self._leases = {
            tag: lease
            for tag, lease in self._leases.items()
            if lease.minute >= minute - 1 or lease.ask is not None
        }

    async def _admit_exactly(self, entities: Sequence[Entity], at: float) -> object:
        """Wait for Redis to check and count every limit of the request at once."""
        args: list[Any] = [
            at,
            [
                [
                    self.tag(entity),
                    -1 if entity.max_budget is None else entity.max_budget,
                    entity.window_spend(at),
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

    # --- request ends ----------------------------------------------------------------------------------

    def release(
        self, ticket: object, entities: Sequence[Entity], tokens: int, cost: float, at: float
    ) -> None:
        """Count a request's end: its tokens and cost go with its entities' asks in the next call (one
        ask an entity however many of its requests ended), a parallel slot with an end of its own."""
        minute = int(at // WINDOW)
        for entity in entities:
            if entity.max_parallel_requests is not None:
                self._queue_ends((entity,), tokens, cost, at)
                continue
            counts_tokens = entity.tpm_limit is not None and tokens > 0
            if not counts_tokens and (entity.max_budget is None or not cost):
                continue  # an rpm limit counts requests as they are admitted
            lease = self._lease(entity, minute, admitting=False)
            ask = lease.ask or self._queue_ask(lease, at)
            if counts_tokens:
                ask.tokens += tokens
                lease.tokens += tokens
            if entity.max_budget is not None:
                ask.cost += cost
                lease.spend += cost
        if self._asks or self._ends:
            self._kick(urgent=False)

    def _queue_ends(self, entities: Sequence[Entity], tokens: int, cost: float, at: float) -> None:
        """Ends of requests admitted exactly (an entity with a parallel-request limit)."""
        for entity in entities:
            self._ends.append(
                [
                    self.tag(entity),
                    tokens if entity.tpm_limit is not None else 0,
                    cost if entity.max_budget is not None else 0.0,
                    self.window(entity, at),
                    1 if entity.max_parallel_requests is not None else 0,
                    at,
                ]
            )

    # --- the calls -------------------------------------------------------------------------------------

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
        ends, and the asks' counts of requests admitted on trust, are kept for the next try; the
        waiting requests are refused with 529 ``overloaded_error``, which clients retry)."""
        async with self._lock:
            waiting = [w for w in self._waiting if not w.answer.done()]  # callers gone: not counted
            ends, asks = self._ends, self._asks
            self._ends, self._asks, self._waiting = [], [], []
            for ask in asks:
                if ask.lease.ask is ask:
                    ask.lease.ask = None
            if not waiting and not ends and not asks:
                return True
            try:
                questions = [_ask_args(self.tag, ask) for ask in asks]
                batch = orjson.dumps([time.time(), ends, questions, [w.args for w in waiting]])
                leased_text, admitted_text = await self._script(args=[batch])
                leased, admitted = orjson.loads(leased_text), orjson.loads(admitted_text)
                if len(leased) != len(asks) or len(admitted) != len(waiting):
                    asked = len(asks) + len(waiting)
                    raise ValueError(f"{len(leased) + len(admitted)} answers for {asked} questions")
            except BaseException as exc:
                self._trusted = False
                self._ends[:0] = ends
                self._keep_asked(asks)
                self._urgent = self._urgent or bool(ends)  # sent again right after the back-off
                for ask in asks:
                    if ask.answered is not None and not ask.answered.done():
                        ask.answered.set_exception(_unavailable(exc))
                for request in waiting:
                    if not request.answer.done():
                        request.answer.set_exception(_unavailable(exc))
                if not isinstance(exc, Exception):
                    raise
                log.warning("could not reach Redis (%r); %d request ends kept", exc, len(ends))
                return False
            self._trusted = True
            clock = time.monotonic()
            for ask, answer in zip(asks, leased, strict=True):
                if ask.served and ask.lease.minute == ask.minute:
                    ask.lease.unconfirmed = False  # Redis counted the requests admitted on trust
                try:
                    _take_answer(ask, answer, clock)
                except Exception:  # a request waiting for this answer must not wait forever
                    log.exception("the Redis limiter could not read an answer: %r", answer)
                    if ask.answered is not None and not ask.answered.done():
                        ask.answered.set_result(None)
            for request, answer in zip(waiting, admitted, strict=True):
                try:
                    code, index, value = int(answer[0]), int(answer[1]), str(answer[2])
                except (TypeError, ValueError, IndexError) as exc:
                    log.error("the Redis limiter could not read an answer: %r", answer)
                    if not request.answer.done():
                        request.answer.set_exception(_unavailable(exc))
                    continue
                if not request.answer.done():
                    request.answer.set_result((code, index, value))
                elif code == 0:
                    # The caller went away while its admission was on the wire: give back what it took.
                    self._queue_ends(request.entities, 0, 0.0, request.at)
            return True

    def _keep_asked(self, asks: list[_Ask]) -> None:
        """After a failed call: what the asks counted (requests admitted on trust, and the tokens and
        costs of requests that ended) still has to reach Redis. The asks of a minute that has passed
        give only their costs: its rate windows are over."""
        for ask in asks:
            if not (ask.served or ask.tokens or ask.cost):
                continue
            lease = ask.lease
            if lease.minute == ask.minute:
                kept = lease.ask or self._queue_ask(lease, ask.at)
                kept.wanted += ask.served
                kept.served += ask.served
                kept.tokens += ask.tokens
                kept.cost += ask.cost
            elif ask.cost:  # that minute's rate windows are over: its cost, in its budget window
                self._asks.append(_Ask(lease, ask.minute, ask.at, cost=ask.cost))

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


def _ask_args(tag: Any, ask: _Ask) -> list[Any]:
    entity = ask.lease.entity
    return [
        tag(entity),
        ask.at,
        -1 if entity.rpm_limit is None else entity.rpm_limit,
        ask.wanted,
        ask.served,
        -1 if entity.tpm_limit is None else entity.tpm_limit,
        -1 if entity.max_budget is None else entity.max_budget,
        max(entity.window_spend(ask.at), ask.cost),
        RedisLimiter.window(entity, ask.at),
        ask.tokens,
        ask.cost,
    ]


def _take_answer(ask: _Ask, answer: list[Any], clock: float) -> None:
    """What Redis answered an ask: the slots it granted, what is left, the tokens and the spend."""
    granted, left, tokens, spend = answer
    lease = ask.lease
    if lease.minute == ask.minute:
        lease.slots += max(int(granted) - ask.served, 0)
        if lease.entity.rpm_limit is not None:
            left = int(left)
            lease.full = left <= 0
            lease.left = left - (lease.ask.served if lease.ask is not None else 0)
        lease.tokens = max(lease.tokens, int(tokens))
        lease.heard = clock
    if lease.entity.max_budget is not None:
        lease.spend, lease.window = float(spend), RedisLimiter.window(lease.entity, ask.at)
    if ask.answered is not None and not ask.answered.done():
        ask.answered.set_result(None)


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

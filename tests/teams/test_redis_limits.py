"""Limits shared through Redis: two gateways on one Postgres and one Redis count together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import anthropic
import pytest

from anygate.protocol.errors import GatewayError
from anygate.teams.limits import FRESH, RedisLimiter
from anygate.teams.records import Entity, ModelRule
from tests.fakes.gateway_server import GatewayServer
from tests.teams.support import Admin, ask, teams_config, wait_for


@pytest.fixture
def pair(
    fresh_postgres_url: str, redis_server: str, redis_prefix: str
) -> Iterator[tuple[GatewayServer, ...]]:
    config = teams_config(fresh_postgres_url, redis_url=redis_server, redis_prefix=redis_prefix)
    one = GatewayServer(config).start()
    two = GatewayServer(config).start()
    yield one, two
    one.stop()
    two.stop()


def _outcomes(servers: tuple[GatewayServer, ...], key: str, count: int) -> list[str]:
    results = []
    for i in range(count):
        try:
            ask(servers[i % 2], key)
            results.append("ok")
        except anthropic.RateLimitError:
            results.append("429")
        except anthropic.APIStatusError as exc:
            results.append(str(exc.status_code))
    return results


def test_an_rpm_limit_holds_across_two_gateways(pair: tuple[GatewayServer, ...]) -> None:
    key = Admin(pair[0]).post("/key/generate", {"rpm_limit": 4, "models": ["claude-test"]})["key"]
    wait_for(lambda: _known(pair[1], key))
    _clear_of_minute_boundary()
    assert _outcomes(pair, key, 8).count("ok") == 4


def test_a_budget_spent_on_one_gateway_stops_the_other(pair: tuple[GatewayServer, ...]) -> None:
    key = Admin(pair[0]).post("/key/generate", {"max_budget": 0.000001, "models": ["claude-test"]})["key"]
    wait_for(lambda: _known(pair[1], key))
    ask(pair[0], key)
    assert wait_for(lambda: _outcomes(pair[1:], key, 1) == ["402"], timeout=3)


def test_key_changes_reach_the_other_gateway_within_a_second(pair: tuple[GatewayServer, ...]) -> None:
    admin = Admin(pair[0])
    key = admin.post("/key/generate", {"models": ["claude-test"]})["key"]
    wait_for(lambda: _known(pair[1], key), timeout=1)
    admin.post("/key/block", {"key": key})
    wait_for(lambda: _outcomes(pair[1:], key, 1) == ["401"], timeout=1)


def _known(server: GatewayServer, key: str) -> bool:
    """Whether the gateway knows the key, asked without spending anything: the probe names a model the
    key may not use, which is refused (403) before limits are counted, or 401 while the key is unknown."""
    try:
        ask(server, key, "other-model")
    except anthropic.PermissionDeniedError:
        return True
    except anthropic.AuthenticationError:
        return False
    raise AssertionError("the probe model must not be allowed")


def _clear_of_minute_boundary() -> None:
    """Rate windows are fixed minutes: start a counting test with the window far from its end."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


async def test_parallel_requests_are_counted_in_redis(redis_server: str, redis_prefix: str) -> None:
    from redis import asyncio as redis_asyncio

    limiters = [RedisLimiter(redis_asyncio.from_url(redis_server), redis_prefix) for _ in range(2)]
    entity = Entity("key", "k", ModelRule([]), max_parallel_requests=2)
    first = await limiters[0].admit([entity], 1000.0)
    await limiters[1].admit([entity], 1000.0)
    with pytest.raises(GatewayError) as refused:
        await limiters[0].admit([entity], 1000.0)
    assert refused.value.status == 429 and refused.value.headers["retry-after"] == "1"
    limiters[0].release(first, [entity], 10, 0.0, 1000.0)
    await limiters[0].flush()
    await limiters[1].admit([entity], 1000.0)
    await asyncio.gather(*(limiter.aclose() for limiter in limiters))


class _CountedScript:
    """The limiter's script, counted, held back until ``go`` is set, failing while ``fail`` is."""

    def __init__(self, script: object) -> None:
        self.script = script
        self.calls = 0
        self.fail = False
        self.go = asyncio.Event()
        self.go.set()

    async def __call__(self, **kwargs: object) -> object:
        self.calls += 1
        await self.go.wait()
        if self.fail:
            raise ConnectionError("Redis is gone")
        return await self.script(**kwargs)  # type: ignore[operator]


def _counted(limiter: RedisLimiter) -> _CountedScript:
    counted = _CountedScript(limiter._script)
    limiter._script = counted  # type: ignore[assignment]
    return counted


async def test_concurrent_admissions_share_a_script_call_and_count_in_order(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = RedisLimiter(redis_asyncio.from_url(redis_server), redis_prefix)
    counted = _counted(limiter)
    entity = Entity("key", "k", ModelRule([]), rpm_limit=10)
    at = 60_000.0  # a fixed minute
    outcomes = await asyncio.gather(*(limiter.admit([entity], at) for _ in range(25)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, GatewayError)]
    assert len(outcomes) - len(refused) == 10 and {e.status for e in refused} == {429}
    assert counted.calls <= 2  # one call for all of them (two if the first went out alone)
    await limiter.aclose()


def _limiter(redis_server: str, prefix: str, **options: float) -> RedisLimiter:
    from redis import asyncio as redis_asyncio

    return RedisLimiter(redis_asyncio.from_url(redis_server), prefix, **options)


async def _trusting(limiter: RedisLimiter) -> RedisLimiter:
    """A limiter that has heard from Redis (as a gateway's has after its first call)."""
    await limiter.admit([Entity("key", "warm-up", ModelRule([]), rpm_limit=1_000)], 0.0)
    return limiter


async def test_a_lease_admits_without_waiting_and_its_slots_without_asking(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    counted = _counted(limiter)
    entity = Entity("key", "k", ModelRule([]), rpm_limit=500)
    at = 60_000.0
    calls = counted.calls
    assert await limiter.admit([entity], at) is True  # admitted on trust: nothing sent yet
    assert counted.calls == calls
    assert await limiter.flush() and counted.calls == calls + 1
    rpm = f"{redis_prefix}key:k:rpm:1000"
    client = redis_asyncio.from_url(redis_server)
    assert int(await client.get(rpm)) == 1 + 500 // 50  # the request and the lease of 10 slots
    for _ in range(10):  # the slots: no call
        await limiter.admit([entity], at + 1)
    assert not limiter._asks and counted.calls == calls + 1
    await limiter.admit([entity], at + 2)  # slots used up: on trust again, with the next lease
    await limiter.flush()
    assert int(await client.get(rpm)) == 2 + 2 * 10
    await limiter.aclose()
    await client.aclose()


async def test_an_rpm_limit_is_exceeded_by_at_most_one_request_per_instance(
    redis_server: str, redis_prefix: str
) -> None:
    """Three instances admit bursts of one entity on trust, each reporting only every call: together
    they admit the limit and at most one request more per instance, and all refuse the rest of the
    minute."""
    limiters = [await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60)) for _ in range(3)]
    entity = Entity("key", "k", ModelRule([]), rpm_limit=30)
    at = 60_000.0
    admitted = 0
    for round_ in range(12):
        bursts = [
            asyncio.gather(*(limiter.admit([entity], at + round_) for _ in range(4)), return_exceptions=True)
            for limiter in limiters
        ]
        flushes = [asyncio.create_task(limiter.flush()) for limiter in limiters]
        outcomes = [o for burst in await asyncio.gather(*bursts) for o in burst]
        await asyncio.gather(*flushes)
        admitted += sum(o is True for o in outcomes)
        assert all(o is True or (isinstance(o, GatewayError) and o.status == 429) for o in outcomes)
    assert 30 <= admitted <= 30 + len(limiters)
    for limiter in limiters:
        with pytest.raises(GatewayError) as refused:
            await limiter.admit([entity], at + 30)
        assert refused.value.status == 429 and refused.value.headers["retry-after"] == "30"
    await asyncio.gather(*(limiter.aclose() for limiter in limiters))


async def test_near_the_limit_requests_wait_for_redis(redis_server: str, redis_prefix: str) -> None:
    limiters = [await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60)) for _ in range(2)]
    counters = [_counted(limiter) for limiter in limiters]
    entity = Entity("key", "k", ModelRule([]), rpm_limit=3)
    at = 60_000.0
    assert await limiters[0].admit([entity], at) is True  # on trust: Redis had not been asked
    await limiters[0].flush()
    calls = counters[1].calls
    await limiters[1].admit([entity], at)  # nothing known: on trust
    await limiters[1].flush()
    await limiters[1].admit([entity], at)  # 1 left of 3: waits for its own call
    assert counters[1].calls == calls + 2
    with pytest.raises(GatewayError):  # the other instance last heard 2 left: it asks, and is refused
        await limiters[0].admit([entity], at)
    await asyncio.gather(*(limiter.aclose() for limiter in limiters))


async def test_budget_spend_reaches_other_instances_within_a_call_and_a_refresh(
    redis_server: str, redis_prefix: str
) -> None:
    interval = 0.02
    limiters = [
        await _trusting(_limiter(redis_server, redis_prefix, flush_interval=interval)) for _ in range(2)
    ]
    # one key as each instance's cache holds it
    copies = [
        Entity("key", "k", ModelRule([]), max_budget=1.0, budget_reset_at=90_000.0, budget_duration="1d")
        for _ in limiters
    ]
    at = 60_000.0
    ticket = await limiters[0].admit([copies[0]], at)
    await limiters[1].admit([copies[1]], at)
    copies[0].spend += 1.5  # over budget: as the hook adds a request's cost to its owners
    limiters[0].release(ticket, [copies[0]], 10, 1.5, at)
    started = time.monotonic()
    while True:  # the other one learns it from Redis, at most an interval plus FRESH later
        try:
            await limiters[1].admit([copies[1]], at)
        except GatewayError as exc:
            assert exc.status == 402 and "$1.5000" in exc.message
            break
        assert time.monotonic() - started < 1
        await asyncio.sleep(0.005)
    assert time.monotonic() - started < interval * 2 + FRESH + 0.1
    await asyncio.gather(*(limiter.aclose() for limiter in limiters))


async def test_a_request_that_waited_across_a_minutes_end_counts_in_the_new_minute(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    entity = Entity("key", "k", ModelRule([]), rpm_limit=500)
    await limiter.admit([entity], 60_061.0)  # minute 1001 began: on trust
    await limiter.admit([entity], 60_059.0)  # admitted at minute 1000's end, after waiting
    assert await limiter.flush()
    client = redis_asyncio.from_url(redis_server)
    assert int(await client.get(f"{redis_prefix}key:k:rpm:1001")) == 2 + 500 // 50
    assert await client.get(f"{redis_prefix}key:k:rpm:1000") is None
    await client.aclose()
    await limiter.aclose()


async def test_a_clock_set_back_starts_the_earlier_minute_afresh(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    entity = Entity("key", "k", ModelRule([]), rpm_limit=5)
    client = redis_asyncio.from_url(redis_server)
    await client.set(f"{redis_prefix}key:k:rpm:1001", 5)  # minute 1001 is used up
    await limiter.admit([entity], 60_070.0)  # on trust, the one over the limit
    await limiter.flush()
    with pytest.raises(GatewayError):
        await limiter.admit([entity], 60_071.0)
    assert await limiter.admit([entity], 54_000.0) is True  # an hour earlier: counted there
    await limiter.flush()
    assert int(await client.get(f"{redis_prefix}key:k:rpm:900")) == 1
    await client.aclose()
    await limiter.aclose()


async def test_no_request_is_admitted_on_trust_until_redis_counted_the_last_one(
    redis_server: str, redis_prefix: str
) -> None:
    """The other instances take the rest of the minute while this one's call is on the wire: the
    request admitted on trust is the only one over the limit."""
    from redis import asyncio as redis_asyncio

    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    counted = _counted(limiter)
    entity = Entity("key", "k", ModelRule([]), rpm_limit=100)
    at = 60_000.0
    await limiter.admit([entity], at)  # on trust, with a lease of 2 slots
    await limiter.flush()  # Redis left 97
    for _ in range(3):  # the 2 slots, then on trust again
        assert await limiter.admit([entity], at) is True
    client = redis_asyncio.from_url(redis_server)
    rpm = f"{redis_prefix}key:k:rpm:1000"
    await client.set(rpm, 100)  # the other instances used the minute up
    counted.go.clear()
    sending = asyncio.create_task(limiter.flush())
    while counted.calls == 0:
        await asyncio.sleep(0.001)
    second = asyncio.create_task(limiter.admit([entity], at))
    await asyncio.sleep(0.05)
    assert not second.done()  # waits for Redis to count the first
    counted.go.set()
    assert await sending
    with pytest.raises(GatewayError) as refused:
        await second
    assert refused.value.status == 429
    assert int(await client.get(rpm)) == 101
    await client.aclose()
    await limiter.aclose()


async def test_an_rpm_limit_of_zero_admits_nothing(redis_server: str, redis_prefix: str) -> None:
    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    with pytest.raises(GatewayError) as refused:
        await limiter.admit([Entity("key", "k", ModelRule([]), rpm_limit=0)], 60_000.0)
    assert refused.value.status == 429
    await limiter.aclose()


async def test_an_end_does_not_bring_back_an_older_copy_of_its_entity(
    redis_server: str, redis_prefix: str
) -> None:
    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    older = Entity("team", "t", ModelRule([]), rpm_limit=10, max_budget=5.0)
    newer = Entity("team", "t", ModelRule([]), rpm_limit=20, max_budget=50.0)  # an admin raised them
    at = 60_000.0
    ticket = await limiter.admit([older], at)
    await limiter.admit([newer], at)
    limiter.release(ticket, [older], 10, 1.0, at)  # a request admitted under the older copy ends
    assert limiter._leases[limiter.tag(newer)].entity is newer
    await limiter.aclose()


async def test_a_tpm_limit_counts_this_instances_ends_at_once(redis_server: str, redis_prefix: str) -> None:
    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    entity = Entity("key", "k", ModelRule([]), tpm_limit=100)
    at = 60_000.0
    ticket = await limiter.admit([entity], at)
    await limiter.flush()  # the lease is known
    limiter.release(ticket, [entity], 150, 0.0, at)
    with pytest.raises(GatewayError) as refused:
        await limiter.admit([entity], at + 1)
    assert refused.value.status == 429 and "tokens per minute" in refused.value.message
    await limiter.aclose()


async def test_calls_per_second_do_not_grow_with_requests(redis_server: str, redis_prefix: str) -> None:
    """Requests far from their limits, each with its own key and a shared team budget: one call per
    interval carries all their asks and ends, and none of them waits for it."""
    interval = 0.05
    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=interval))
    counted = _counted(limiter)
    team = Entity("team", "t", ModelRule([]), max_budget=1_000.0)
    keys = [Entity("key", f"k{i}", ModelRule([]), rpm_limit=1_000, max_budget=10.0) for i in range(300)]
    started = time.monotonic()
    for key in keys:
        entities = (key, team)
        ticket = await limiter.admit(entities, time.time())
        limiter.release(ticket, entities, 10, 0.001, time.time())
        await asyncio.sleep(0.0005)
    elapsed = time.monotonic() - started
    await limiter.flush()
    assert counted.calls <= elapsed / interval + 2
    assert not limiter._waiting
    await limiter.aclose()


async def test_while_redis_is_down_slots_still_admit_and_a_request_needing_redis_gets_529(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = await _trusting(_limiter(redis_server, redis_prefix, flush_interval=60))
    leased = Entity("key", "leased", ModelRule([]), rpm_limit=1_000)
    at = 60_000.0
    await limiter.admit([leased], at)
    await limiter.flush()  # 20 slots held
    counted = _counted(limiter)
    counted.fail = True
    trusted = Entity("key", "trusted", ModelRule([]), rpm_limit=1_000)
    assert await limiter.admit([trusted], at) is True  # on trust: the call that would count it fails
    assert not await limiter.flush()  # the limiter no longer admits on trust
    await limiter.admit([leased], at)  # a slot: no need of Redis
    with pytest.raises(GatewayError) as refused:
        await limiter.admit([Entity("key", "new", ModelRule([]), rpm_limit=1_000)], at)
    assert refused.value.status == 529
    counted.fail = False
    assert await limiter.flush()  # the request admitted on trust is counted once Redis is back
    client = redis_asyncio.from_url(redis_server)
    assert int(await client.get(f"{redis_prefix}key:trusted:rpm:1000")) == 1
    assert await client.get(f"{redis_prefix}key:new:rpm:1000") is None
    await client.aclose()
    await limiter.aclose()


async def test_an_admission_whose_caller_left_gives_its_parallel_slot_back(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = RedisLimiter(redis_asyncio.from_url(redis_server), redis_prefix, flush_interval=0.01)
    counted = _counted(limiter)
    entity = Entity("key", "k", ModelRule([]), max_parallel_requests=1)
    counted.go.clear()
    leaving = asyncio.create_task(limiter.admit([entity], 1000.0))
    while counted.calls == 0:  # the admission is on its way to Redis
        await asyncio.sleep(0.001)
    leaving.cancel()
    counted.go.set()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    # Redis counted the slot; the limiter gives it back with its next call
    assert await asyncio.wait_for(limiter.admit([entity], 1000.0), 2) is True
    await limiter.aclose()


async def test_requests_are_refused_with_529_while_redis_is_unreachable() -> None:
    from redis import asyncio as redis_asyncio

    from tests.teams.services import free_port

    client = redis_asyncio.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    limiter = RedisLimiter(client, "anygate-test:down:")
    entity = Entity("key", "k", ModelRule([]), rpm_limit=5)
    with pytest.raises(GatewayError) as refused:
        await limiter.admit([entity], 1000.0)
    assert refused.value.status == 529 and refused.value.error_type == "overloaded_error"
    assert "127.0.0.1" not in refused.value.message
    await limiter.aclose()


async def test_budget_windows_follow_resets_and_rpm_only_ends_send_nothing(
    redis_server: str, redis_prefix: str
) -> None:
    from redis import asyncio as redis_asyncio

    limiter = RedisLimiter(redis_asyncio.from_url(redis_server), redis_prefix, flush_interval=60)
    counted = _counted(limiter)
    budget = Entity(
        "key", "b", ModelRule([]), max_budget=10.0, budget_duration="1d", budget_reset_at=86_400.0
    )
    assert limiter.window(budget, 1000.0) == "86400"
    budget.budget_reset_at = 172_800.0  # a reset the database made reached the cache
    assert limiter.window(budget, 1000.0) == "172800"
    assert limiter.window(budget, 200_000.0) == "259200"  # past the reset, before the database caught up
    assert limiter.window(Entity("key", "n", ModelRule([]), max_budget=1.0), 1000.0) == "never"
    assert limiter.window(Entity("key", "u", ModelRule([]), rpm_limit=1), 1000.0) == ""
    rpm_only = Entity("key", "r", ModelRule([]), rpm_limit=5)
    ticket = await limiter.admit([rpm_only], 1000.0)
    limiter.release(ticket, [rpm_only], 10, 0.5, 1000.0)
    assert await limiter.flush() and counted.calls == 1  # the end had nothing to count: no call
    await limiter.aclose()

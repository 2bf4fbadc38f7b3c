"""Limits shared through Redis: two gateways on one Postgres and one Redis count together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import anthropic
import pytest

from anygate.protocol.errors import GatewayError
from anygate.teams.limits import RedisLimiter
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
    """The limiter's script, counted, and held back until ``go`` is set."""

    def __init__(self, script: object) -> None:
        self.script = script
        self.calls = 0
        self.go = asyncio.Event()
        self.go.set()

    async def __call__(self, **kwargs: object) -> object:
        self.calls += 1
        await self.go.wait()
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


async def test_a_spending_end_rides_with_the_next_admission_or_goes_within_the_delay(
    redis_server: str, redis_prefix: str
) -> None:
    """One request at a time with a budget: one script call per request (its end goes with the next
    request's admission), and a last end reaches Redis within the spend delay on its own."""
    from redis import asyncio as redis_asyncio

    client = redis_asyncio.from_url(redis_server)
    limiter = RedisLimiter(client, redis_prefix, flush_interval=60, spend_delay=0.2)
    counted = _counted(limiter)
    entity = Entity("key", "k", ModelRule([]), max_budget=10.0)
    window = limiter.window(entity, 1000.0)
    for _ in range(3):
        ticket = await limiter.admit([entity], 1000.0)
        limiter.release(ticket, [entity], 10, 0.5, 1000.0)
    assert counted.calls == 3  # the first two ends went with the second and third admissions
    spent = f"{redis_prefix}key:k:spend:{window}"
    assert float(await client.get(spent)) == 1.0
    started = time.monotonic()
    while float(await client.get(spent)) < 1.5:  # the last end, with no admission to carry it
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.01)
    assert counted.calls == 4 and time.monotonic() - started >= 0.1
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

    limiter = RedisLimiter(
        redis_asyncio.from_url(redis_server), redis_prefix, flush_interval=60, spend_delay=60
    )
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

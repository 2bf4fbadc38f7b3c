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

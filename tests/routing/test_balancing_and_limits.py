"""Routing strategies, rate limits, aliases, health reporting, and a concurrent run over faulty upstreams.

In-process over :class:`~anygate.testing.MockTransport` on virtual time; the router's shuffle is seeded
(see conftest), so every run picks the same deployments.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anthropic
import orjson
import pytest

import anygate
from anygate.config import load_config
from anygate.gateway import Gateway
from anygate.providers.base import UpstreamRequest
from anygate.testing import MockResponse
from tests.fakes.anthropic_answers import error, message
from tests.routing.conftest import (
    HELLO,
    AsgiClient,
    Stopwatch,
    Upstreams,
    answer,
    body,
    config,
    deployment,
    failure,
    health,
    mock_base,
    reply,
    served_by,
    text_of,
)

pytestmark = pytest.mark.usefixtures("virtual_time")

GatewayFor = Callable[[str], Gateway]


async def test_weights_shape_the_shuffle(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    heavy, light = mock_base("heavy"), mock_base("light")
    for base in (heavy, light):
        upstreams.script(base, reply(message("ok")))
    gateway = gateway_for(
        config(deployment("m", heavy, "heavy", weight=9), deployment("m", light, "light", weight=1))
    )
    counts = Counter([await served_by(gateway) for _ in range(200)])
    assert counts["heavy"] > 140 and counts["light"] > 5 and counts.total() == 200
    assert len(upstreams.requests_to(heavy)) == counts["heavy"]
    assert len(upstreams.requests_to(light)) == counts["light"]


async def test_least_busy_avoids_the_deployment_with_requests_in_flight(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    slow, fast = mock_base("slow"), mock_base("fast")
    upstreams.script(slow, reply(message("slow"), delay=1.0))
    upstreams.script(fast, reply(message("fast")))
    gateway = gateway_for(
        config(
            deployment("m", slow, "slow"),
            deployment("m", fast, "fast"),
            router="  routing_strategy: least-busy\n",
        )
    )
    clock = Stopwatch()
    # Occupy the slow deployment (least-busy picks the first of equals: "slow" is listed first).
    background = asyncio.create_task(served_by(gateway))
    while health(gateway, "slow")["in_flight"] == 0:
        await asyncio.sleep(0)
    assert [await served_by(gateway) for _ in range(5)] == ["fast"] * 5
    assert clock.elapsed == 0
    assert await background == "slow"
    assert clock.elapsed == 1.0
    assert len(upstreams.requests_to(slow)) == 1 and len(upstreams.requests_to(fast)) == 5


async def test_latency_based_routing_prefers_the_faster_deployment(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    slow, fast = mock_base("slow"), mock_base("fast")
    upstreams.script(slow, reply(message("slow"), delay=0.2))
    upstreams.script(fast, reply(message("fast"), delay=0.05))
    gateway = gateway_for(
        config(
            deployment("m", slow, "slow"),
            deployment("m", fast, "fast"),
            router="  routing_strategy: latency-based-routing\n",
        )
    )
    first_two = [await served_by(gateway), await served_by(gateway)]  # both unmeasured: each is tried
    assert sorted(first_two) == ["fast", "slow"]
    assert [await served_by(gateway) for _ in range(10)] == ["fast"] * 10
    assert health(gateway, "slow")["latency_ms"] == 200.0 and health(gateway, "fast")["latency_ms"] == 50.0
    assert len(upstreams.requests_to(slow)) == 1


async def test_rpm_limit_skips_a_full_deployment_then_refuses_with_retry_after(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    first, second = mock_base("first"), mock_base("second")
    for base in (first, second):
        upstreams.script(base, reply(message("ok")))
    gateway = gateway_for(config(deployment("m", first, "a", rpm=2), deployment("m", second, "b", rpm=1)))
    assert sorted([await served_by(gateway) for _ in range(3)]) == ["a", "a", "b"]
    refused = await failure(gateway)
    assert refused.status == 429 and refused.error_type == "rate_limit_error"
    assert refused.headers["retry-after"] == "60"  # the whole minute window is still ahead
    assert len(upstreams.transport.requests) == 3
    await asyncio.sleep(59.9)
    refused = await failure(gateway)
    assert refused.headers["retry-after"] == "1"  # never less than a second
    await asyncio.sleep(0.1)
    assert await served_by(gateway) in ("a", "b")  # a new window
    assert len(upstreams.transport.requests) == 4


async def test_aliases_and_patterns(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    base = mock_base("one")
    upstreams.script(base, reply(message("ok")))
    gateway = gateway_for(
        config(
            deployment("claude-*", base, "any-claude"),
            deployment("claude-*haiku*", base, "haiku"),
            deployment("claude-3-haiku-exact", base, "exact"),
            deployment("big", base, "big"),
            router="  model_group_alias: {sonnet: big}\n",
        )
    )
    assert await served_by(gateway, "claude-3-haiku-exact") == "exact"
    assert await served_by(gateway, "claude-haiku-4-5-20251001") == "haiku"
    assert await served_by(gateway, "claude-opus-5-5") == "any-claude"
    assert await served_by(gateway, "sonnet") == "big"
    assert len(upstreams.transport.requests) == 4
    assert {orjson.loads(r.body)["model"] for r in upstreams.transport.requests} == {"claude-upstream"}
    missing = await failure(gateway, body("gpt-4o"))
    assert missing.status == 404 and missing.error_type == "not_found_error"
    assert len(upstreams.transport.requests) == 4


async def test_health_endpoint_reports_each_deployment(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    dead, live = mock_base("dead"), mock_base("live")
    upstreams.script(dead, MockResponse(refuse=True))
    upstreams.script(live, reply(message("ok"), delay=0.05))
    gateway = gateway_for(
        config(deployment("m", dead, "dead", weight=1000000), deployment("m", live, "live"))
    )
    await asyncio.sleep(1)  # the health book takes a failure at clock 0.0 for "never failed"
    assert await served_by(gateway) == "live"
    client = AsgiClient(gateway)
    status, _, content = await client.request("GET", "/health/deployments", api_key="wrong")
    assert status == 401 and orjson.loads(content)["error"]["type"] == "authentication_error"
    await asyncio.sleep(1)
    status, _, content = await client.request("GET", "/health/deployments")
    assert status == 200
    by_id = {d["deployment_id"]: d for d in orjson.loads(content)["deployments"]}
    # Refused at once, then 0.05 s for the live answer and a 1 s wait: of the 5 s cooldown 3.95 s remain.
    assert by_id["dead"]["state"] == "cooling_down" and by_id["dead"]["cooldown_remaining_seconds"] == 3.95
    assert by_id["dead"]["seconds_since_last_failure"] == 1.05
    assert "cannot connect" in by_id["dead"]["last_error"]
    assert by_id["live"]["state"] == "healthy" and by_id["live"]["in_flight"] == 0
    assert by_id["live"]["latency_ms"] == 50.0 and by_id["live"]["successes"] == 1


def _echo(request: UpstreamRequest) -> MockResponse:
    prompt = orjson.loads(request.body)["messages"][0]["content"]
    return reply(message(f"echo {prompt}"), delay=0.01)


async def test_concurrent_requests_over_healthy_flaky_and_dead_deployments(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    """300 requests, 40 at a time, across a dead deployment, a flaky one (every third request fails) and a
    healthy one, with a fallback group: each request gets its own answer, exactly once."""
    dead, flaky, healthy, backup = (mock_base(n) for n in ("dead", "flaky", "healthy", "backup"))
    upstreams.script(dead, MockResponse(refuse=True))
    upstreams.handle(healthy, _echo)
    upstreams.handle(backup, _echo)
    calls = itertools.count()

    def flaky_answer(request: UpstreamRequest) -> MockResponse:
        if next(calls) % 3 == 0:
            return reply(error("overloaded_error", "flaky"), 529, delay=0.005)
        return _echo(request)

    upstreams.handle(flaky, flaky_answer)
    gateway = gateway_for(
        config(
            deployment("m", dead, "dead"),
            deployment("m", flaky, "flaky"),
            deployment("m", healthy, "healthy"),
            deployment("backup", backup, "backup"),
            router="  allowed_fails: 1000\n  num_retries: 3\n  fallbacks: [{m: [backup]}]\n",
        )
    )
    limit = asyncio.Semaphore(40)

    async def one(i: int) -> str:
        async with limit:
            request = body(messages=[{"role": "user", "content": f"request-{i}"}])
            return text_of(await answer(gateway, request))

    answers = await asyncio.gather(*(one(i) for i in range(300)))
    assert answers == [f"echo request-{i}" for i in range(300)]
    successes: Counter[str] = Counter()
    flaky_requests = upstreams.requests_to(flaky)
    for base in (healthy, flaky, backup):
        for request in upstreams.requests_to(base):
            successes[orjson.loads(request.body)["messages"][0]["content"]] += 1
    # Every prompt reached an upstream at least once; flaky failures explain any repeats.
    assert set(successes) == {f"request-{i}" for i in range(300)}
    assert sum(successes.values()) - 300 <= len(flaky_requests) // 3 + 1
    assert len(upstreams.requests_to(dead)) == 1  # refused once, then cooled down for the whole run
    assert all(h["in_flight"] == 0 for h in gateway.router.report(gateway.config.deployments))


async def test_the_sdk_surface_routes_and_falls_back_like_the_proxy(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    primary, backup = mock_base("primary"), mock_base("backup")
    upstreams.script(primary, reply(error("api_error", "down"), 503))
    upstreams.script(backup, reply(message("from backup")))
    path = tmp_path / "config.yaml"
    path.write_text(
        config(
            deployment("primary", primary, "p"),
            deployment("backup", backup, "b"),
            router="  num_retries: 0\n  fallbacks: [{primary: [backup]}]\n",
        )
    )
    gateway = anygate.Gateway(
        load_config(path), transport=upstreams.transport, clock=asyncio.get_running_loop().time
    )
    try:
        reply_ = await gateway.messages.acreate(model="primary", max_tokens=5, messages=HELLO)
        assert isinstance(reply_, anthropic.types.Message)
        assert reply_.content[0].text == "from backup"  # type: ignore[union-attr]
        upstreams.script(backup, reply(error("api_error", "down too"), 503))
        with pytest.raises(anthropic.InternalServerError):
            await gateway.messages.acreate(model="primary", max_tokens=5, messages=HELLO)
    finally:
        await gateway.aclose()
    assert len(upstreams.requests_to(primary)) == 2 and len(upstreams.requests_to(backup)) == 2
    assert orjson.loads(upstreams.requests_to(backup)[0].body)["model"] == "claude-upstream"
    assert upstreams.transport.open_responses == 0


async def test_tpm_limit_counts_the_tokens_answers_used(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    base = mock_base("one")
    upstreams.script(base, reply(message("ok")))  # usage: 10 input + 5 output tokens
    gateway = gateway_for(config(deployment("m", base, "a", tpm=30)))
    assert [await served_by(gateway) for _ in range(2)] == ["a", "a"]
    refused = await failure(gateway)
    assert refused.status == 429 and refused.headers["retry-after"] == "60"
    assert health(gateway, "a")["tokens_this_minute"] == 30
    assert len(upstreams.transport.requests) == 2
    await asyncio.sleep(60)
    assert await served_by(gateway) == "a"
    assert len(upstreams.transport.requests) == 3

"""Routing strategies, rate limits, aliases, health reporting, and a concurrent run over faulty upstreams."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anthropic
import orjson
import pytest

import anygate
from tests.conftest import MASTER_KEY, sdk_client
from tests.fakes.anthropic_answers import error, message
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Received
from tests.routing.conftest import config, dead_url, deployment

Serve = Callable[[str], GatewayServer]
Upstreams = Callable[[], FakeUpstream]
HELLO = [{"role": "user", "content": "hello"}]
MESSAGES = "/v1/messages"


_CLIENTS: dict[int, anthropic.Anthropic] = {}


def served_by(server: GatewayServer, model: str = "m") -> str:
    """The deployment id that served one request (one client per server, reusing its connections)."""
    client = _CLIENTS.get(id(server))
    if client is None or client.is_closed():
        client = _CLIENTS[id(server)] = sdk_client(server)
    response = client.messages.with_raw_response.create(model=model, max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    return response.headers["x-anygate-model-id"]


def test_weights_shape_the_shuffle(serve: Serve, upstreams: Upstreams) -> None:
    heavy, light = upstreams(), upstreams()
    for fake in (heavy, light):
        fake.script(MESSAGES, Json(message("ok")))
    server = serve(
        config(deployment("m", heavy.url, "heavy", weight=9), deployment("m", light.url, "light", weight=1))
    )
    counts = Counter(served_by(server) for _ in range(200))
    assert counts["heavy"] > 140 and counts["light"] > 5


def test_least_busy_avoids_the_deployment_with_requests_in_flight(serve: Serve, upstreams: Upstreams) -> None:
    slow, fast = upstreams(), upstreams()
    slow.script(MESSAGES, Json(message("slow"), delay=1.0))
    fast.script(MESSAGES, Json(message("fast")))
    server = serve(
        config(
            deployment("m", slow.url, "slow"),
            deployment("m", fast.url, "fast"),
            router="  routing_strategy: least-busy\n",
        )
    )
    # Occupy the slow deployment (least-busy picks the first of equals: "slow" is listed first).
    background = threading.Thread(target=served_by, args=(server,))
    background.start()
    while server.gateway.router.health.get("slow").in_flight == 0:
        threading.Event().wait(0.01)
    assert [served_by(server) for _ in range(5)] == ["fast"] * 5
    background.join()


def test_latency_based_routing_prefers_the_faster_deployment(serve: Serve, upstreams: Upstreams) -> None:
    slow, fast = upstreams(), upstreams()
    slow.script(MESSAGES, Json(message("slow"), delay=0.2))
    fast.script(MESSAGES, Json(message("fast")))
    server = serve(
        config(
            deployment("m", slow.url, "slow"),
            deployment("m", fast.url, "fast"),
            router="  routing_strategy: latency-based-routing\n",
        )
    )
    first_two = {served_by(server), served_by(server)}  # both unmeasured at first: each gets tried
    assert first_two == {"slow", "fast"}
    assert [served_by(server) for _ in range(10)] == ["fast"] * 10


def test_rpm_limit_skips_a_full_deployment_then_refuses_with_retry_after(
    serve: Serve, upstreams: Upstreams
) -> None:
    first, second = upstreams(), upstreams()
    for fake in (first, second):
        fake.script(MESSAGES, Json(message("ok")))
    server = serve(config(deployment("m", first.url, "a", rpm=2), deployment("m", second.url, "b", rpm=1)))
    assert sorted(served_by(server) for _ in range(3)) == ["a", "a", "b"]
    with pytest.raises(anthropic.RateLimitError) as caught:
        served_by(server)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert len(first.received) + len(second.received) == 3


def test_aliases_and_patterns(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(message("ok")))
    yaml = config(
        deployment("claude-*", fake.url, "any-claude"),
        deployment("claude-*haiku*", fake.url, "haiku"),
        deployment("claude-3-haiku-exact", fake.url, "exact"),
        deployment("big", fake.url, "big"),
        router="  model_group_alias: {sonnet: big}\n",
    )
    server = serve(yaml)
    assert served_by(server, "claude-3-haiku-exact") == "exact"
    assert served_by(server, "claude-haiku-4-5-20251001") == "haiku"
    assert served_by(server, "claude-opus-5-5") == "any-claude"
    assert served_by(server, "sonnet") == "big"
    with pytest.raises(anthropic.NotFoundError):
        served_by(server, "gpt-4o")


def test_health_endpoint_reports_each_deployment(serve: Serve, upstreams: Upstreams) -> None:
    healthy = upstreams()
    healthy.script(MESSAGES, Json(message("ok")))
    server = serve(
        config(deployment("m", dead_url(), "dead", weight=1000000), deployment("m", healthy.url, "live"))
    )
    served_by(server)
    client = sdk_client(server)
    with pytest.raises(anthropic.AuthenticationError):
        sdk_client(server, api_key="wrong").get("/health/deployments", cast_to=object)
    report = client.get("/health/deployments", cast_to=object)
    by_id = {d["deployment_id"]: d for d in report["deployments"]}  # type: ignore[index]
    assert by_id["dead"]["state"] == "cooling_down" and by_id["dead"]["cooldown_remaining_seconds"] > 0
    assert "cannot connect" in by_id["dead"]["last_error"]
    assert by_id["live"]["state"] == "healthy" and by_id["live"]["in_flight"] == 0
    assert by_id["live"]["latency_ms"] is not None


def _echo(received: Received) -> Json:
    prompt = received.json()["messages"][0]["content"]
    return Json(message(f"echo {prompt}"))


def test_concurrent_requests_over_healthy_flaky_and_dead_deployments(
    serve: Serve, upstreams: Upstreams
) -> None:
    """300 requests, 40 at a time, across a dead deployment, a flaky one (every third request fails) and a
    healthy one, with a fallback group: each request gets its own answer, exactly once."""
    healthy, flaky, backup = upstreams(), upstreams(), upstreams()
    healthy.handle(MESSAGES, _echo)
    backup.handle(MESSAGES, _echo)
    calls = itertools.count()

    def flaky_answer(received: Received) -> Json:
        if next(calls) % 3 == 0:
            return Json(error("overloaded_error", "flaky"), status=529)
        return _echo(received)

    flaky.handle(MESSAGES, flaky_answer)
    server = serve(
        config(
            deployment("m", dead_url(), "dead"),
            deployment("m", flaky.url, "flaky"),
            deployment("m", healthy.url, "healthy"),
            deployment("backup", backup.url, "backup"),
            router="  allowed_fails: 1000\n  num_retries: 3\n  fallbacks: [{m: [backup]}]\n",
        )
    )

    async def run() -> list[str]:
        client = anthropic.AsyncAnthropic(base_url=server.url, api_key=MASTER_KEY, max_retries=0)
        limit = asyncio.Semaphore(40)

        async def one(i: int) -> str:
            async with limit:
                reply = await client.messages.create(
                    model="m", max_tokens=5, messages=[{"role": "user", "content": f"request-{i}"}]
                )
                return reply.content[0].text  # type: ignore[union-attr]

        try:
            return await asyncio.gather(*(one(i) for i in range(300)))
        finally:
            await client.close()

    answers = asyncio.run(run())
    assert answers == [f"echo request-{i}" for i in range(300)]
    successes: Counter[str] = Counter()
    for fake in (healthy, flaky, backup):
        for received in fake.received:
            successes[received.json()["messages"][0]["content"]] += 1
    # Every prompt reached an upstream at least once; flaky failures explain any repeats.
    assert set(successes) == {f"request-{i}" for i in range(300)}
    assert sum(successes.values()) - 300 <= len(flaky.received) // 3 + 1
    assert all(h["in_flight"] == 0 for h in server.gateway.router.report(server.gateway.config.deployments))


def test_the_sdk_surface_routes_and_falls_back_like_the_proxy(tmp_path: Path, upstreams: Upstreams) -> None:
    primary, backup = upstreams(), upstreams()
    primary.script(MESSAGES, Json(error("api_error", "down"), status=503))
    backup.script(MESSAGES, Json(message("from backup")))
    path = tmp_path / "config.yaml"
    path.write_text(
        config(
            deployment("primary", primary.url, "p"),
            deployment("backup", backup.url, "b"),
            router="  num_retries: 0\n  fallbacks: [{primary: [backup]}]\n",
        )
    )
    gateway = anygate.Gateway.from_config(path)
    try:
        reply = gateway.messages.create(model="primary", max_tokens=5, messages=HELLO)
    finally:
        gateway.close()
    assert reply.content[0].text == "from backup"
    assert len(primary.received) == 1 and orjson.loads(backup.received[0].body)["model"] == "claude-upstream"


def test_tpm_limit_counts_the_tokens_answers_used(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(message("ok")))  # usage: 10 input + 5 output tokens
    server = serve(config(deployment("m", fake.url, "a", tpm=30)))
    assert [served_by(server) for _ in range(2)] == ["a", "a"]
    with pytest.raises(anthropic.RateLimitError):
        served_by(server)
    assert len(fake.received) == 2

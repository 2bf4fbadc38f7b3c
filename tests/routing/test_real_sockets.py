"""What only real sockets show: the aiohttp transport against fake upstreams on loopback ports.

The rest of the routing suite runs in-process on virtual time; these few tests keep the real transport,
the real server and the official ``anthropic`` client honest about refused connections, hanging
upstreams and redirects.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anthropic
import pytest

from tests.conftest import sdk_client
from tests.fakes.anthropic_answers import message
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Hang, Json
from tests.routing.conftest import HELLO, MESSAGES, config, dead_url, deployment

Serve = Callable[[str], GatewayServer]
RealUpstreams = Callable[[], FakeUpstream]


def attempts(server: GatewayServer) -> str:
    response = sdk_client(server).messages.with_raw_response.create(model="m", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    return response.headers["x-anygate-attempts"]


def test_a_refused_connection_cools_the_deployment_down_at_once(
    serve: Serve, real_upstreams: RealUpstreams
) -> None:
    healthy = real_upstreams()
    healthy.script(MESSAGES, Json(message("ok")))
    # The dead deployment's weight makes the shuffle pick it first whenever it is not cooling down.
    dead = deployment("m", dead_url(), "dead", weight=1000000)
    server = serve(config(dead, deployment("m", healthy.url, "live"), router="  cooldown_time: 60\n"))
    assert [attempts(server) for _ in range(5)] == ["2", "1", "1", "1", "1"]
    assert len(healthy.requests_to(MESSAGES)) == 5
    with pytest.raises(anthropic.AuthenticationError):
        sdk_client(server, api_key="wrong").get("/health/deployments", cast_to=object)
    report = sdk_client(server).get("/health/deployments", cast_to=object)
    by_id = {d["deployment_id"]: d for d in report["deployments"]}  # type: ignore[index]
    assert by_id["dead"]["state"] == "cooling_down" and by_id["dead"]["cooldown_remaining_seconds"] > 50
    assert "cannot connect" in by_id["dead"]["last_error"]
    assert by_id["live"]["state"] == "healthy" and by_id["live"]["in_flight"] == 0
    assert by_id["live"]["latency_ms"] is not None


def test_a_hanging_upstream_hits_the_timeout_and_its_connection_is_dropped(
    serve: Serve, real_upstreams: RealUpstreams
) -> None:
    fake = real_upstreams()
    fake.script(MESSAGES, Hang(30))
    server = serve(config(deployment("m", fake.url, "only", timeout=0.3), router="  num_retries: 0\n"))
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_client(server).messages.create(model="m", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 504 and caught.value.type == "timeout_error"  # type: ignore[attr-defined]
    assert 0.3 <= time.monotonic() - started < 2
    deadline = time.monotonic() + 2
    while not fake.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.cancelled == [MESSAGES]  # the gateway let go of the connection: the upstream stops
    assert server.gateway.router.health.get("only").in_flight == 0


def test_a_redirect_is_not_followed_by_the_real_transport(
    serve: Serve, real_upstreams: RealUpstreams
) -> None:
    fake = real_upstreams()
    fake.script(MESSAGES, Json(b"", status=302, headers={"location": f"{fake.url}/elsewhere"}))
    fake.script("/elsewhere", Json(message("the prompt went somewhere else")))
    server = serve(config(deployment("m", fake.url, "only")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_client(server).messages.create(model="m", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 502 and caught.value.type == "api_error"  # type: ignore[attr-defined]
    assert fake.requests_to("/elsewhere") == []
    assert len(fake.requests_to(MESSAGES)) == 1  # a redirect is not retried either

"""Retries, backoff, retry-after, fallbacks and timeouts, against fault-injecting upstreams on real ports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anthropic
import pytest

import anygate
from anygate.config import parse_config
from tests.conftest import sdk_client
from tests.fakes.anthropic_answers import error, message, stream_frames
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Hang, Json, Sse
from tests.routing.conftest import config, dead_url, deployment

Serve = Callable[[str], GatewayServer]
Upstreams = Callable[[], FakeUpstream]
HELLO = [{"role": "user", "content": "hello"}]
MESSAGES = "/v1/messages"


def ask(server: GatewayServer, model: str = "m", **kwargs: object) -> anthropic.types.Message:
    return sdk_client(server).messages.create(model=model, max_tokens=50, messages=HELLO, **kwargs)  # type: ignore[arg-type]


def raw(server: GatewayServer, model: str = "m") -> tuple[int, dict[str, str], bytes]:
    """One non-streaming request; the status, headers and body as the client sees them."""
    response = sdk_client(server).messages.with_raw_response.create(
        model=model, max_tokens=50, messages=HELLO
    )  # type: ignore[arg-type]
    return response.status_code, dict(response.headers), response.http_response.content


def test_a_retryable_failure_is_retried_and_the_headers_say_so(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(error("api_error", "boom"), status=500), Json(message("ok")))
    server = serve(config(deployment("m", fake.url, "only")))
    status, headers, _ = raw(server)
    assert status == 200
    assert headers["x-anygate-attempts"] == "2" and headers["x-anygate-model-id"] == "only"
    assert len(fake.requests_to(MESSAGES)) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_not_retried(serve: Serve, upstreams: Upstreams, status: int) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(error("invalid_request_error", "bad"), status=status), Json(message("ok")))
    server = serve(config(deployment("m", fake.url, "only")))
    with pytest.raises(anthropic.APIStatusError):
        ask(server)
    assert len(fake.requests_to(MESSAGES)) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_every_retryable_status_is_retried(serve: Serve, upstreams: Upstreams, status: int) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(error("api_error", "try again"), status=status), Json(message("ok")))
    server = serve(config(deployment("m", fake.url, "only")))
    assert ask(server).content[0].text == "ok"  # type: ignore[union-attr]


def test_retry_after_is_honoured(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(
        MESSAGES,
        Json(error("rate_limit_error", "slow down"), status=429, headers={"retry-after-ms": "600"}),
        Json(message("ok")),
    )
    server = serve(config(deployment("m", fake.url, "only")))
    started = time.monotonic()
    assert ask(server).content[0].text == "ok"  # type: ignore[union-attr]
    assert time.monotonic() - started >= 0.6


def test_a_long_retry_after_is_passed_on_instead_of_waited_out(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(
        MESSAGES, Json(error("rate_limit_error", "later"), status=429, headers={"retry-after": "120"})
    )
    server = serve(config(deployment("m", fake.url, "only")))
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(server)
    assert caught.value.response.headers["retry-after"] == "120"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "later"},
        "request_id": caught.value.request_id,
    }
    assert len(fake.requests_to(MESSAGES)) == 1


def test_a_non_json_error_page_is_retried_then_reported(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(b"<html>502 Bad Gateway</html>", status=502))
    server = serve(config(deployment("m", fake.url, "only"), router="  num_retries: 1\n"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(server)
    assert caught.value.status_code == 502
    assert caught.value.type == "api_error"  # type: ignore[attr-defined]
    assert len(fake.requests_to(MESSAGES)) == 2


def test_a_malformed_success_body_is_retried(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(b'{"type": "mess'), Json(message("ok")))
    server = serve(config(deployment("m", fake.url, "only")))
    assert ask(server).content[0].text == "ok"  # type: ignore[union-attr]


def test_fallback_group_serves_when_the_primary_is_exhausted(serve: Serve, upstreams: Upstreams) -> None:
    primary, backup = upstreams(), upstreams()
    primary.script(MESSAGES, Json(error("overloaded_error", "busy"), status=529))
    backup.script(MESSAGES, Json(message("from backup")))
    server = serve(
        config(
            deployment("primary", primary.url, "p1"),
            deployment("backup", backup.url, "b1"),
            router="  num_retries: 1\n  fallbacks: [{primary: [backup]}]\n",
        )
    )
    status, headers, body = raw(server, "primary")
    assert status == 200 and b"from backup" in body
    assert headers["x-anygate-model-id"] == "b1" and headers["x-anygate-attempts"] == "3"
    assert len(primary.requests_to(MESSAGES)) == 2


def test_context_window_fallback_only_for_context_errors(serve: Serve, upstreams: Upstreams) -> None:
    small, large = upstreams(), upstreams()
    small.script(
        MESSAGES, Json(error("invalid_request_error", "prompt is too long: 300000 tokens"), status=400)
    )
    large.script(MESSAGES, Json(message("from large")))
    routing = "  context_window_fallbacks: [{small: [large]}]\n"
    server = serve(
        config(deployment("small", small.url, "s"), deployment("large", large.url, "l"), router=routing)
    )
    assert ask(server, "small").content[0].text == "from large"  # type: ignore[union-attr]
    small.script(MESSAGES, Json(error("invalid_request_error", "temperature out of range"), status=400))
    with pytest.raises(anthropic.BadRequestError):
        ask(server, "small")


def test_total_timeout_ends_a_slow_upstream(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(message("late"), delay=3))
    server = serve(config(deployment("m", fake.url, "only", timeout=0.3), router="  num_retries: 0\n"))
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(server)
    assert caught.value.status_code == 504 and caught.value.type == "timeout_error"  # type: ignore[attr-defined]
    assert time.monotonic() - started < 2


def test_stream_timeout_bounds_the_first_byte(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Sse(stream_frames("late"), first_delay=3), Sse(stream_frames("in time")))
    server = serve(config(deployment("m", fake.url, "only", stream_timeout=0.3)))
    with sdk_client(server).messages.stream(model="m", max_tokens=50, messages=HELLO) as stream:  # type: ignore[arg-type]
        assert stream.get_final_message().content[0].text == "in time"  # type: ignore[union-attr]
    assert len(fake.requests_to(MESSAGES)) == 2


def test_nothing_is_retried_after_the_first_byte(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    frames = stream_frames("a long answer that breaks")
    fake.script(MESSAGES, Sse(frames[:3], cut=True), Sse(frames))
    server = serve(config(deployment("m", fake.url, "only")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        with sdk_client(server).messages.stream(model="m", max_tokens=50, messages=HELLO) as stream:  # type: ignore[arg-type]
            stream.get_final_message()
    assert caught.value.type == "api_error"  # type: ignore[attr-defined]
    assert len(fake.requests_to(MESSAGES)) == 1


def test_an_idle_stream_ends_with_an_error_event_and_pings_come_meanwhile(
    serve: Serve, upstreams: Upstreams
) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Sse(stream_frames("stalls"), pause=2.0))
    general = "  stream_ping_interval: 0.1\n  stream_idle_timeout: 0.5\n"
    server = serve(config(deployment("m", fake.url, "only"), general=general))
    client = sdk_client(server)
    with client.messages.with_streaming_response.create(
        model="m",
        max_tokens=50,
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        body = b"".join(response.iter_bytes())
    assert body.count(b"event: ping") >= 3
    assert body.rstrip().endswith(b"}") and b"event: error" in body and b"timeout_error" in body
    assert b"event: message_stop" not in body
    assert len(fake.requests_to(MESSAGES)) == 1


def test_a_hanging_upstream_is_cancelled_when_the_client_leaves(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Hang(30))
    server = serve(config(deployment("m", fake.url, "only")))
    with pytest.raises(anthropic.APITimeoutError):
        sdk_client(server, timeout=0.3).messages.create(model="m", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    deadline = time.monotonic() + 1.5
    while not fake.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.cancelled == [MESSAGES]
    health = server.gateway.router.health.get("only")
    assert health.in_flight == 0


def test_a_stream_is_cancelled_upstream_when_the_client_leaves(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Sse(stream_frames("x" * 200, pieces=100), pause=0.2))
    server = serve(config(deployment("m", fake.url, "only")))
    with sdk_client(server).messages.stream(model="m", max_tokens=50, messages=HELLO) as stream:  # type: ignore[arg-type]
        next(iter(stream))
    left = time.monotonic()
    while not fake.cancelled and time.monotonic() < left + 1.5:
        time.sleep(0.02)
    assert fake.cancelled == [MESSAGES]
    assert time.monotonic() - left < 1.0


def test_connection_refused_with_a_healthy_peer(serve: Serve, upstreams: Upstreams) -> None:
    healthy = upstreams()
    healthy.script(MESSAGES, Json(message("ok")))
    # The dead deployment's weight makes the shuffle pick it first whenever it is not cooling down.
    dead = deployment("m", dead_url(), "dead", weight=1000000)
    server = serve(config(dead, deployment("m", healthy.url, "live")))
    attempts = [int(raw(server)[1]["x-anygate-attempts"]) for _ in range(20)]
    assert attempts == [2] + [1] * 19  # refused once, then cooled down at once
    gateway = server.gateway
    states = {d["deployment_id"]: d["state"] for d in gateway.router.report(gateway.config.deployments)}
    assert states == {"dead": "cooling_down", "live": "healthy"}


def test_a_failing_deployment_stops_being_tried_after_allowed_fails(
    serve: Serve, upstreams: Upstreams
) -> None:
    failing, healthy = upstreams(), upstreams()
    failing.script(MESSAGES, Json(error("api_error", "down"), status=500))
    healthy.script(MESSAGES, Json(message("ok")))
    server = serve(
        config(
            deployment("m", failing.url, "failing"),
            deployment("m", healthy.url, "healthy"),
            router="  allowed_fails: 1\n  cooldown_time: 60\n",
        )
    )
    for _ in range(30):
        assert ask(server).content[0].text == "ok"  # type: ignore[union-attr]
    assert len(failing.requests_to(MESSAGES)) == 2


def test_a_cooled_down_group_is_still_tried(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(error("api_error", "down"), status=500), Json(message("back")))
    server = serve(config(deployment("m", fake.url, "only"), router="  allowed_fails: 0\n  num_retries: 0\n"))
    with pytest.raises(anthropic.InternalServerError):
        ask(server)
    assert server.gateway.router.health.cooling("only")
    assert ask(server).content[0].text == "back"  # type: ignore[union-attr]


def test_router_retry_after_sets_the_least_wait_before_a_retry(serve: Serve, upstreams: Upstreams) -> None:
    fake = upstreams()
    fake.script(MESSAGES, Json(error("api_error", "boom"), status=500), Json(message("ok")))
    server = serve(config(deployment("m", fake.url, "only"), router="  retry_after: 0.7\n"))
    started = time.monotonic()
    assert ask(server).content[0].text == "ok"  # type: ignore[union-attr]
    assert time.monotonic() - started >= 0.7


async def test_a_stream_closed_before_its_first_read_releases_the_upstream(upstreams: Upstreams) -> None:
    """The client may leave between the gateway's answer and the first byte it sends."""
    fake = upstreams()
    fake.script(MESSAGES, Sse(stream_frames("x" * 200, pieces=100), pause=0.2))
    gateway = anygate.Gateway(parse_config(config(deployment("m", fake.url, "only"))))
    try:
        response = await gateway.create_message(
            {"model": "m", "max_tokens": 5, "messages": HELLO, "stream": True}
        )
        assert gateway.router.health.get("only").in_flight == 1
        assert response.stream is not None
        await response.stream.aclose()  # type: ignore[attr-defined]
        assert gateway.router.health.get("only").in_flight == 0
        for _ in range(75):
            if fake.cancelled:
                break
            await asyncio.sleep(0.02)
        assert fake.cancelled == [MESSAGES]
    finally:
        await gateway.aclose()

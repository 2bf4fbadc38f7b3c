"""Retries, backoff, retry-after, fallbacks, timeouts and cooldowns, in-process on virtual time.

The gateway runs over a scripted :class:`~anygate.testing.MockTransport`; every wait (backoff, an
upstream's ``retry-after``, a timeout, a cooldown) passes on the loop's virtual clock, so timings are
asserted exactly, and each test checks what the client got and what the upstreams received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from anygate.gateway import Gateway
from anygate.protocol.errors import InternalError
from anygate.providers.anthropic import PassthroughCall
from anygate.providers.base import UpstreamRequest
from anygate.testing import MockResponse
from tests.conftest import UPSTREAM_KEY
from tests.fakes.anthropic_answers import error, message, stream_frames
from tests.routing.conftest import (
    MESSAGES,
    AsgiClient,
    Stopwatch,
    Upstreams,
    answer,
    backoffs,
    body,
    config,
    deployment,
    failure,
    health,
    mock_base,
    read_stream,
    reply,
    text_of,
)

pytestmark = pytest.mark.usefixtures("virtual_time")

GatewayFor = Callable[[str], Gateway]
ONLY = mock_base("only")


def single(router: str = "", general: str = "", **params: object) -> str:
    """A config with one deployment, ``only``, serving ``m``."""
    return config(deployment("m", ONLY, "only", **params), router=router, general=general)


async def test_a_retryable_failure_is_retried_and_the_headers_say_so(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, reply(error("api_error", "boom"), 500), reply(message("ok")))
    gateway = gateway_for(single())
    clock = Stopwatch()
    response = await answer(gateway)
    assert response.status == 200 and text_of(response) == "ok"
    assert response.headers["x-anygate-attempts"] == "2" and response.headers["x-anygate-model-id"] == "only"
    assert clock.elapsed == pytest.approx(backoffs(1)[0], abs=1e-6)  # one jittered backoff, 0.125-0.25 s
    sent = upstreams.requests_to(ONLY)
    assert len(sent) == 2 and sent[0].body == sent[1].body
    assert sent[0].headers["x-api-key"] == UPSTREAM_KEY
    assert orjson.loads(sent[0].body)["model"] == "claude-upstream"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_client_errors_are_not_retried(
    upstreams: Upstreams, gateway_for: GatewayFor, status: int
) -> None:
    upstreams.script(ONLY, reply(error("invalid_request_error", "bad"), status), reply(message("ok")))
    gateway = gateway_for(single())
    clock = Stopwatch()
    refused = await failure(gateway)
    assert not refused.retryable
    # The upstream rejecting the gateway's own key is the operator's problem, not the client's: a 500;
    # 422 has no Anthropic equivalent of its own and reaches the client as 400.
    assert refused.status == {401: 500, 403: 500, 422: 400}.get(status, status)
    assert len(upstreams.requests_to(ONLY)) == 1 and clock.elapsed == 0
    assert health(gateway, "only")["recent_failures"] == 0  # an upstream's "no" leaves it healthy


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_every_retryable_status_is_retried(
    upstreams: Upstreams, gateway_for: GatewayFor, status: int
) -> None:
    upstreams.script(ONLY, reply(error("api_error", "try again"), status), reply(message("ok")))
    gateway = gateway_for(single())
    assert text_of(await answer(gateway)) == "ok"
    assert len(upstreams.requests_to(ONLY)) == 2
    assert health(gateway, "only")["recent_failures"] == 1


@pytest.mark.parametrize(("hint", "seconds"), [({"retry-after-ms": "600"}, 0.6), ({"retry-after": "2"}, 2.0)])
async def test_retry_after_is_honoured(
    upstreams: Upstreams, gateway_for: GatewayFor, hint: dict[str, str], seconds: float
) -> None:
    upstreams.script(ONLY, reply(error("rate_limit_error", "slow down"), 429, hint), reply(message("ok")))
    gateway = gateway_for(single())
    clock = Stopwatch()
    assert text_of(await answer(gateway)) == "ok"
    assert clock.elapsed == seconds  # exactly the hint: it is longer than the jittered backoff
    assert len(upstreams.requests_to(ONLY)) == 2


async def test_a_long_retry_after_is_passed_on_instead_of_waited_out(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, reply(error("rate_limit_error", "later"), 429, {"retry-after": "120"}))
    gateway = gateway_for(single())
    clock = Stopwatch()
    refused = await failure(gateway)
    assert clock.elapsed == 0
    assert refused.status == 429 and refused.headers["retry-after"] == "120"
    assert orjson.loads(refused.body("req_test")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "later"},
        "request_id": "req_test",
    }
    assert len(upstreams.requests_to(ONLY)) == 1


async def test_a_non_json_error_page_is_retried_then_reported(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, reply(b"<html>502 Bad Gateway</html>", 502, {"content-type": "text/html"}))
    gateway = gateway_for(single(router="  num_retries: 1\n"))
    refused = await failure(gateway)
    assert refused.status == 502 and refused.error_type == "api_error"
    assert len(upstreams.requests_to(ONLY)) == 2


async def test_a_malformed_success_body_is_retried(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    upstreams.script(ONLY, reply(b'{"type": "mess'), reply(message("ok")))
    gateway = gateway_for(single())
    response = await answer(gateway)
    assert text_of(response) == "ok" and response.headers["x-anygate-attempts"] == "2"
    assert health(gateway, "only")["recent_failures"] == 1


async def test_a_malformed_body_is_a_502_that_counts_toward_cooldown(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, reply(b"not json at all"))
    gateway = gateway_for(single(router="  num_retries: 1\n  allowed_fails: 1\n  cooldown_time: 30\n"))
    refused = await failure(gateway)
    assert refused.status == 502 and refused.error_type == "api_error" and "malformed" in refused.message
    assert len(upstreams.requests_to(ONLY)) == 2  # retried once
    state = health(gateway, "only")
    assert state["state"] == "cooling_down" and state["cooldown_remaining_seconds"] == 30
    assert "malformed" in state["last_error"]


async def test_a_bug_in_a_translator_is_a_500_that_is_neither_retried_nor_held_against_the_deployment(
    upstreams: Upstreams, gateway_for: GatewayFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PassthroughCall, content: bytes) -> object:
        raise KeyError("content")

    monkeypatch.setattr(PassthroughCall, "parse_response", broken)
    upstreams.script(ONLY, reply(message("ok")))
    other = mock_base("other")
    upstreams.script(other, reply(message("ok")))
    gateway = gateway_for(
        config(
            deployment("m", ONLY, "only"),
            deployment("m", other, "other"),
            router="  num_retries: 3\n  allowed_fails: 0\n",
        )
    )
    bug = await failure(gateway)  # logged, and answered as a 500 by both faces alike
    assert isinstance(bug, InternalError) and (bug.status, bug.error_type) == (500, "api_error")
    assert len(upstreams.transport.requests) == 1  # neither retried nor sent to the other deployment
    status, _, content = await AsgiClient(gateway).request("POST", MESSAGES, body())
    assert status == 500
    assert orjson.loads(content)["error"] == {"type": "api_error", "message": InternalError().message}
    assert len(upstreams.transport.requests) == 2
    for deployment_id in ("only", "other"):
        state = health(gateway, deployment_id)
        assert state["state"] == "healthy" and state["recent_failures"] == 0 and state["last_error"] is None


async def test_a_redirect_is_not_followed(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    elsewhere = mock_base("elsewhere")
    upstreams.script(ONLY, MockResponse(302, [b""], {"location": f"{elsewhere}{MESSAGES}"}))
    upstreams.script(elsewhere, reply(message("should never be asked")))
    gateway = gateway_for(single())
    refused = await failure(gateway)
    assert refused.status == 502 and refused.error_type == "api_error" and "302" in refused.message
    assert [r.url for r in upstreams.transport.requests] == [f"{ONLY}{MESSAGES}"]


async def test_fallback_group_serves_when_the_primary_is_exhausted(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    primary, backup = mock_base("primary"), mock_base("backup")
    upstreams.script(primary, reply(error("overloaded_error", "busy"), 529))
    upstreams.script(backup, reply(message("from backup")))
    gateway = gateway_for(
        config(
            deployment("primary", primary, "p1"),
            deployment("backup", backup, "b1"),
            router="  num_retries: 1\n  fallbacks: [{primary: [backup]}]\n",
        )
    )
    clock = Stopwatch()
    response = await answer(gateway, body("primary"))
    assert text_of(response) == "from backup"
    assert response.headers["x-anygate-model-id"] == "b1" and response.headers["x-anygate-attempts"] == "3"
    assert clock.elapsed == pytest.approx(backoffs(1)[0], abs=1e-6)  # the backup is tried at once
    assert len(upstreams.requests_to(primary)) == 2 and len(upstreams.requests_to(backup)) == 1


async def test_context_window_fallback_only_for_context_errors(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    small, large = mock_base("small"), mock_base("large")
    too_long = reply(error("invalid_request_error", "prompt is too long: 300000 tokens"), 400)
    upstreams.script(small, too_long)
    upstreams.script(large, reply(message("from large")))
    routing = "  context_window_fallbacks: [{small: [large]}]\n  fallbacks: [{small: [other]}]\n"
    gateway = gateway_for(
        config(deployment("small", small, "s"), deployment("large", large, "l"), router=routing)
    )
    assert text_of(await answer(gateway, body("small"))) == "from large"
    assert len(upstreams.requests_to(small)) == 1  # a context error is not retried on the same model
    upstreams.script(small, reply(error("invalid_request_error", "temperature out of range"), 400))
    refused = await failure(gateway, body("small"))
    assert refused.status == 400 and refused.message == "temperature out of range"
    assert len(upstreams.requests_to(large)) == 1


async def test_content_policy_fallback_only_for_policy_refusals(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    strict, lenient, large = mock_base("strict"), mock_base("lenient"), mock_base("large")
    refusal = error("invalid_request_error", "The response was filtered by our content management policy")
    upstreams.script(strict, reply(refusal, 400))
    upstreams.script(lenient, reply(message("from lenient")))
    upstreams.script(large, reply(message("from large")))
    routing = (
        "  content_policy_fallbacks: [{strict: [lenient]}]\n  context_window_fallbacks: [{strict: [large]}]\n"
    )
    gateway = gateway_for(
        config(
            deployment("strict", strict, "s"),
            deployment("lenient", lenient, "p"),
            deployment("large", large, "l"),
            router=routing,
        )
    )
    response = await answer(gateway, body("strict"))
    assert text_of(response) == "from lenient" and response.headers["x-anygate-model-id"] == "p"
    upstreams.script(strict, reply(error("invalid_request_error", "context window exceeded"), 400))
    assert text_of(await answer(gateway, body("strict"))) == "from large"
    assert len(upstreams.requests_to(lenient)) == 1 and len(upstreams.requests_to(large)) == 1


async def test_total_timeout_ends_a_slow_upstream(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    upstreams.script(ONLY, reply(message("late"), delay=3))
    gateway = gateway_for(single(router="  num_retries: 0\n", timeout=0.3))
    clock = Stopwatch()
    refused = await failure(gateway)
    assert refused.status == 504 and refused.error_type == "timeout_error"
    assert clock.elapsed == 0.3


async def test_the_timeout_covers_a_body_that_trickles(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    """One deadline for the whole non-streaming exchange, the body's reading included."""
    raw = orjson.dumps(message("slowly"))
    pieces = [raw[i : i + 10] for i in range(0, len(raw), 10)]
    upstreams.script(ONLY, MockResponse(200, pieces, {"content-type": "application/json"}, chunk_delay=0.1))
    gateway = gateway_for(single(router="  num_retries: 0\n", timeout=1))
    clock = Stopwatch()
    refused = await failure(gateway)
    assert refused.status == 504 and clock.elapsed == 1.0


@pytest.mark.parametrize("late", ["headers", "first chunk"])
async def test_stream_timeout_bounds_the_first_byte(
    upstreams: Upstreams, gateway_for: GatewayFor, late: str
) -> None:
    slow = (
        MockResponse.sse(stream_frames("late"), delay=3)
        if late == "headers"
        else MockResponse.sse(stream_frames("late"), chunk_delay=3)
    )
    upstreams.script(ONLY, slow, MockResponse.sse(stream_frames("in time", pieces=1)))
    gateway = gateway_for(single(stream_timeout=0.3))
    clock = Stopwatch()
    response = await answer(gateway, body(stream=True))
    assert clock.elapsed == pytest.approx(0.3 + backoffs(1)[0], abs=1e-6)
    content = await read_stream(response)
    assert b"in time" in content and b"event: message_stop" in content
    assert response.headers["x-anygate-attempts"] == "2"
    assert len(upstreams.requests_to(ONLY)) == 2


async def test_nothing_is_retried_after_the_first_byte(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    frames = stream_frames("a long answer that breaks")
    upstreams.script(ONLY, MockResponse.sse(frames[:3], cut=True), MockResponse.sse(frames))
    gateway = gateway_for(single())
    response = await answer(gateway, body(stream=True))
    content = await read_stream(response)
    assert content.startswith(b"event: message_start\n") and frames[1] in content  # the start names "m"
    tail = content.rstrip().rsplit(b"\n\n", 1)[-1]
    assert tail.startswith(b"event: error\n") and b'"api_error"' in tail
    assert b"event: message_stop" not in content
    assert len(upstreams.requests_to(ONLY)) == 1
    assert health(gateway, "only")["recent_failures"] == 1  # the failure in mid-stream still counts


async def test_an_idle_stream_ends_with_an_error_event_and_pings_come_meanwhile(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, MockResponse.sse(stream_frames("stalls"), chunk_delay=2.0))
    general = "  stream_ping_interval: 0.1\n  stream_idle_timeout: 0.5\n"
    gateway = gateway_for(single(general=general))
    clock = Stopwatch()
    response = await answer(gateway, body(stream=True))
    assert clock.elapsed == 2.0  # the first frame
    content = await read_stream(response)
    assert clock.elapsed == 2.5  # then 0.5 s of silence, with a ping every 0.1 s
    assert content.count(b"event: ping") == 4
    assert content.rstrip().endswith(b"}") and b"event: error" in content and b"timeout_error" in content
    assert b"event: message_stop" not in content
    assert len(upstreams.requests_to(ONLY)) == 1


async def test_a_hanging_upstream_is_cancelled_when_the_client_leaves(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    cancelled: list[str] = []

    async def hang(request: UpstreamRequest) -> MockResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(request.url)
            raise
        return reply(message("too late"))

    upstreams.handle(ONLY, hang)
    gateway = gateway_for(single())
    clock = Stopwatch()
    status, _, _ = await AsgiClient(gateway).request("POST", MESSAGES, body(), leave_after=0.3)
    assert status == 0  # nothing was sent: nobody is listening
    assert clock.elapsed == 0.3
    assert cancelled == [f"{ONLY}{MESSAGES}"]
    assert health(gateway, "only")["in_flight"] == 0


async def test_a_stream_is_cancelled_upstream_when_the_client_leaves(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, MockResponse.sse(stream_frames("x" * 200, pieces=100), chunk_delay=0.2))
    gateway = gateway_for(single())
    clock = Stopwatch()
    status, headers, content = await AsgiClient(gateway).request(
        "POST", MESSAGES, body(stream=True), leave_after=1.0
    )
    assert clock.elapsed == 1.0  # the upstream was let go of as the client left, not at its end
    assert status == 200 and headers["x-anygate-model-id"] == "only"
    assert 0 < content.count(b"event: content_block_delta") < 100
    assert upstreams.transport.open_responses == 0
    assert health(gateway, "only")["in_flight"] == 0


async def test_connection_refused_with_a_healthy_peer(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    dead, live = mock_base("dead"), mock_base("live")
    upstreams.script(dead, MockResponse(refuse=True))
    upstreams.script(live, reply(message("ok")))
    # The dead deployment's weight makes the shuffle pick it first whenever it is not cooling down.
    gateway = gateway_for(
        config(deployment("m", dead, "dead", weight=1000000), deployment("m", live, "live"))
    )
    clock = Stopwatch()
    attempts = [(await answer(gateway)).headers["x-anygate-attempts"] for _ in range(20)]
    assert attempts == ["2"] + ["1"] * 19  # refused once, then cooled down at once
    assert clock.elapsed == 0  # another deployment is tried without a backoff
    assert len(upstreams.requests_to(dead)) == 1 and len(upstreams.requests_to(live)) == 20
    states = {d["deployment_id"]: d["state"] for d in gateway.router.report(gateway.config.deployments)}
    assert states == {"dead": "cooling_down", "live": "healthy"}
    assert health(gateway, "dead")["cooldown_remaining_seconds"] == 5.0  # the default cooldown_time
    await asyncio.sleep(5)
    assert (await answer(gateway)).headers["x-anygate-attempts"] == "2"  # tried again once cooled off
    assert len(upstreams.requests_to(dead)) == 2


async def test_a_failing_deployment_stops_being_tried_after_allowed_fails(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    failing, healthy = mock_base("failing"), mock_base("healthy")
    upstreams.script(failing, reply(error("api_error", "down"), 500))
    upstreams.script(healthy, reply(message("ok")))
    gateway = gateway_for(
        config(
            deployment("m", failing, "failing"),
            deployment("m", healthy, "healthy"),
            router="  allowed_fails: 1\n  cooldown_time: 60\n",
        )
    )
    for _ in range(30):
        assert text_of(await answer(gateway)) == "ok"
    assert len(upstreams.requests_to(failing)) == 2  # the second failure exceeded allowed_fails
    assert health(gateway, "failing")["cooldown_remaining_seconds"] == 60
    await asyncio.sleep(59.9)
    for _ in range(10):
        await answer(gateway)
    assert len(upstreams.requests_to(failing)) == 2
    await asyncio.sleep(0.1)
    assert health(gateway, "failing")["state"] == "healthy"
    for _ in range(30):
        assert text_of(await answer(gateway)) == "ok"
    assert len(upstreams.requests_to(failing)) == 4  # tried again, and cooled down again


async def test_a_cooled_down_group_is_still_tried(upstreams: Upstreams, gateway_for: GatewayFor) -> None:
    upstreams.script(ONLY, reply(error("api_error", "down"), 500), reply(message("back")))
    gateway = gateway_for(single(router="  allowed_fails: 0\n  num_retries: 0\n"))
    refused = await failure(gateway)
    assert refused.status == 500 and refused.error_type == "api_error"
    assert gateway.router.health.cooling("only")
    assert text_of(await answer(gateway)) == "back"
    assert len(upstreams.requests_to(ONLY)) == 2


async def test_router_retry_after_sets_the_least_wait_before_a_retry(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    upstreams.script(ONLY, reply(error("api_error", "boom"), 500), reply(message("ok")))
    gateway = gateway_for(single(router="  retry_after: 0.7\n"))
    clock = Stopwatch()
    assert text_of(await answer(gateway)) == "ok"
    assert clock.elapsed == 0.7


async def test_a_stream_closed_before_its_first_read_releases_the_upstream(
    upstreams: Upstreams, gateway_for: GatewayFor
) -> None:
    """The client may leave between the gateway's answer and the first byte it sends."""
    upstreams.script(ONLY, MockResponse.sse(stream_frames("x" * 200, pieces=100), chunk_delay=0.2))
    gateway = gateway_for(single())
    response = await answer(gateway, body(stream=True))
    assert health(gateway, "only")["in_flight"] == 1 and upstreams.transport.open_responses == 1
    assert response.stream is not None
    await response.stream.aclose()  # type: ignore[attr-defined]
    assert health(gateway, "only")["in_flight"] == 0 and upstreams.transport.open_responses == 0
    assert health(gateway, "only")["recent_failures"] == 0  # the client left; the upstream did not fail

"""Fixtures for routing tests.

Most tests drive :class:`anygate.gateway.Gateway` in-process over :class:`anygate.testing.MockTransport`
on the loop's virtual time (``looptime``): backoff, retry-after, cooldowns and timeouts take no real time
and are asserted exactly. :class:`Upstreams` plays several upstreams at once, one per ``api_base``.
A few tests (test_real_sockets.py) keep real fake upstreams on loopback ports for what only sockets show.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import looptime
import orjson
import pytest

from anygate.config import parse_config
from anygate.gateway import Gateway, GatewayResponse
from anygate.hooks import MASTER
from anygate.protocol.errors import GatewayError
from anygate.providers.base import UpstreamRequest
from anygate.routing.retry import BACKOFF_BASE, BACKOFF_MAX
from anygate.server.app import App
from anygate.testing import MockResponse, MockTransport
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.gateway_server import free_port
from tests.fakes.upstream import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
MESSAGES = "/v1/messages"
ROUTER_SEED = 20240601
"""Seeds the router's weighted shuffle so that balancing tests see the same picks on every run."""
JITTER_SEED = 7
"""Seeds the backoff jitter of retries."""

Handler = Callable[[UpstreamRequest], MockResponse | Awaitable[MockResponse]]


@pytest.fixture
async def virtual_time() -> AsyncIterator[None]:
    """The test's event loop on virtual time: sleeps, timeouts and ``loop.time()`` advance instantly when
    nothing else is ready. Used through ``looptime``'s API rather than its pytest plugin, which would
    create an event loop in every other test too."""
    looptime.patch_event_loop(asyncio.get_running_loop(), _enabled=False)  # type: ignore[arg-type]
    with looptime.enabled(strict=True):
        yield


def body(model: str = "m", *, stream: bool = False, **extra: object) -> dict[str, Any]:
    """A Messages request body."""
    request: dict[str, Any] = {"model": model, "max_tokens": 50, "messages": HELLO, **extra}
    if stream:
        request["stream"] = True
    return request


def reply(
    content: object, status: int = 200, headers: Mapping[str, str] | None = None, **kwargs: Any
) -> MockResponse:
    """A JSON answer (``bytes`` are sent as they are) with extra headers."""
    raw = content if isinstance(content, bytes) else orjson.dumps(content)
    return MockResponse(status, [raw], {"content-type": "application/json", **(headers or {})}, **kwargs)


class Upstreams:
    """Several scripted upstreams behind one :class:`MockTransport`, told apart by their ``api_base``.

    ``script(base, *answers)`` answers requests to ``base`` in order (the last one repeats);
    ``handle(base, handler)`` lets a function decide. Unscripted bases answer 404.
    """

    def __init__(self) -> None:
        self._scripts: dict[str, list[MockResponse] | Handler] = {}
        self.transport = MockTransport(self._answer)

    def script(self, base: str, *answers: MockResponse) -> None:
        self._scripts[base] = list(answers)

    def handle(self, base: str, handler: Handler) -> None:
        self._scripts[base] = handler

    def requests_to(self, base: str, path: str = MESSAGES) -> list[UpstreamRequest]:
        return [r for r in self.transport.requests if r.url == base + path]

    def _answer(self, request: UpstreamRequest) -> MockResponse | Awaitable[MockResponse]:
        for base, script in self._scripts.items():
            if request.url.startswith(base + "/"):
                if callable(script):
                    return script(request)
                return script.pop(0) if len(script) > 1 else script[0]
        return MockResponse.json({"error": {"message": f"no script for {request.url}"}}, status=404)


def backoffs(*retries: int) -> list[float]:
    """The waits the seeded jitter gives before the same deployment is retried (retry 1, 2, …), when no
    ``retry-after`` asks for longer: what :func:`anygate.routing.retry.backoff_seconds` computes."""
    rng = random.Random(JITTER_SEED)
    return [min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (retry - 1)) * rng.uniform(0.5, 1.0) for retry in retries]


def mock_base(name: str) -> str:
    """The ``api_base`` of an in-process upstream (never resolved: the mock transport answers it)."""
    return f"http://{name}.upstream.test"


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


def deployment(name: str, api_base: str, deployment_id: str, **params: object) -> str:
    """One ``model_list`` entry (YAML) for an Anthropic deployment at ``api_base``."""
    extra = "".join(f"\n      {key}: {value}" for key, value in params.items())
    return f"""
  - model_name: {name}
    litellm_params:
      model: anthropic/claude-upstream
      api_base: {api_base}
      api_key: {UPSTREAM_KEY}{extra}
    model_info:
      id: {deployment_id}"""


def config(*deployments: str, router: str = "", general: str = "") -> str:
    """A whole config: the deployments, ``router_settings`` lines and extra ``general_settings`` lines."""
    router_block = f"\nrouter_settings:\n{router}" if router else ""
    return f"""
model_list:{"".join(deployments)}
general_settings:
  master_key: {MASTER_KEY}
{general}{router_block}
"""


@pytest.fixture(autouse=True)
def _seeded_backoff_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff jitter comes from ``random.uniform``: seed it so retries wait the same on every run."""
    monkeypatch.setattr("anygate.routing.retry.random", random.Random(JITTER_SEED))


@pytest.fixture
def upstreams() -> Upstreams:
    return Upstreams()


@pytest.fixture
async def gateway_for(upstreams: Upstreams) -> AsyncIterator[Callable[[str], Gateway]]:
    """``gateway_for(config_yaml)``: an in-process gateway over ``upstreams`` on the running loop's clock.

    After the test, every upstream answer must have been released or closed and no deployment may
    still count a request in flight.
    """
    made: list[Gateway] = []

    def make(yaml: str) -> Gateway:
        gateway = Gateway(
            parse_config(yaml), transport=upstreams.transport, clock=asyncio.get_running_loop().time
        )
        gateway.router._rng = random.Random(ROUTER_SEED)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.aclose()
    assert upstreams.transport.open_responses == 0, "an upstream answer was never released or closed"
    for gateway in made:
        assert all(d["in_flight"] == 0 for d in gateway.router.report(gateway.config.deployments))


async def answer(gateway: Gateway, request: dict[str, Any] | None = None) -> GatewayResponse:
    """One request through the gateway, as the proxy makes it."""
    return await gateway.create_message(
        request or body(), headers={"x-api-key": MASTER_KEY}, request_id="req_test", principal=MASTER
    )


async def served_by(gateway: Gateway, model: str = "m") -> str:
    """The deployment id that served one non-streaming request."""
    return (await answer(gateway, body(model))).headers["x-anygate-model-id"]


async def failure(gateway: Gateway, request: dict[str, Any] | None = None) -> GatewayError:
    """The error one request ends with (the test fails if it succeeds)."""
    with pytest.raises(GatewayError) as caught:
        await answer(gateway, request)
    return caught.value


def text_of(response: GatewayResponse) -> str:
    assert response.body is not None
    return str(orjson.loads(response.body)["content"][0]["text"])


async def read_stream(response: GatewayResponse) -> bytes:
    assert response.stream is not None
    return b"".join([chunk async for chunk in response.stream])


def health(gateway: Gateway, deployment_id: str) -> dict[str, Any]:
    return gateway.router.health.snapshot(deployment_id)


class Stopwatch:
    """Virtual seconds since it was made, to the loop clock's microsecond (call inside a test)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()

    @property
    def elapsed(self) -> float:
        return round(self._loop.time() - self._started, 6)


# --- the proxy's ASGI app, in-process -----------------------------------------------------------------


class AsgiClient:
    """Calls the proxy's ASGI app directly: what an HTTP client would see, without a socket.

    ``leave_after`` makes the client disconnect that many (loop) seconds after it sent its request.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.app = App(gateway)

    async def request(
        self,
        method: str,
        path: str,
        payload: object = None,
        *,
        api_key: str = MASTER_KEY,
        leave_after: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        raw = b"" if payload is None else orjson.dumps(payload)
        loop = asyncio.get_running_loop()
        leave_at = None if leave_after is None else loop.time() + leave_after
        sent = False
        messages: list[Mapping[str, Any]] = []

        async def receive() -> Mapping[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            if leave_at is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(max(leave_at - loop.time(), 0))
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            messages.append(message)

        headers = [(b"x-api-key", api_key.encode()), (b"content-type", b"application/json")]
        scope = {"type": "http", "method": method, "path": path, "headers": headers}
        await self.app(scope, receive, send)
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        status = start["status"] if start is not None else 0
        response_headers = {k.decode(): v.decode() for k, v in start["headers"]} if start is not None else {}
        content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return status, response_headers, content


@pytest.fixture
def real_upstreams() -> Iterator[Callable[[], FakeUpstream]]:
    """``real_upstreams()`` starts one more fake upstream on a loopback port; all stop after the test."""
    started: list[FakeUpstream] = []

    def start() -> FakeUpstream:
        fake = FakeUpstream().start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()

"""Shared fixtures: fake upstreams and the gateway server on real loopback ports, and the recorded data.

Recorded streams and API specs live in ``tests/fixtures`` (provenance and licences in its README): the
suite reads nothing outside the repository, so a fresh clone passes with nothing beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import pytest
from hypothesis import settings

from tests.fakes.gateway_server import SLOW_CALLBACKS, GatewayServer
from tests.fakes.upstream import FakeUpstream

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECORDINGS = FIXTURES / "recordings"
SPECS = FIXTURES / "specs"

# Property tests explore the same examples on every run (the suite is deterministic) and leave no
# example database behind; explore with fresh randomness by running with HYPOTHESIS_PROFILE=explore.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

MASTER_KEY = "sk-test-master-key"
UPSTREAM_KEY = "sk-upstream-secret-key-123"


@pytest.fixture(scope="session", autouse=True)
def _tokenizers_loaded() -> None:
    """Load the tokenizer encodings once, before any gateway loop is watched for blocking: loading them
    (a one-time cost of a process) is not what the loop-blocking check measures."""
    from anygate.tokens import _encoding

    for name in ("o200k_base", "cl100k_base"):
        _encoding(name)


@pytest.fixture(autouse=True)
def _no_loop_blocking() -> Iterator[None]:
    """Fails the test during which a gateway event loop ran one step for longer than 100 ms (asyncio's
    slow-callback detection, see tests/fakes/gateway_server.py): such a step stalls every client."""
    seen = len(SLOW_CALLBACKS)
    yield
    blocked = SLOW_CALLBACKS[seen:]
    if blocked:
        pytest.fail("the gateway blocked its event loop:\n" + "\n".join(blocked), pytrace=False)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[FakeUpstream]:
    """One fake upstream for a whole test module (tests ``reset()`` or re-script it as they need)."""
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def serve() -> Iterator[Callable[[str], GatewayServer]]:
    """``serve(config_yaml)`` starts a gateway on that config; all are stopped after the test."""
    servers: list[GatewayServer] = []

    def start(config: str) -> GatewayServer:
        server = GatewayServer(config).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


_OPEN_CLIENTS: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()


def sdk_client(server: GatewayServer, api_key: str = MASTER_KEY, **kwargs: object) -> anthropic.Anthropic:
    """The official client, as users point it at the gateway (no SDK retries, to see every status)."""
    client = anthropic.Anthropic(base_url=server.url, api_key=api_key, max_retries=0, **kwargs)  # type: ignore[arg-type]
    _OPEN_CLIENTS.append(client)
    return client

"""Fixtures for routing tests: several fake Anthropic upstreams, and configs over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.gateway_server import free_port
from tests.fakes.upstream import FakeUpstream


@pytest.fixture
def upstreams() -> Iterator[Callable[[], FakeUpstream]]:
    """``upstreams()`` starts one more fake upstream; all are stopped after the test."""
    started: list[FakeUpstream] = []

    def start() -> FakeUpstream:
        fake = FakeUpstream().start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


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

"""Helpers for the teams tests: a gateway with teams on over a given database, and admin calls."""

from __future__ import annotations

import time
from typing import Any

import anthropic

from tests.conftest import _OPEN_CLIENTS, MASTER_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.rawhttp import RawResponse, send

PRICE_IN = 0.001
PRICE_OUT = 0.002


def teams_config(
    database_url: str, *, redis_url: str | None = None, redis_prefix: str = "anygate:", extra: str = ""
) -> str:
    redis = f"\n  redis_url: {redis_url}\n  redis_key_prefix: '{redis_prefix}'" if redis_url else ""
    return f"""
model_list:
  - model_name: claude-test
    litellm_params:
      model: mock/claude
    model_info:
      input_cost_per_token: {PRICE_IN}
      output_cost_per_token: {PRICE_OUT}
  - model_name: other-model
    litellm_params:
      model: mock/other
  - model_name: "team-*"
    litellm_params:
      model: mock/*
general_settings:
  master_key: {MASTER_KEY}
  database_url: {database_url}{redis}
  proxy_batch_write_at: 0.05
  key_sync_interval: 0.05{extra}
"""


class Admin:
    """Admin calls with the master key (or another key)."""

    def __init__(self, server: GatewayServer, key: str = MASTER_KEY) -> None:
        self.url = server.url
        self.key = key

    def call(self, method: str, path: str, body: Any = None) -> RawResponse:
        return send(self.url, method, path, body, {"authorization": f"Bearer {self.key}"})

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.call(method, path, body)
        assert response.status == 200, (path, response.status, response.body)
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.ok("POST", path, body)

    def get(self, path: str) -> Any:
        return self.ok("GET", path)


def client(server: GatewayServer, key: str, **options: Any) -> anthropic.Anthropic:
    """The official client with ``key`` (closed after the test, so no connection is left to the collector)."""
    options.setdefault("max_retries", 0)
    made = anthropic.Anthropic(api_key=key, base_url=server.url, **options)
    _OPEN_CLIENTS.append(made)
    return made


def ask(server: GatewayServer, key: str, model: str = "claude-test", **extra: Any) -> Any:
    return client(server, key).messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "hello"}], **extra
    )


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)

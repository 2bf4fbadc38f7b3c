"""Either credential header may carry the master key; configured output limits cap max_tokens."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, sdk_client
from tests.fakes.anthropic_answers import message
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json

HELLO = [{"role": "user", "content": "hello"}]


def _config(api_base: str) -> str:
    return f"""
model_list:
  - model_name: small
    litellm_params: {{model: anthropic/claude-small, api_base: "{api_base}", api_key: {UPSTREAM_KEY}}}
    model_info: {{max_output_tokens: 4096}}
general_settings:
  master_key: {MASTER_KEY}
"""


def test_a_stale_key_in_one_header_does_not_lock_out_the_right_one_in_the_other(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    upstream.script("/v1/messages", Json(message("ok")))
    server = serve(_config(upstream.url))
    both = sdk_client(server, api_key="sk-stale", default_headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert both.messages.create(model="small", max_tokens=5, messages=HELLO).content[0].text == "ok"  # type: ignore[arg-type,union-attr]
    wrong = sdk_client(server, api_key="sk-stale", default_headers={"authorization": "Bearer sk-also-wrong"})
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="small", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]


def test_max_tokens_is_capped_at_the_configured_output_limit(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    upstream.script("/v1/messages", Json(message("ok")))
    client = sdk_client(serve(_config(upstream.url)))
    client.messages.create(model="small", max_tokens=128000, messages=HELLO, timeout=30)  # type: ignore[arg-type]
    client.messages.create(model="small", max_tokens=100, messages=HELLO)  # type: ignore[arg-type]
    assert [r.json()["max_tokens"] for r in upstream.received] == [4096, 100]

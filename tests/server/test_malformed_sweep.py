"""No malformed request ever gets a 5xx: generated bodies against the proxy (mock model and a fake
Anthropic upstream), each answered with a 2xx or a 4xx in Anthropic's error envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.anthropic_answers import message
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json
from tests.rawhttp import send

HEADERS = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    fake = FakeUpstream().start()
    fake.script("/v1/messages", Json(message("ok")))
    fake.script("/v1/messages/count_tokens", Json({"input_tokens": 1}))
    server = GatewayServer(
        f"""
model_list:
  - model_name: mock
    litellm_params: {{model: mock/m}}
  - model_name: passthrough
    litellm_params: {{model: anthropic/claude-x, api_base: "{fake.url}", api_key: {UPSTREAM_KEY}}}
general_settings:
  master_key: {MASTER_KEY}
  max_request_size_mb: 1
"""
    ).start()
    yield server
    server.stop()
    fake.stop()


json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", ""]) | json_values
block_types = st.sampled_from(
    ["text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking", "whatever"]
)
blocks = st.fixed_dictionaries(
    {"type": block_types | json_values},
    optional={
        "text": json_values,
        "source": json_values,
        "id": json_values,
        "name": json_values,
        "input": json_values,
        "tool_use_id": json_values,
        "content": json_values | st.lists(st.fixed_dictionaries({"type": block_types}), max_size=3),
        "is_error": json_values,
        "thinking": json_values,
        "signature": st.sampled_from(["anygate.v1.x", "real"]) | json_values,
    },
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={"content": st.text(max_size=40) | st.lists(blocks, max_size=3) | json_values},
    ),
    max_size=3,
)
schemas = json_values | st.fixed_dictionaries(
    {
        "type": st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])
        | json_values
    },
    optional={
        "properties": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
        "required": st.lists(st.text(max_size=8), max_size=3) | json_values,
        "items": json_values,
        "enum": json_values,
        "minItems": json_values,
        "minimum": json_values,
        "anyOf": json_values,
    },
)
tools = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["get_weather", "lookup"]) | json_values},
        optional={"input_schema": schemas, "description": json_values, "type": json_values},
    ),
    max_size=2,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["mock", "passthrough", "nope"]) | json_values,
        "max_tokens": st.integers(-5, 2**40) | json_values,
        "messages": messages | json_values,
        "stream": st.booleans() | json_values,
        "system": json_values | st.lists(blocks, max_size=2),
        "tools": tools | json_values,
        "tool_choice": st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none"]) | json_values}
        )
        | json_values,
        "thinking": st.fixed_dictionaries(
            {"type": st.sampled_from(["enabled", "adaptive", "disabled"]) | json_values},
            optional={"budget_tokens": json_values},
        )
        | json_values,
        "stop_sequences": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "temperature": json_values,
        "top_k": json_values,
        "metadata": json_values,
        "unknown_field": json_values,
    },
)


def _check(response_status: int, body: bytes, content_type: str) -> None:
    assert response_status < 500, body
    if response_status >= 400:
        envelope = orjson.loads(body)
        assert envelope["type"] == "error" and envelope["error"]["type"]
    elif content_type.startswith("text/event-stream"):
        assert b"event: error" not in body, body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=requests, path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]))
def test_generated_requests_never_get_a_5xx(gateway: GatewayServer, body: dict[str, Any], path: str) -> None:
    response = send(gateway.url, "POST", path, body, HEADERS)
    _check(response.status, response.body, response.headers.get("content-type", ""))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_never_get_a_5xx(gateway: GatewayServer, raw: bytes) -> None:
    response = send(gateway.url, "POST", "/v1/messages", raw, HEADERS)
    _check(response.status, response.body, response.headers.get("content-type", ""))


def test_deep_json_nesting_is_not_a_5xx(gateway: GatewayServer) -> None:
    response = send(gateway.url, "POST", "/v1/messages", b"[" * 5000 + b"]" * 5000, HEADERS)
    _check(response.status, response.body, response.headers.get("content-type", ""))


def _deeply_nested_tool_results(depth: int) -> bytes:
    """Built as text: the JSON encoders themselves refuse this much nesting."""
    opening = b'{"type":"tool_result","tool_use_id":"t","content":[' * depth
    block = opening + b'{"type":"text","text":"leaf"}' + b"]}" * depth
    return b'{"model":"mock","max_tokens":10,"messages":[{"role":"user","content":[' + block + b"]}]}"


@pytest.mark.parametrize("depth", [3, 200, 500])
def test_nested_tool_results_are_not_a_5xx(gateway: GatewayServer, depth: int) -> None:
    response = send(gateway.url, "POST", "/v1/messages", _deeply_nested_tool_results(depth), HEADERS)
    _check(response.status, response.body, response.headers.get("content-type", ""))


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_json_too_deep_to_forward_is_a_400(gateway: GatewayServer, path: str) -> None:
    """orjson reads 1024 levels but writes 254: such a body parses, then cannot be forwarded."""
    deep = b"[" * 300 + b"]" * 300
    head = b'{"model":"passthrough","max_tokens":5,"messages":[{"role":"user","content":"x"}],"x":'
    response = send(gateway.url, "POST", path, head + deep + b"}", HEADERS)
    assert response.status == 400, response.body
    assert b"levels deep" in response.body

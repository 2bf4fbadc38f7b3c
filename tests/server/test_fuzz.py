"""Fuzzing the running gateway: request bodies, headers and upstream answers.

Whatever arrives, the gateway answers in Anthropic's error shape (or succeeds), never with a 5xx other
than the documented upstream mappings (500 api_error, 502 api_error, 504 timeout_error, 529
overloaded_error), never crashes and never stalls its loop (the suite's loop-blocking check watches it).

CI runs a few examples per target (deterministic, see tests/conftest.py); run longer by hand with
``FUZZ_EXAMPLES=5000 HYPOTHESIS_PROFILE=explore pytest tests/server/test_fuzz.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MASTER_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Received, Sse
from tests.rawhttp import RawResponse, send

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DOCUMENTED_5XX = {500: "api_error", 502: "api_error", 504: "timeout_error", 529: "overloaded_error"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
BLOCK_TYPES = ["text", "image", "document", "tool_use", "tool_result", "thinking", "search_result", "x"]
blocks = st.fixed_dictionaries(
    {"type": st.sampled_from(BLOCK_TYPES)},
    optional={
        "text": json_values,
        "content": json_values,
        "source": json_values,
        "id": json_values,
        "name": json_values,
        "input": json_values,
        "tool_use_id": json_values,
        "title": json_values,
        "thinking": json_values,
    },
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", 7]), "content": st.text() | st.lists(blocks)}
    ),
    max_size=3,
)
bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["openai", "anthropic", "mock", "openai-*-x", 3])},
    optional={
        "messages": messages | json_values,
        "max_tokens": st.integers(-1, 2**40) | json_values,
        "stream": st.booleans() | json_values,
        "system": json_values,
        "tools": st.lists(json_values, max_size=3),
        "tool_choice": json_values,
        "thinking": json_values,
        "stop_sequences": json_values,
        "metadata": json_values,
    },
)
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=40
)
header_sets = st.dictionaries(
    st.sampled_from(["anthropic-beta", "anthropic-version", "content-type", "x-custom", "authorization"]),
    header_values,
    max_size=3,
)
upstream_answers = st.one_of(
    st.builds(
        Json,
        body=json_values | st.binary(max_size=50),
        status=st.sampled_from([200, 201, 302, 400, 401, 404, 418, 422, 429, 500, 503, 529, 599]),
        headers=st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "x-y"]), header_values,
                                max_size=2),
    ),
    st.builds(Sse, chunks=st.lists(st.binary(max_size=60) | st.sampled_from([
        b"data: {}\n\n", b"event: error\ndata: {}\n\n", b"data: [DONE]\n\n",
        b"event: message_stop\ndata: {}\n\n",
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n',
    ]), max_size=5), cut=st.booleans()),
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzzed(shared_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    server = GatewayServer(
        f"""
model_list:
  - model_name: openai
    litellm_params: {{model: openai/gpt-4o, api_base: "{shared_upstream.url}/v1", api_key: sk-fuzz-key-0000}}
  - model_name: "openai-*"
    litellm_params: {{model: "openai/*", api_base: "{shared_upstream.url}/v1", api_key: sk-fuzz-key-0000}}
  - model_name: anthropic
    litellm_params:
      {{model: anthropic/claude-x, api_base: "{shared_upstream.url}", api_key: sk-fuzz-key-0000}}
  - model_name: mock
    litellm_params: {{model: mock/demo}}
general_settings: {{master_key: {MASTER_KEY}}}
router_settings: {{num_retries: 0}}
"""
    ).start()
    yield server
    server.stop()


def assert_contract(response: RawResponse) -> None:
    if response.status < 400:
        return
    body = orjson.loads(response.body)
    assert body["type"] == "error", body
    assert isinstance(body["error"]["message"], str)
    assert response.headers["request-id"] == body["request_id"]
    if response.status >= 500:
        assert DOCUMENTED_5XX.get(response.status) == body["error"]["type"], (response.status, body)
    assert b"sk-fuzz-key-0000" not in response.body


@FUZZ
@given(body=bodies, headers=header_sets, answer=upstream_answers)
def test_fuzzed_requests_and_upstream_answers_keep_the_contract(
    fuzzed: GatewayServer,
    shared_upstream: FakeUpstream,
    body: dict[str, Any],
    headers: dict[str, str],
    answer: Any,
) -> None:
    shared_upstream.reset()

    def scripted(_: Received) -> Any:
        return answer

    shared_upstream.handle("/v1/chat/completions", scripted)
    shared_upstream.handle("/v1/messages", scripted)
    sent_headers = {"content-type": "application/json", **headers, "x-api-key": MASTER_KEY}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert_contract(send(fuzzed.url, "POST", path, orjson.dumps(body), sent_headers))
    assert send(fuzzed.url, "GET", "/health").status == 200


@FUZZ
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_fuzzed_raw_bodies_keep_the_contract(fuzzed: GatewayServer, raw: bytes, content_type: str) -> None:
    headers = {"x-api-key": MASTER_KEY, "content-type": content_type}
    assert_contract(send(fuzzed.url, "POST", "/v1/messages", raw, headers))

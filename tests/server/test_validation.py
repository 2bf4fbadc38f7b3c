"""Every malformed request is a 400 naming the field path, answered before any upstream call.

The gateway in front of a fake Anthropic upstream, so "no upstream call" can be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.anthropic_answers import message
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json
from tests.rawhttp import assert_error, send

HEADERS = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def gateway(shared_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    server = GatewayServer(
        f"""
model_list:
  - model_name: claude-up
    litellm_params: {{model: anthropic/claude-x, api_base: "{shared_upstream.url}", api_key: {UPSTREAM_KEY}}}
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 0
"""
    ).start()
    yield server
    server.stop()


@pytest.fixture
def upstream(shared_upstream: FakeUpstream) -> FakeUpstream:
    shared_upstream.reset()
    shared_upstream.script("/v1/messages", Json(message("ok")))
    shared_upstream.script("/v1/messages/count_tokens", Json({"input_tokens": 3}))
    return shared_upstream


def _valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-up", "max_tokens": 10, "messages": HELLO}
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


_DROP = object()


def _with_content(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


INVALID_BODIES: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("invalid-json", b'{"model": "claude-up", ', "not valid JSON"),
    ("empty-body", b"", "empty"),
    ("json-array", b'[{"model": "claude-up"}]', "JSON object"),
    ("json-string", b'"hello"', "JSON object"),
    ("json-null", b"null", "JSON object"),
    ("invalid-utf8", b'{"model": "\xff\xfe"}', "not valid JSON"),
    ("missing-model", _valid(model=_DROP), "model"),
    ("model-not-string", _valid(model=42), "model"),
    ("model-empty", _valid(model=""), "model"),
    ("missing-max-tokens", _valid(max_tokens=_DROP), "max_tokens"),
    ("max-tokens-zero", _valid(max_tokens=0), "max_tokens"),
    ("max-tokens-negative", _valid(max_tokens=-5), "max_tokens"),
    ("max-tokens-string", _valid(max_tokens="100"), "max_tokens"),
    ("max-tokens-float", _valid(max_tokens=10.5), "max_tokens"),
    ("max-tokens-bool", _valid(max_tokens=True), "max_tokens"),
    ("missing-messages", _valid(messages=_DROP), "messages"),
    ("messages-empty", _valid(messages=[]), "messages"),
    ("messages-not-list", _valid(messages="hello"), "messages"),
    ("message-not-object", _valid(messages=["hello"]), "messages.0"),
    ("bad-role", _valid(messages=[{"role": "tool", "content": "x"}]), "messages.0.role"),
    ("role-not-string", _valid(messages=[{"role": ["user"], "content": "x"}]), "messages.0.role"),
    ("missing-role", _valid(messages=[{"content": "x"}]), "messages.0.role"),
    ("missing-content", _valid(messages=[{"role": "user"}]), "messages.0.content"),
    ("content-number", _valid(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (
        "content-object",
        _valid(messages=[{"role": "user", "content": {"type": "text"}}]),
        "messages.0.content",
    ),
    (
        "block-without-type",
        _valid(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"text": "no type"}]},
            ]
        ),
        "messages.2.content.0.type",
    ),
    ("block-type-not-string", _valid(messages=_with_content({"type": 3})), "messages.0.content.0.type"),
    ("block-not-object", _valid(messages=_with_content("text")), "messages.0.content.0"),
    (
        "text-not-string",
        _valid(messages=_with_content({"type": "text", "text": 1})),
        "messages.0.content.0.text",
    ),
    (
        "image-without-source",
        _valid(messages=_with_content({"type": "text", "text": "a"}, {"type": "image"})),
        "messages.0.content.1.source",
    ),
    (
        "tool-use-input-not-object",
        _valid(
            messages=[
                {"role": "user", "content": "a"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "x"}],
                },
            ]
        ),
        "messages.1.content.0.input",
    ),
    (
        "tool-result-without-id",
        _valid(messages=_with_content({"type": "tool_result", "content": "x"})),
        "messages.0.content.0.tool_use_id",
    ),
    (
        "tool-result-inner-block-without-type",
        _valid(
            messages=_with_content({"type": "tool_result", "tool_use_id": "t", "content": [{"text": "x"}]})
        ),
        "messages.0.content.0.content.0.type",
    ),
    (
        "tool-result-inside-tool-result",
        _valid(
            messages=_with_content(
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [{"type": "tool_result", "tool_use_id": "u"}],
                }
            )
        ),
        "messages.0.content.0.content.0.type",
    ),
    (
        "tool-result-is-error-not-bool",
        _valid(
            messages=_with_content({"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": 1})
        ),
        "messages.0.content.0.is_error",
    ),
    ("stream-not-bool", _valid(stream="yes"), "stream"),
    ("temperature-string", _valid(temperature="hot"), "temperature"),
    ("top-p-string", _valid(top_p="0.5"), "top_p"),
    ("top-k-float", _valid(top_k=1.5), "top_k"),
    ("stop-sequences-string", _valid(stop_sequences="STOP"), "stop_sequences"),
    ("stop-sequence-number", _valid(stop_sequences=["a", 2]), "stop_sequences.1"),
    ("metadata-string", _valid(metadata="x"), "metadata"),
    ("metadata-user-id-number", _valid(metadata={"user_id": 5}), "metadata.user_id"),
    ("system-number", _valid(system=5), "system"),
    ("system-block-not-text", _valid(system=[{"type": "image"}]), "system.0.type"),
    ("system-text-not-string", _valid(system=[{"type": "text", "text": None}]), "system.0.text"),
    ("tools-not-list", _valid(tools={"name": "t"}), "tools"),
    ("tool-not-object", _valid(tools=["t"]), "tools.0"),
    ("tool-without-name", _valid(tools=[{"input_schema": {"type": "object"}}]), "tools.0.name"),
    ("tool-without-schema", _valid(tools=[{"name": "t"}]), "tools.0.input_schema"),
    (
        "tool-description-number",
        _valid(tools=[{"name": "t", "input_schema": {"type": "object"}, "description": 5}]),
        "tools.0.description",
    ),
    ("tool-choice-string", _valid(tool_choice="auto"), "tool_choice"),
    ("tool-choice-bad-type", _valid(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    ("tool-choice-type-list", _valid(tool_choice={"type": ["auto"]}), "tool_choice.type"),
    ("tool-choice-tool-without-name", _valid(tool_choice={"type": "tool"}), "tool_choice.name"),
    ("thinking-string", _valid(thinking="on"), "thinking"),
    ("thinking-bad-type", _valid(thinking={"type": "maybe"}), "thinking.type"),
    ("thinking-type-object", _valid(thinking={"type": {"enabled": True}}), "thinking.type"),
    ("thinking-without-budget", _valid(thinking={"type": "enabled"}), "thinking.budget_tokens"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("body", "path"), [(b, p) for _, b, p in INVALID_BODIES], ids=[i for i, _, _ in INVALID_BODIES]
)
def test_invalid_request_is_a_400_naming_the_field(
    gateway: GatewayServer, upstream: FakeUpstream, body: bytes | dict[str, Any], path: str, stream: bool
) -> None:
    if stream and isinstance(body, dict) and "stream" not in body:
        body = {**body, "stream": True}
    response = send(gateway.url, "POST", "/v1/messages", body, HEADERS)
    assert_error(response, 400, "invalid_request_error", mentions=path)
    assert upstream.received == []


_MESSAGES_ONLY_FIELDS = (
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
)
"""Fields count_tokens does not take: there they are unknown fields, which pass."""
COUNT_TOKENS_INVALID: list[tuple[str, bytes | dict[str, Any], str]] = [
    (name, body, path) for name, body, path in INVALID_BODIES if not path.startswith(_MESSAGES_ONLY_FIELDS)
]


@pytest.mark.parametrize(
    ("body", "path"),
    [(b, p) for _, b, p in COUNT_TOKENS_INVALID],
    ids=[i for i, _, _ in COUNT_TOKENS_INVALID],
)
def test_invalid_count_tokens_request_is_a_400(
    gateway: GatewayServer, upstream: FakeUpstream, body: bytes | dict[str, Any], path: str
) -> None:
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "max_tokens"}
    response = send(gateway.url, "POST", "/v1/messages/count_tokens", body, HEADERS)
    assert_error(response, 400, "invalid_request_error", mentions=path)
    assert upstream.received == []


def test_unknown_fields_and_block_types_pass_through(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    body = _valid(
        messages=_with_content(
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
            {"type": "search_result_v9", "anything": [1, 2]},
        ),
        brand_new_parameter={"x": 1},
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        thinking={"type": "adaptive"},
    )
    response = send(gateway.url, "POST", "/v1/messages", body, HEADERS)
    assert response.status == 200, response.body
    assert upstream.received[0].json() == {**body, "model": "claude-x"}


def test_count_tokens_needs_no_max_tokens(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    response = send(
        gateway.url, "POST", "/v1/messages/count_tokens", {"model": "claude-up", "messages": HELLO}, HEADERS
    )
    assert response.status == 200 and response.json() == {"input_tokens": 3}


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_unknown_model_is_a_404(gateway: GatewayServer, upstream: FakeUpstream, path: str) -> None:
    response = send(gateway.url, "POST", path, _valid(model="no-such-model"), HEADERS)
    assert_error(response, 404, "not_found_error", mentions="no-such-model")
    assert upstream.received == []

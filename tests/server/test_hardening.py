"""Hostile clients and upstreams, driven as the attacks were: secrets, error contract, keyless mode, CPU.

Each test names the defect it guards (issue 16). Upstreams are real HTTP servers on 127.0.0.1; clients are
the official SDK or raw HTTP.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from anygate.routing.names import glob_match
from tests.conftest import MASTER_KEY
from tests.fakes.anthropic_answers import message, stream_frames
from tests.fakes.gateway_server import GatewayServer, free_port
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.rawhttp import assert_error, send

SECRET_KEYS = {
    "anthropic": "sk-ant-api03-Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fEdCbA",
    "openai": "0123456789abcdef0123456789abcdef",  # Azure's shape: 32 hex digits
}
UNSHAPED_KEY = "plain-words-nobody-would-guess"
"""A configured key with no recognisable shape: masked because the config holds it."""
HEADERS = {"x-api-key": MASTER_KEY}
HELLO = {"model": "up", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def config(upstream: FakeUpstream, provider: str, key: str, general: str = "") -> str:
    base = upstream.url if provider == "anthropic" else f"{upstream.url}/v1"
    return f"""
model_list:
  - model_name: up
    litellm_params: {{model: {provider}/model-x, api_base: "{base}", api_key: "{key}"}}
  - model_name: other
    litellm_params: {{model: {provider}/model-y, api_base: "{base}", api_key: "{UNSHAPED_KEY}"}}
general_settings:
  master_key: {MASTER_KEY}
{general}
router_settings:
  num_retries: 0
"""


def path_of(provider: str) -> str:
    return "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"


def echo_error(provider: str, key: str) -> dict[str, Any]:
    text = f"Incorrect API key provided: {key}; also {UNSHAPED_KEY} and Bearer {key}"
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": text}}
    return {"error": {"message": text, "type": "invalid_request_error", "code": 400}}


def in_stream_error(provider: str, key: str) -> list[bytes]:
    body = echo_error(provider, key)
    if provider == "anthropic":
        first = stream_frames("partial")[:3]
        return [*first, b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"]
    delta = {"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}
    start = {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [delta]}
    return sse_data(start, body, done=False)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
def test_upstream_errors_echoing_keys_are_masked_for_the_client_and_the_log(
    serve: Callable[[str], GatewayServer],
    upstream: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
    provider: str,
    streaming: bool,
) -> None:
    """#7: keys an upstream echoes (its own, Azure's 32-hex shape, one with no shape at all) never reach
    the client or the log, in an error answer or in an error inside a stream."""
    key = SECRET_KEYS[provider]
    upstream.script(path_of(provider), Json(echo_error(provider, key), status=400))
    if streaming:
        upstream.script(path_of(provider), Sse(in_stream_error(provider, key)))
    server = serve(config(upstream, provider, key))
    caplog.set_level(logging.DEBUG)
    response = send(server.url, "POST", "/v1/messages", {**HELLO, "stream": streaming}, HEADERS)
    if not streaming:
        assert_error(response, 400, "invalid_request_error", mentions="[redacted]")
    else:  # an error before the first bytes is a JSON answer; after them an ``event: error`` frame
        assert b"[redacted]" in response.body
    for leaked in (key, UNSHAPED_KEY):
        assert leaked.encode() not in response.body
        assert leaked not in caplog.text


def test_every_key_format_is_masked() -> None:
    from anygate.protocol.redact import mask_secrets

    samples = [
        "sk-proj-abcdefghijklmnop1234",
        "sk-ant-api03-abcdefghijkl_mnop-1234",
        "gsk_abcdefghijklmnop1234",
        "xai-abcdefghijklmnop1234",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "0123456789abcdef0123456789ABCDEF",
    ]
    for sample in samples:
        assert sample not in mask_secrets(f"key is {sample}."), sample
    assert mask_secrets("api_key=hunter2hunter2 ok") == "api_key=[redacted] ok"
    assert mask_secrets("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer [redacted]"
    kept = "max_tokens: 4096 exceeds the context window of 128000 tokens for gpt-4o-2024-08-06"
    assert mask_secrets(kept) == kept


def test_provider_owned_credentials_in_the_config_are_masked_by_value() -> None:
    """A secret of no recognisable shape, configured as a provider's own param, is masked wherever it
    appears (an upstream that echoes it in an error, a log line)."""
    from anygate.config import parse_config
    from anygate.protocol.redact import mask_secrets, register_config_secrets

    secret = "plain words secret that has no key shape"
    config = parse_config(
        "model_list:\n  - model_name: m\n    litellm_params:\n"
        "      model: bedrock/converse/amazon.nova-pro-v1:0\n"
        f"      aws_access_key_id: AKIDEXAMPLE\n      aws_secret_access_key: {secret}\n"
        "      aws_region_name: eu-west-1\n",
        env={},
    )
    register_config_secrets(config)
    assert secret not in mask_secrets(f"the signature for {secret} did not match")
    assert "eu-west-1" in mask_secrets("region eu-west-1 is not served")


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [(418, 400, "invalid_request_error"), (302, 502, "api_error"), (599, 502, "api_error"),
     (503, 529, "overloaded_error"), (429, 429, "rate_limit_error")],
)  # fmt: skip
def test_passthrough_statuses_outside_anthropics_set_are_mapped(
    serve: Callable[[str], GatewayServer],
    upstream: FakeUpstream,
    status: int,
    client_status: int,
    error_type: str,
) -> None:
    """#11: an upstream's 418, 302 or 599 (with an error type of its own) reaches the client as a
    documented status and type; a non-latin-1 retry-after is dropped instead of failing the answer."""
    body = {"type": "error", "error": {"type": "teapot_error", "message": "odd"}}
    upstream.script("/v1/messages", Json(body, status=status, headers={"retry-after": "１０秒"}))
    server = serve(config(upstream, "anthropic", "k"))
    response = send(server.url, "POST", "/v1/messages", HELLO, HEADERS)
    assert_error(response, client_status, error_type)
    assert "retry-after" not in response.headers


def test_numeric_retry_after_is_kept(serve: Callable[[str], GatewayServer], upstream: FakeUpstream) -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    upstream.script("/v1/messages", Json(body, status=429, headers={"retry-after": "7"}))
    server = serve(config(upstream, "anthropic", "k"))
    response = send(server.url, "POST", "/v1/messages", HELLO, HEADERS)
    assert_error(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "7"


def test_connection_errors_do_not_expose_addresses(serve: Callable[[str], GatewayServer]) -> None:
    port = free_port()
    server = serve(
        f"""
model_list:
  - model_name: up
    litellm_params: {{model: openai/m, api_base: "http://127.0.0.1:{port}/v1", api_key: k}}
general_settings: {{master_key: {MASTER_KEY}}}
router_settings: {{num_retries: 0}}
"""
    )
    message_text = assert_error(send(server.url, "POST", "/v1/messages", HELLO, HEADERS), 502, "api_error")
    assert "connection refused" in message_text
    assert "127.0.0.1" not in message_text and str(port) not in message_text


def test_repeated_anthropic_beta_headers_all_reach_the_upstream(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    """#12: two ``anthropic-beta`` headers are joined, not collapsed to the last one."""
    upstream.script("/v1/messages", Json(message("ok")))
    server = serve(config(upstream, "anthropic", "k"))
    body = orjson.dumps(HELLO)
    request = (
        b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"x-api-key: " + MASTER_KEY.encode() + b"\r\nanthropic-beta: beta-one\r\n"
        b"anthropic-beta: beta-two,beta-three\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    ) + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    betas = upstream.requests_to("/v1/messages")[0].headers["anthropic-beta"]
    assert [b.strip() for b in betas.split(",")] == ["beta-one", "beta-two", "beta-three"]


def test_control_characters_from_clients_cannot_forge_log_lines(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(config(upstream, "anthropic", "k"))
    caplog.set_level(logging.INFO)
    send(server.url, "GET", "/v1/models%0a2026-01-01%20INFO%20anygate:%20forged%0d", headers=HEADERS)
    deadline = time.monotonic() + 5  # the request's log line is written just after its answer
    while not any("forged" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("anygate")]
    assert any("forged" in line for line in lines)
    assert all("\n" not in line and "\r" not in line for line in lines)


# --- keyless loopback mode (#8) -----------------------------------------------------------------------

KEYLESS = """
model_list:
  - model_name: mock
    litellm_params: {model: mock/demo}
"""
MOCK_HELLO = {"model": "mock", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"host": "localhost:4000"}, 200),
        ({"host": "[::1]:4000"}, 200),
        ({"host": "127.0.0.2"}, 200),
        ({"host": "0.0.0.0:4000"}, 200),
        ({"content-type": "application/json; charset=utf-8"}, 200),
        ({"content-type": "text/plain", "origin": "https://evil.example"}, 403),
        ({"content-type": "application/x-www-form-urlencoded"}, 403),
        ({"host": "evil.example"}, 403),
        ({"host": "rebound.example:4000"}, 403),
        ({"host": "127.0.0.1.evil.example"}, 403),
    ],
)
def test_keyless_mode_serves_only_json_addressed_to_localhost(
    serve: Callable[[str], GatewayServer], headers: dict[str, str], status: int
) -> None:
    server = serve(KEYLESS)
    response = send(server.url, "POST", "/v1/messages", orjson.dumps(MOCK_HELLO), {
        "content-type": "application/json", **headers})  # fmt: skip
    if status == 200:
        assert response.status == 200, response.body
    else:
        assert_error(response, 403, "permission_error")


# --- bounded CPU per request (#9, #10) and client-triggered 500s (#6) --------------------------------


def test_glob_patterns_match_a_huge_model_name_quickly(serve: Callable[[str], GatewayServer]) -> None:
    """#9: ``gpt-*-*-preview`` against a 20 KB name froze the loop for 5 s (backtracking regex)."""
    server = serve(
        f"""
model_list:
  - model_name: "gpt-*-*-preview"
    litellm_params: {{model: mock/demo}}
general_settings: {{master_key: {MASTER_KEY}}}
"""
    )
    for name in ("gpt-" + "-" * 20_000 + "x", "gpt-" + "a-" * 10_000 + "preview", "gpt-" + "-" * 20_000):
        began = time.perf_counter()
        response = send(server.url, "POST", "/v1/messages", {**MOCK_HELLO, "model": name}, HEADERS)
        assert response.status in (200, 404)
        assert time.perf_counter() - began < 0.5
    adversarial = [
        ("*a*a*a*a*a*a*b", "a" * 20_000),
        ("gpt-*-*-*-*-*-*-preview", "gpt-" + "-" * 20_000 + "preview"),
    ]
    for pattern, text in adversarial:
        began = time.perf_counter()
        glob_match(pattern, text)
        assert time.perf_counter() - began < 0.5


def test_mock_tool_trigger_is_one_pass_over_twenty_thousand_tools(
    serve: Callable[[str], GatewayServer],
) -> None:
    """#10: 20,000 tools froze the mock model for minutes (one regex per tool)."""
    server = serve(KEYLESS + f"general_settings: {{master_key: {MASTER_KEY}}}\n")
    tools = [{"name": f"tool_{i}", "input_schema": {"type": "object"}} for i in range(20_000)]
    body = {**MOCK_HELLO, "tools": tools, "messages": [{"role": "user", "content": "please use tool_19999"}]}
    began = time.perf_counter()
    response = send(server.url, "POST", "/v1/messages", body, HEADERS)
    assert response.status == 200
    assert response.json()["content"][0]["name"] == "tool_19999"
    assert time.perf_counter() - began < 3


def test_counting_a_huge_request_does_not_stall_other_clients(serve: Callable[[str], GatewayServer]) -> None:
    """#10: counting tokens of a large request runs off the event loop; /health stays responsive."""
    server = serve(KEYLESS + f"general_settings: {{master_key: {MASTER_KEY}}}\n")
    body = orjson.dumps({**MOCK_HELLO, "messages": [{"role": "user", "content": "word " * 2_000_000}]})
    worst = 0.0
    done = threading.Event()

    def count() -> None:
        try:
            send(server.url, "POST", "/v1/messages/count_tokens", body, HEADERS, timeout=60)
        finally:
            done.set()

    threading.Thread(target=count, daemon=True).start()
    while not done.is_set():
        began = time.perf_counter()
        assert send(server.url, "GET", "/health").status == 200
        worst = max(worst, time.perf_counter() - began)
    assert worst < 0.5


NESTED_DOCUMENTS = (
    b'{"model":"up","max_tokens":20,"messages":[{"role":"user","content":['
    + b'{"type":"document","source":{"type":"content","content":[' * 330
    + b'{"type":"text","text":"x"}'
    + b"]}}" * 330
    + b"]}]}"
)
"""Documents nested 330 deep (about 1,000 JSON levels: orjson reads it, Python cannot recurse it)."""


@pytest.mark.parametrize(
    "block",
    [
        {"type": "search_result", "content": 7, "title": "t", "source": "s"},
        {"type": "search_result", "content": [7]},
        {"type": "search_result", "content": [{"type": "text", "text": "x"}], "title": ["t"]},
        {"type": "document", "source": {"type": "content", "content": 7}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": 7}]}},
        NESTED_DOCUMENTS,
    ],
    ids=["search-content-7", "search-item-7", "search-title-list", "doc-content-7", "doc-text-7", "doc-330"],
)
def test_malformed_blocks_to_an_openai_model_are_400s_without_traceback(
    serve: Callable[[str], GatewayServer],
    upstream: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
    block: dict[str, Any] | bytes,
) -> None:
    """#6: these were 500s with a traceback in the log."""
    server = serve(config(upstream, "openai", "k"))
    body = (
        block if isinstance(block, bytes) else {**HELLO, "messages": [{"role": "user", "content": [block]}]}
    )
    assert_error(send(server.url, "POST", "/v1/messages", body, HEADERS), 400, "invalid_request_error")
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not upstream.received


def test_an_endless_sse_line_from_an_upstream_is_a_malformed_stream(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    """#2/#4: a line that never ends no longer grows the decoder's buffer without bound."""
    upstream.script("/v1/chat/completions", Sse([b"data: " + b"x" * 65536] * 40))
    server = serve(config(upstream, "openai", "k", general="  max_sse_line_mb: 1"))
    response = send(server.url, "POST", "/v1/messages", {**HELLO, "stream": True}, HEADERS)
    assert_error(response, 502, "api_error", mentions="malformed")

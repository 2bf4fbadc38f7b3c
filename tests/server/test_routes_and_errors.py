"""Routes, the error envelope with its request-id, the body size limit, and authentication.

One gateway over the mock model serves the module; its body limit is set small so 413 is cheap to reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.conftest import MASTER_KEY, sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.rawhttp import assert_error, send

LIMIT_BYTES = int(0.01 * 1024 * 1024)
HEADERS = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "Hello"}]
REQUEST = {"model": "anthropic-claude", "max_tokens": 20, "messages": HELLO}


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    server = GatewayServer(
        f"""
model_list:
  - model_name: anthropic-claude
    litellm_params: {{model: mock/claude}}
    model_info: {{display_name: The Mock, max_input_tokens: 100000}}
  - model_name: second
    litellm_params: {{model: mock/second}}
general_settings:
  master_key: {MASTER_KEY}
  max_request_size_mb: 0.01
"""
    ).start()
    yield server
    server.stop()


def _padded(size: int) -> bytes:
    """A valid request body of exactly ``size`` bytes."""
    import orjson

    base = orjson.dumps({**REQUEST, "messages": [{"role": "user", "content": ""}]})
    filler = size - len(base)
    assert filler >= 0
    return orjson.dumps({**REQUEST, "messages": [{"role": "user", "content": "a" * filler}]})


# --- routes -------------------------------------------------------------------------------------------


def test_health_needs_no_key(gateway: GatewayServer) -> None:
    response = send(gateway.url, "GET", "/health")
    assert response.status == 200 and response.json() == {"status": "ok"}
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("path", ["/", "/health"])
def test_head_is_200_without_a_body(gateway: GatewayServer, path: str) -> None:
    response = send(gateway.url, "HEAD", path)
    assert response.status == 200 and response.body == b""


@pytest.mark.parametrize("path", ["/v1/messages?beta=true", "/v1/messages?beta=true&x=1", "/v1/messages/"])
def test_messages_accepts_any_query_string(gateway: GatewayServer, path: str) -> None:
    response = send(gateway.url, "POST", path, REQUEST, HEADERS)
    assert response.status == 200, response.body
    assert response.json()["type"] == "message"
    assert response.headers["request-id"].startswith("req_")


def test_count_tokens_accepts_beta_query(gateway: GatewayServer) -> None:
    body = {"model": "anthropic-claude", "messages": HELLO}
    response = send(gateway.url, "POST", "/v1/messages/count_tokens?beta=true", body, HEADERS)
    assert response.status == 200 and response.json()["input_tokens"] > 0


def test_models_list_format(gateway: GatewayServer) -> None:
    response = send(gateway.url, "GET", "/v1/models", headers=HEADERS)
    assert response.status == 200
    listing = response.json()
    assert [m["id"] for m in listing["data"]] == ["anthropic-claude", "second"]
    assert listing["has_more"] is False
    assert listing["first_id"] == "anthropic-claude" and listing["last_id"] == "second"
    first = listing["data"][0]
    assert first["type"] == "model" and first["display_name"] == "The Mock"
    assert first["created_at"].endswith("Z")


@pytest.mark.parametrize("path", ["/v1/complete", "/v2/messages", "/v1/messages/batches", "/admin", "/v1"])
def test_unknown_path_is_404(gateway: GatewayServer, path: str) -> None:
    assert_error(send(gateway.url, "POST", path, REQUEST, HEADERS), 404, "not_found_error", mentions=path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("PUT", "/v1/messages"),
        ("DELETE", "/v1/messages/count_tokens"),
        ("POST", "/v1/models"),
        ("POST", "/health"),
        ("POST", "/"),
    ],
)
def test_wrong_method_is_405(gateway: GatewayServer, method: str, path: str) -> None:
    assert_error(
        send(gateway.url, method, path, headers=HEADERS), 405, "invalid_request_error", mentions=method
    )


def test_every_request_id_is_fresh(gateway: GatewayServer) -> None:
    ids = {send(gateway.url, "GET", "/health").headers["request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_a_bug_in_the_gateway_is_a_500_api_error(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug with a secret path /srv/secret")

    monkeypatch.setattr(gateway.gateway, "create_message", broken)
    response = send(gateway.url, "POST", "/v1/messages", REQUEST, HEADERS)
    message = assert_error(response, 500, "api_error")
    assert "secret" not in message and b"Traceback" not in response.body
    request_id = response.headers["request-id"]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


# --- size limit ---------------------------------------------------------------------------------------


def test_body_at_the_limit_is_accepted(gateway: GatewayServer) -> None:
    response = send(gateway.url, "POST", "/v1/messages", _padded(LIMIT_BYTES), HEADERS)
    assert response.status == 200, response.body


def test_oversized_body_with_content_length_is_413(gateway: GatewayServer) -> None:
    response = send(gateway.url, "POST", "/v1/messages", _padded(LIMIT_BYTES + 1), HEADERS)
    assert_error(response, 413, "request_too_large", mentions="limit")


def test_oversized_chunked_body_is_413(gateway: GatewayServer) -> None:
    body = _padded(LIMIT_BYTES * 3)
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    response = send(gateway.url, "POST", "/v1/messages", headers=HEADERS, chunks=chunks)
    assert_error(response, 413, "request_too_large")


def test_small_chunked_body_is_accepted(gateway: GatewayServer) -> None:
    body = _padded(3000)
    chunks = [body[i : i + 100] for i in range(0, len(body), 100)]
    response = send(gateway.url, "POST", "/v1/messages", headers=HEADERS, chunks=chunks)
    assert response.status == 200, response.body


def test_oversized_count_tokens_is_413(gateway: GatewayServer) -> None:
    response = send(gateway.url, "POST", "/v1/messages/count_tokens", _padded(LIMIT_BYTES * 2), HEADERS)
    assert_error(response, 413, "request_too_large")


def test_sdk_sees_request_too_large(gateway: GatewayServer) -> None:
    client = sdk_client(gateway)
    with pytest.raises(anthropic.RequestTooLargeError):
        client.messages.create(
            model="anthropic-claude", max_tokens=5, messages=[{"role": "user", "content": "x" * LIMIT_BYTES}]
        )


# --- authentication -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": MASTER_KEY},
        {"authorization": f"Bearer {MASTER_KEY}"},
        {"authorization": f"bearer {MASTER_KEY}"},
    ],
    ids=["x-api-key", "bearer", "bearer-lowercase"],
)
def test_master_key_is_accepted(gateway: GatewayServer, headers: dict[str, str]) -> None:
    assert send(gateway.url, "POST", "/v1/messages", REQUEST, headers).status == 200
    assert send(gateway.url, "GET", "/v1/models", headers=headers).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "sk-wrong"},
        {"x-api-key": MASTER_KEY + "x"},
        {"x-api-key": MASTER_KEY[:-1]},
        {"authorization": "Bearer sk-wrong"},
        {"authorization": f"Basic {MASTER_KEY}"},
        {"authorization": "Bearer "},
        {"x-api-key": "ключ"},
    ],
    ids=[
        "missing",
        "empty",
        "wrong",
        "longer",
        "prefix",
        "wrong-bearer",
        "basic-scheme",
        "empty-bearer",
        "non-ascii",
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")],
)
def test_missing_or_wrong_key_is_401(
    gateway: GatewayServer, headers: dict[str, str], method: str, path: str
) -> None:
    encoded = {k: v.encode().decode("latin-1") for k, v in headers.items()}
    body = REQUEST if method == "POST" else None
    assert_error(send(gateway.url, method, path, body, encoded), 401, "authentication_error")


def test_auth_comes_before_body_parsing(gateway: GatewayServer) -> None:
    assert_error(send(gateway.url, "POST", "/v1/messages", b"{broken"), 401, "authentication_error")


def test_sdk_with_wrong_key_gets_authentication_error(gateway: GatewayServer) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        sdk_client(gateway, api_key="sk-nope").messages.create(
            model="anthropic-claude", max_tokens=5, messages=HELLO
        )
    assert caught.value.status_code == 401
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_sdk_with_auth_token_uses_bearer(gateway: GatewayServer) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=None, auth_token=MASTER_KEY, max_retries=0)
    try:
        message = client.messages.create(model="anthropic-claude", max_tokens=20, messages=HELLO)
    finally:
        client.close()
    assert message.type == "message"

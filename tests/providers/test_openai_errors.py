"""Upstream Chat Completions failures → Anthropic errors (the table, message shapes, key masking)."""

from __future__ import annotations

import orjson
import pytest

from anygate.providers.openai_chat.provider import provider_for_preset

PROVIDER = provider_for_preset("openai")


@pytest.mark.parametrize(
    ("upstream", "status", "error_type", "retryable"),
    [
        (400, 400, "invalid_request_error", False),
        (422, 400, "invalid_request_error", False),
        (404, 404, "not_found_error", False),
        (413, 413, "request_too_large", False),
        (429, 429, "rate_limit_error", True),
        (408, 504, "timeout_error", True),
        (504, 504, "timeout_error", True),
        (503, 529, "overloaded_error", True),
        (500, 500, "api_error", True),
        (502, 500, "api_error", True),
        (418, 400, "invalid_request_error", False),
    ],
)
def test_error_table(upstream: int, status: int, error_type: str, retryable: bool) -> None:
    body = orjson.dumps({"error": {"message": "upstream says no", "type": "x", "code": None}})
    error = PROVIDER.map_error(upstream, {}, body)
    assert (error.status, error.error_type, error.retryable) == (status, error_type, retryable)
    assert error.message == "upstream says no"


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_the_gateways_problem(status: int) -> None:
    body = b'{"error": {"message": "Incorrect API key provided: sk-proj-abcdefgh12345678. Find your key..."}}'
    error = PROVIDER.map_error(status, {}, body)
    assert (error.status, error.error_type) == (500, "api_error")
    assert "credentials" in error.message and "sk-proj" not in error.message


def test_retry_after_is_kept() -> None:
    error = PROVIDER.map_error(
        429, {"retry-after": "7", "x-other": "1"}, b'{"error": {"message": "slow down"}}'
    )
    assert error.headers == {"retry-after": "7"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "model \\"llama9\\" not found"}', 'model "llama9" not found'),
        (b'{"detail": [{"loc": ["body", "x"], "msg": "field required"}]}', "field required"),
        (
            b'{"object": "error", "message": "This model\'s maximum context length is 8192 tokens"}',
            "This model's maximum context length is 8192 tokens",
        ),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "upstream returned HTTP 400"),
        (b'{"error": {"message": "bad key sk-abcdefghijklmnop here"}}', "bad key [redacted] here"),
    ],
)
def test_messages_of_every_shape_are_kept_without_keys(body: bytes, message: str) -> None:
    assert PROVIDER.map_error(400, {}, body).message == message

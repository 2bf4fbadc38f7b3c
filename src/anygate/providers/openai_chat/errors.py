"""Upstream Chat Completions failures → Anthropic errors.

OpenAI-compatible servers put the reason in ``{"error": {"message": …}}`` (OpenAI, most services),
``{"error": "…"}`` (Ollama), ``{"detail": …}`` (FastAPI servers) or ``{"message": …}`` (vLLM, Mistral).
The message is kept because it is what the client needs (and what context-window fallbacks look for);
anything that looks like a key is masked first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from anygate.protocol.errors import GatewayError, upstream_error
from anygate.protocol.redact import mask_secrets
from anygate.providers.upstream_errors import credentials_rejected, retry_headers

STATUS_TO_ANTHROPIC: Final[Mapping[int, tuple[int, str]]] = {
    400: (400, "invalid_request_error"),
    404: (404, "not_found_error"),
    408: (504, "timeout_error"),
    413: (413, "request_too_large"),
    422: (400, "invalid_request_error"),
    429: (429, "rate_limit_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
"""Upstream HTTP status → (status, ``error.type``) for the client. 401/403 mean the gateway's own key is
wrong (a 500 saying so); other 4xx are invalid requests; other 5xx are ``api_error`` 500s."""


def upstream_message(payload: object, fallback: str) -> str:
    """The human-readable reason in an upstream error payload, whatever its shape."""
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            value: Any = payload.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg") or value.get("detail")
            if isinstance(value, list) and value:  # FastAPI validation details
                value = "; ".join(
                    str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value
                )
            if isinstance(value, str) and value:
                return mask_secrets(value)
    if isinstance(payload, str) and payload.strip():
        return mask_secrets(payload.strip()[:1000])
    return fallback


def map_status(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """The client's error for an upstream non-2xx answer."""
    if status in (401, 403):
        return credentials_rejected(status)
    try:
        payload: object = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = body.decode("utf-8", "replace")
    message = upstream_message(payload, f"upstream returned HTTP {status}")
    client_status, error_type = STATUS_TO_ANTHROPIC.get(status) or (
        (500, "api_error") if status >= 500 else (400, "invalid_request_error")
    )
    return upstream_error(
        status, message, status=client_status, error_type=error_type, headers=retry_headers(headers)
    )


def in_band_error(payload: dict[str, Any]) -> GatewayError:
    """An error an upstream reports inside a 200 answer or a stream (``{"error": {...}}``)."""
    error = payload.get("error")
    code: object = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    return map_status(status, {}, orjson.dumps(payload))

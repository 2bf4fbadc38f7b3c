"""Google's error answers → Anthropic errors.

Google APIs answer ``{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": …, "details":
[…]}}``; Vertex sometimes wraps that object in a one-element array. The message is kept (it is what the
client needs, and what context-window fallbacks look for) with anything key- or token-shaped masked.
``google.rpc.RetryInfo.retryDelay`` becomes ``retry-after``, which the router honours.
"""

from __future__ import annotations

import math
import re
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
    409: (400, "invalid_request_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    499: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
"""HTTP status → (status, ``error.type``) for the client. 401/403 mean the gateway's own credentials are
wrong (a 500 saying so); other 4xx are invalid requests; other 5xx are ``api_error`` 500s."""

GOOGLE_STATUS_TO_HTTP: Final[Mapping[str, int]] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""``google.rpc.Code`` names → HTTP statuses, for errors reported inside a 200 stream."""

CREDENTIAL_REASONS: Final = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})
"""``google.rpc.ErrorInfo.reason`` values that mean the gateway's credentials are wrong (Google answers
a bad API key with 400)."""

_GOOGLE_SECRETS: Final = re.compile(r"\b(AIza[0-9A-Za-z_\-]{20,}|ya29\.[0-9A-Za-z_\-.]+)")
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)s$")


def mask(message: str) -> str:
    """The message with API keys and OAuth tokens replaced."""
    return _GOOGLE_SECRETS.sub("[redacted]", mask_secrets(message))


def google_error(payload: object) -> dict[str, Any] | None:
    """The ``error`` object of a Google error body (plain or wrapped in an array)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error: dict[str, Any] = payload["error"]
        return error
    return None


def retry_after(error: dict[str, Any]) -> str | None:
    """Whole seconds of ``RetryInfo.retryDelay`` (``"34.4s"`` → ``"35"``), or None."""
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return str(max(1, math.ceil(float(match.group(1)))))
    return None


def _reasons(error: dict[str, Any]) -> set[str]:
    return {
        str(detail.get("reason"))
        for detail in error.get("details") or ()
        if isinstance(detail, dict) and detail.get("reason")
    }


def map_status(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """The client's error for a Google non-2xx answer."""
    try:
        payload: object = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    error = google_error(payload)
    if status in (401, 403) or (error is not None and _reasons(error) & CREDENTIAL_REASONS):
        return credentials_rejected(status)
    message = f"upstream returned HTTP {status}"
    kept = retry_headers(headers)
    if error is not None:
        if isinstance(error.get("message"), str) and error["message"]:
            message = mask(error["message"])
        delay = retry_after(error)
        if delay is not None and "retry-after" not in kept:
            kept["retry-after"] = delay
    elif isinstance(payload, str) or body:
        text = body.decode("utf-8", "replace").strip()
        if text:
            message = mask(text[:1000])
    client_status, error_type = STATUS_TO_ANTHROPIC.get(status) or (
        (500, "api_error") if status >= 500 else (400, "invalid_request_error")
    )
    return upstream_error(status, message, status=client_status, error_type=error_type, headers=kept)


def in_band_error(payload: object) -> GatewayError:
    """An error reported inside a 200 answer or a stream (``{"error": {...}}``)."""
    error = google_error(payload) or {}
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    if status is None:
        status = GOOGLE_STATUS_TO_HTTP.get(str(error.get("status")), 500)
    return map_status(status, {}, orjson.dumps({"error": error}))

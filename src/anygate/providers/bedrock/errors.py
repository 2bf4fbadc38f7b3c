"""Bedrock failures → Anthropic errors: HTTP errors (named by ``x-amzn-errortype``) and the exception
messages of an event stream (``:exception-type``), through one table.

Retryable failures (throttling, an unavailable or timed-out model, internal errors) are
:class:`UpstreamFailure`: retried by the router before the client has a byte, an ``event: error``
after. Bedrock's messages are kept (they say what is wrong, and the context-window fallbacks look for
"too long"); they never carry credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from anygate.protocol.errors import GatewayError, UpstreamError, UpstreamFailure, error_type_for_status
from anygate.providers.upstream_errors import retry_headers

EXCEPTION_TO_ANTHROPIC: Final[Mapping[str, tuple[int, str, bool]]] = {
    "throttlingexception": (429, "rate_limit_error", True),
    "servicequotaexceededexception": (429, "rate_limit_error", True),
    "serviceunavailableexception": (529, "overloaded_error", True),
    "modelnotreadyexception": (529, "overloaded_error", True),
    "modeltimeoutexception": (504, "timeout_error", True),
    "modelstreamerrorexception": (500, "api_error", True),
    "modelerrorexception": (500, "api_error", True),
    "internalserverexception": (500, "api_error", True),
    "validationexception": (400, "invalid_request_error", False),
    "resourcenotfoundexception": (404, "not_found_error", False),
    "conflictexception": (400, "invalid_request_error", False),
}
"""Bedrock exception name (lower-cased) → (client status, ``error.type``, retryable)."""

CREDENTIAL_EXCEPTIONS: Final = frozenset(
    {
        "accessdeniedexception",
        "unrecognizedclientexception",
        "invalidsignatureexception",
        "expiredtokenexception",
        "signaturedoesnotmatch",
        "incompletesignatureexception",
        "missingauthenticationtokenexception",
    }
)
"""Exceptions that mean the gateway's AWS credentials (or their permissions) are wrong, not the
client's request: a 500 saying so."""


def exception_name(raw: str | None) -> str:
    """``ThrottlingException:http://internal.amazon.com/…`` → ``throttlingexception``."""
    if not raw:
        return ""
    return raw.split(":", 1)[0].strip().lower()


def _message(body: bytes, fallback: str) -> str:
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:1000] or fallback
    if isinstance(payload, dict):
        for key in ("message", "Message", "errorMessage"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
    return fallback


def bedrock_error(
    name: str, message: str, *, http_status: int | None, headers: Mapping[str, str]
) -> GatewayError:
    """The client's error for a Bedrock exception (``name`` lower-cased, possibly empty)."""
    if name in CREDENTIAL_EXCEPTIONS or http_status in (401, 403):
        return UpstreamError(
            500,
            f"Bedrock rejected the gateway's AWS credentials or their permissions for this model: {message}",
            error_type="api_error",
        )
    known = EXCEPTION_TO_ANTHROPIC.get(name)
    if known is not None:
        status, error_type, retryable = known
    elif http_status is not None:
        retryable = http_status in (408, 429) or http_status >= 500
        status = 529 if http_status == 503 else (504 if http_status == 408 else http_status)
        if not 400 <= status <= 599:
            status = 502
        error_type = error_type_for_status(status)
    else:  # an unknown exception inside a stream: the answer is broken
        status, error_type, retryable = 500, "api_error", True
    cls = UpstreamFailure if retryable else UpstreamError
    return cls(status, message, error_type=error_type, headers=retry_headers(headers))


def map_http_error(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """A Bedrock non-2xx answer → the client's error."""
    name = exception_name(headers.get("x-amzn-errortype"))
    message = _message(body, f"Bedrock returned HTTP {status}")
    return bedrock_error(name, message, http_status=status, headers=headers)


def stream_exception(exception_type: str | None, payload: bytes) -> GatewayError:
    """An ``exception`` message inside an event stream → the error that ends the stream."""
    name = exception_name(exception_type)
    message = _message(payload, f"Bedrock stream failed with {exception_type or 'an unnamed exception'}")
    return bedrock_error(name, message, http_status=None, headers={})

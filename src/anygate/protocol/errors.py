"""Anthropic's error envelope and the exception the whole gateway raises.

Every failure a client sees, from validation to an upstream outage, is a :class:`GatewayError` rendered as
``{"type": "error", "error": {"type": T, "message": M}, "request_id": R}``. Keeping one exception class
means the server, the SDK surface and the stream loop each have exactly one place that turns failures
into bytes or into the official SDK's exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

STATUS_TO_ERROR_TYPE: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's documented status → ``error.type`` table (405 has no type of its own)."""

ERROR_TYPE_TO_STATUS: Final[Mapping[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_type_for_status(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status; unlisted 4xx are invalid requests, 5xx api errors."""
    known = STATUS_TO_ERROR_TYPE.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


class GatewayError(Exception):
    """A failure that reaches the client as an Anthropic error.

    Attributes:
        status: the HTTP status the client receives.
        error_type: Anthropic's ``error.type``.
        message: a human-readable message; never contains credentials.
        headers: extra response headers to keep (``retry-after`` on rate limits).
        retryable: whether routing may try again (another attempt or deployment) after this failure.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or error_type_for_status(status)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        self.retryable = retryable

    def body(self, request_id: str) -> bytes:
        """The JSON error envelope, as sent in a response body or an ``event: error`` frame."""
        return error_body(self.error_type, self.message, request_id)

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.error_type!r}, {self.message!r})"


def error_body(error_type: str, message: str, request_id: str) -> bytes:
    """Serialize Anthropic's error envelope."""
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    )


def invalid_request(message: str) -> GatewayError:
    """A 400 ``invalid_request_error``: the client sent something the gateway cannot accept."""
    return GatewayError(400, message)


JSON_WRITE_DEPTH_LIMIT: Final = 254
"""orjson reads JSON nested 1024 levels deep but writes only this many."""


def client_fault(exc: Exception) -> GatewayError | None:
    """The 400 hidden in an exception raised deep inside the gateway, when the request caused it.

    A request nested deeper than :data:`JSON_WRITE_DEPTH_LIMIT` parses but cannot be written again
    (forwarded, counted): that is the client's error, not a gateway bug. Anything else returns None.
    """
    if isinstance(exc, orjson.JSONEncodeError) and "recursion" in str(exc).lower():
        return invalid_request(f"the request nests JSON more than {JSON_WRITE_DEPTH_LIMIT} levels deep")
    return None

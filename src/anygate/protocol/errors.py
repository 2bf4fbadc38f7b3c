"""Anthropic's error envelope and the exception the whole gateway raises.

Every failure a client sees, from validation to an upstream outage, is a :class:`GatewayError` rendered as
``{"type": "error", "error": {"type": T, "message": M}, "request_id": R}``. Keeping one exception family
means the server, the SDK surface and the stream loop each have exactly one place that turns failures
into bytes or into the official SDK's exceptions; its subclasses tell routing what to retry and what to
hold against a deployment (see :class:`GatewayError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Final

import orjson

from anygate.protocol.redact import mask_secrets

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

RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504, 529})
"""Upstream statuses worth another attempt (on this deployment after a backoff, or on another)."""

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


CLIENT_STATUSES: Final = frozenset({*STATUS_TO_ERROR_TYPE, 402, 502})
"""Every status a :class:`GatewayError` carries: Anthropic's documented ones, plus 402 (``billing_error``)
and 502 (an upstream that failed or answered with something no client should see). The HTTP server
itself also refuses with 408 and 431 (see :mod:`anygate.server.runtime`)."""
UNEXPECTED_STATUS: Final = (502, "api_error")
"""An upstream status outside :data:`CLIENT_STATUSES` that is not a 4xx: 1xx-3xx, unknown 5xx, 6xx."""
STATUS_REPLACEMENTS: Final[Mapping[int, int]] = {503: 529, 408: 504, 422: 400}
"""Upstream statuses with a documented equivalent: 503 is Anthropic's 529 overloaded."""
SAFE_HEADER_VALUES: Final[Mapping[str, re.Pattern[str]]] = {
    "retry-after": re.compile(r"\d{1,9}"),
    "retry-after-ms": re.compile(r"\d{1,12}(?:\.\d{1,6})?"),
    "x-should-retry": re.compile(r"true|false"),
}
"""Headers an error may pass on to the client, each with the only values it may carry (an upstream's
header is relayed only when it is well formed: anything else could not even be encoded)."""


def client_status(status: int, error_type: str | None) -> tuple[int, str]:
    """The (status, ``error.type``) a client receives for a failure reported as ``status``.

    The one normalisation of statuses: an upstream may answer 418, 302 or 599, or name an error type of
    its own, and a client must only ever see Anthropic's statuses and types. Unknown 4xx become 400
    ``invalid_request_error``; non-4xx statuses outside the documented set become 502 ``api_error``.
    """
    status = STATUS_REPLACEMENTS.get(status, status)
    if status not in CLIENT_STATUSES:
        if 400 <= status < 500:
            status = 400
        else:
            return UNEXPECTED_STATUS
    if error_type is None or error_type not in ERROR_TYPE_TO_STATUS:
        error_type = error_type_for_status(status)
    return status, error_type


def safe_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers an error may carry to the client: known names with well-formed values only."""
    kept: dict[str, str] = {}
    for name, value in (headers or {}).items():
        pattern = SAFE_HEADER_VALUES.get(name.lower())
        if pattern is not None and isinstance(value, str) and pattern.fullmatch(value.strip()):
            kept[name.lower()] = value.strip()
    return kept


def error_type_for_status(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status; unlisted 4xx are invalid requests, 5xx api errors."""
    known = STATUS_TO_ERROR_TYPE.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


class GatewayError(Exception):
    """A failure that reaches the client as an Anthropic error.

    The hierarchy says what routing does with each failure::

        GatewayError                  the request cannot be served as asked (validation, auth, no such
        |                             model, a limit): answered at once, never retried
        +-- UpstreamError             an upstream refused the request (its 4xx, mapped): not retried,
        |   |                         the deployment is healthy
        |   +-- UpstreamFailure       the upstream failed (429, 5xx, timeout, broken or malformed answer):
        |       |                     retried, and counts toward the deployment's cooldown
        |       +-- UpstreamUnreachable   nothing listens (refused, no route): retried, cools down at once
        +-- CapacityError             every deployment is at its rpm/tpm limit: fallbacks are tried, nothing
        |                             cools down
        +-- InternalError             a bug in the gateway: a logged 500 ``api_error``, never retried,
                                      never held against a deployment

    Construction is the choke point every failure passes: the status and type are normalised to
    Anthropic's (:func:`client_status`), the message is masked (:func:`~anygate.protocol.redact.mask_secrets`)
    and only well-formed retry headers are kept (:func:`safe_headers`), so no caller can leak a key, an
    undocumented status or an unencodable header.

    Attributes:
        status: the HTTP status the client receives.
        error_type: Anthropic's ``error.type``.
        message: a human-readable message; never contains credentials.
        headers: extra response headers to keep (``retry-after`` on rate limits).
        retryable: whether routing may try again (another attempt, deployment or fallback group).
        counts_as_failure: whether the failure counts toward the deployment's cooldown.
        cools_down_at_once: whether the deployment cools down on this one failure.
    """

    retryable: ClassVar[bool] = False
    counts_as_failure: ClassVar[bool] = False
    cools_down_at_once: ClassVar[bool] = False

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        message = mask_secrets(message)
        super().__init__(message)
        self.status, self.error_type = client_status(status, error_type)
        self.message = message
        self.headers: dict[str, str] = safe_headers(headers)

    def body(self, request_id: str) -> bytes:
        """The JSON error envelope, as sent in a response body or an ``event: error`` frame."""
        return error_body(self.error_type, self.message, request_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.error_type!r}, {self.message!r})"


class UpstreamError(GatewayError):
    """An upstream refused the request (a 4xx it answered, mapped to Anthropic's status and type)."""


class UpstreamFailure(UpstreamError):
    """The upstream failed to answer: another attempt may succeed, and the deployment's health suffers."""

    retryable = True
    counts_as_failure = True


class UpstreamUnreachable(UpstreamFailure):
    """Connection refused or no route: the deployment is down, which routing cools down at once."""

    cools_down_at_once = True

    def __init__(self, message: str) -> None:
        super().__init__(502, message, error_type="api_error")


class CapacityError(GatewayError):
    """The gateway's own limits are reached (every deployment at its rpm/tpm): a fallback group may
    still have room, so routing moves on, but no deployment failed."""

    retryable = True


class InternalError(GatewayError):
    """A bug in the gateway: the client gets a 500 ``api_error`` and the log gets the traceback."""

    def __init__(self, message: str = "internal error in the gateway") -> None:
        super().__init__(500, message, error_type="api_error")


def upstream_error(
    upstream_status: int,
    message: str,
    *,
    status: int | None = None,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> UpstreamError:
    """The error for an upstream's non-2xx answer (reported to the client as ``status``, by default the
    upstream's own): a failure worth retrying for 408, 429 and 5xx."""
    retryable = upstream_status in RETRYABLE_STATUSES or upstream_status >= 500
    cls = UpstreamFailure if retryable else UpstreamError
    return cls(status or upstream_status, message, error_type=error_type, headers=headers)


def malformed_upstream(what: str, exc: BaseException | None = None) -> UpstreamFailure:
    """The upstream's answer cannot be read (bad JSON, a truncated or impossible stream)."""
    detail = f" ({type(exc).__name__})" if exc is not None else ""
    return UpstreamFailure(502, f"the upstream sent a malformed {what}{detail}", error_type="api_error")


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
    (forwarded, counted), and one nested deeper than Python's recursion limit cannot be walked: that is
    the client's error, not a gateway bug. Anything else returns None.
    """
    if isinstance(exc, orjson.JSONEncodeError) and "recursion" in str(exc).lower():
        return invalid_request(f"the request nests JSON more than {JSON_WRITE_DEPTH_LIMIT} levels deep")
    if isinstance(exc, RecursionError):
        # Only a request nests without bound; the validator refuses the nestings translators walk, and
        # this keeps any other walk over client JSON a client error rather than a 500 with a traceback.
        return invalid_request("the request nests its content too deeply")
    return None

"""Facts about upstream failures shared by every provider: what may be retried, what headers to keep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from anygate.protocol.errors import GatewayError

RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504, 529})
"""Upstream statuses worth another attempt (on this deployment after a backoff, or on another)."""

KEPT_UPSTREAM_HEADERS: Final = ("retry-after", "retry-after-ms")


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def retry_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's retry hints, passed on to the client."""
    kept: dict[str, str] = {}
    for name in KEPT_UPSTREAM_HEADERS:
        value = headers.get(name)
        if value is not None:
            kept[name] = value
    return kept


def credentials_rejected(status: int) -> GatewayError:
    """The upstream refused the gateway's own credentials: the client's request is not at fault."""
    return GatewayError(
        500,
        f"the upstream rejected the gateway's credentials for this model (HTTP {status}); "
        "check the api_key configured for it",
        error_type="api_error",
    )

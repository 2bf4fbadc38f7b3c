"""Facts about upstream failures shared by every provider: what headers to keep, whose fault a 401 is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from anygate.protocol.errors import UpstreamError

KEPT_UPSTREAM_HEADERS: Final = ("retry-after", "retry-after-ms")


def retry_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's retry hints, passed on to the client."""
    kept: dict[str, str] = {}
    for name in KEPT_UPSTREAM_HEADERS:
        value = headers.get(name)
        if value is not None:
            kept[name] = value
    return kept


def credentials_rejected(status: int) -> UpstreamError:
    """The upstream refused the gateway's own credentials: the client's request is not at fault."""
    return UpstreamError(
        500,
        f"the upstream rejected the gateway's credentials for this model (HTTP {status}); "
        "check the api_key configured for it",
        error_type="api_error",
    )

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


class CredentialsRejected(UpstreamError):
    """The upstream refused the key the gateway sent (its 401 or 403).

    Whose fault that is depends on who owns the key, which only the gateway knows: a proxy client did
    not choose the gateway's configured key, so it gets a 500 (this error as it is); an in-process
    caller passed or configured the key itself, so it gets the upstream's own status
    (:meth:`for_key_owner`), which the official SDK raises as ``AuthenticationError`` or
    ``PermissionDeniedError``.
    """

    def __init__(self, upstream_status: int) -> None:
        super().__init__(
            500,
            f"the upstream rejected the gateway's credentials for this model (HTTP {upstream_status}); "
            "check the api_key configured for it",
            error_type="api_error",
        )
        self.upstream_status = upstream_status

    def for_key_owner(self) -> UpstreamError:
        """The error as the key's owner should see it: 401 ``authentication_error`` (403
        ``permission_error``), naming no key."""
        status = 403 if self.upstream_status == 403 else 401
        return UpstreamError(
            status,
            f"the upstream rejected the API key (HTTP {self.upstream_status}); check the api_key passed "
            "to the client or the provider's key variable",
        )


def credentials_rejected(status: int) -> CredentialsRejected:
    """The upstream refused the gateway's own credentials: the client's request is not at fault."""
    return CredentialsRejected(status)

"""Client authentication: the master key, in ``x-api-key`` or ``Authorization: Bearer``.

The client's key only unlocks the gateway; it is never forwarded upstream, where the gateway's own
configured credentials are used.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from anygate.protocol.errors import GatewayError


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent, from ``x-api-key`` or a Bearer ``authorization`` header."""
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def check_master_key(headers: Mapping[str, str], master_key: str | None) -> None:
    """Raise 401 unless the request carries the master key (compared in constant time).

    With no master key configured the gateway is open, which the CLI only allows on loopback.
    """
    if master_key is None:
        return
    key = presented_key(headers)
    if key is None:
        raise GatewayError(
            401, "missing API key: send the gateway's key in x-api-key or Authorization: Bearer"
        )
    if not hmac.compare_digest(key.encode(), master_key.encode()):
        raise GatewayError(401, "invalid API key")

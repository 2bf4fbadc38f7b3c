"""Client authentication: the master key, in ``x-api-key`` or ``Authorization: Bearer``.

The client's key only unlocks the gateway; it is never forwarded upstream, where the gateway's own
configured credentials are used.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from anygate.protocol.errors import GatewayError


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys the client sent, from ``x-api-key`` and from a Bearer ``authorization`` header."""
    keys: list[str] = []
    key = headers.get("x-api-key")
    if key:
        keys.append(key)
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            keys.append(token.strip())
    return keys


def check_master_key(headers: Mapping[str, str], master_key: str | None) -> None:
    """Raise 401 unless the request carries the master key (compared in constant time).

    Either header may carry it: Claude Code sends both when ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_AUTH_TOKEN`` are both set, and a stale one must not lock out the right one. With no master
    key configured the gateway is open, which the CLI only allows on loopback.
    """
    if master_key is None:
        return
    keys = presented_keys(headers)
    if not keys:
        raise GatewayError(
            401, "missing API key: send the gateway's key in x-api-key or Authorization: Bearer"
        )
    expected = master_key.encode()
    if not any(hmac.compare_digest(key.encode(), expected) for key in keys):
        raise GatewayError(401, "invalid API key")

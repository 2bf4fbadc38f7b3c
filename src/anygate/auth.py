"""Client authentication: the master key, in ``x-api-key`` or ``Authorization: Bearer``.

The client's key only unlocks the gateway; it is never forwarded upstream, where the gateway's own
configured credentials are used. The master key is a hook (:class:`MasterKey`) like any other
authenticator, so virtual keys are one more hook beside it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from anygate.hooks import MASTER, Hook, Principal
from anygate.protocol.errors import GatewayError


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys the client sent, from ``x-api-key`` and from a Bearer ``authorization`` header.

    Either header may carry the key: Claude Code sends both when ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_AUTH_TOKEN`` are both set, and a stale one must not lock out the right one.
    """
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


class MasterKey(Hook):
    """Recognises the master key (compared in constant time)."""

    __slots__ = ("_expected",)

    def __init__(self, master_key: str) -> None:
        self._expected = master_key.encode()

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        expected = self._expected
        for key in presented_keys(headers):
            if hmac.compare_digest(key.encode(), expected):
                return MASTER
        return None


def missing_key() -> GatewayError:
    return GatewayError(401, "missing API key: send the gateway's key in x-api-key or Authorization: Bearer")


def invalid_key() -> GatewayError:
    return GatewayError(401, "invalid API key")

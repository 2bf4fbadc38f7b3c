"""Signatures for thinking blocks that the gateway builds from non-Anthropic reasoning.

Anthropic requires a ``signature`` on thinking blocks and rejects ones it did not issue. The gateway
signs the blocks it makes with a recognisable prefix and an HMAC of the text, so that when such a
conversation is later sent to an Anthropic upstream the gateway can tell its own blocks (drop them) from
genuine Anthropic ones (never touch them), and can tell them apart from forgeries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

SIGNATURE_PREFIX: Final = "anygate.v1."
_KEY_CONTEXT: Final = b"anygate thinking signature v1"


class ThinkingSigner:
    """Signs thinking text under a key derived from a secret (the master key, when there is one)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | None) -> None:
        material = (secret or "anygate-default-signing-secret").encode()
        self._key = hmac.new(material, _KEY_CONTEXT, hashlib.sha256).digest()

    def sign(self, thinking: str) -> str:
        """The signature of a gateway-made thinking block."""
        digest = hmac.new(self._key, thinking.encode(), hashlib.sha256).digest()
        return SIGNATURE_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def verify(self, thinking: str, signature: str) -> bool:
        """True when ``signature`` is this gateway's signature of ``thinking``."""
        return hmac.compare_digest(self.sign(thinking), signature)


def is_gateway_signature(signature: object) -> bool:
    """True for signatures in the gateway's format (made by some anygate), false for Anthropic's."""
    return isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX)

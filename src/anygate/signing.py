"""Signatures the gateway puts in thinking blocks: its own marks, and sealed upstream state.

Anthropic requires a ``signature`` on thinking blocks, and clients send blocks back verbatim on later
turns. The gateway uses that field for two things, both recognisable by the ``anygate.`` prefix:

- ``anygate.v1.<mac>`` marks a thinking block the gateway made from another provider's plain reasoning
  text (an HMAC of the text), so the block can be told from a genuine Anthropic one and from a forgery.
- ``anygate.v2.<provider>.<payload>.<mac>`` seals opaque state a provider needs back on the next turn
  (Gemini thought signatures, OpenAI encrypted reasoning, Bedrock reasoning signatures) in one versioned,
  provider-tagged envelope: the payload is base64url JSON, the MAC covers the provider and the payload.
  No request then depends on gateway memory, and :meth:`ThinkingSigner.unseal` hands a provider only
  envelopes tagged with its own name, so no provider ever receives another provider's state.

The Anthropic passthrough drops every ``anygate.`` block (Anthropic rejects signatures it did not issue);
genuine Anthropic signatures are never touched. The key derives from the master key, so envelopes from
another gateway (or edited by a client) fail the MAC and are ignored, never sent upstream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Final

import orjson

SIGNATURE_PREFIX: Final = "anygate."
THINKING_MARK_PREFIX: Final = "anygate.v1."
ENVELOPE_PREFIX: Final = "anygate.v2."
_KEY_CONTEXT: Final = b"anygate thinking signature v1"
_ENVELOPE_CONTEXT: Final = b"anygate state envelope v2"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ThinkingSigner:
    """Signs thinking text and seals provider state under keys derived from a secret (the master key,
    when there is one)."""

    __slots__ = ("_envelope_key", "_key")

    def __init__(self, secret: str | None) -> None:
        material = (secret or "anygate-default-signing-secret").encode()
        self._key = hmac.new(material, _KEY_CONTEXT, hashlib.sha256).digest()
        self._envelope_key = hmac.new(material, _ENVELOPE_CONTEXT, hashlib.sha256).digest()

    def sign(self, thinking: str) -> str:
        """The signature of a gateway-made thinking block."""
        digest = hmac.new(self._key, thinking.encode(), hashlib.sha256).digest()
        return THINKING_MARK_PREFIX + _b64(digest)

    def verify(self, thinking: str, signature: str) -> bool:
        """True when ``signature`` is this gateway's signature of ``thinking``."""
        return hmac.compare_digest(self.sign(thinking), signature)

    def seal(self, provider: str, payload: dict[str, Any]) -> str:
        """An envelope carrying ``payload`` (JSON-serialisable) for ``provider`` to read back later."""
        body = _b64(orjson.dumps(payload))
        return f"{ENVELOPE_PREFIX}{provider}.{body}.{self._mac(provider, body)}"

    def unseal(self, provider: str, signature: object) -> dict[str, Any] | None:
        """The payload sealed for ``provider``; None for anything else (another provider's envelope, a
        genuine Anthropic signature, a forged or damaged envelope)."""
        if not isinstance(signature, str) or not signature.startswith(ENVELOPE_PREFIX):
            return None
        tagged, _, rest = signature[len(ENVELOPE_PREFIX) :].partition(".")
        body, _, mac = rest.rpartition(".")
        if tagged != provider or not body or not hmac.compare_digest(mac, self._mac(provider, body)):
            return None
        try:
            payload = orjson.loads(_unb64(body))
        except (binascii.Error, ValueError):
            return None
        return payload if isinstance(payload, dict) else None

    def _mac(self, provider: str, body: str) -> str:
        digest = hmac.new(self._envelope_key, f"{provider}.{body}".encode(), hashlib.sha256).digest()
        return _b64(digest[:16])


def is_gateway_signature(signature: object) -> bool:
    """True for signatures in the gateway's formats (made by some anygate), false for Anthropic's."""
    return isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX)


def envelope_provider(signature: object) -> str | None:
    """The provider an envelope is tagged for (unverified), or None when it is no envelope."""
    if not isinstance(signature, str) or not signature.startswith(ENVELOPE_PREFIX):
        return None
    return signature[len(ENVELOPE_PREFIX) :].partition(".")[0] or None

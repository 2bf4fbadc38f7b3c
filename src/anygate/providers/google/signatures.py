"""Thought signatures in sealed thinking-block envelopes (the design is in the package docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from anygate.signing import ThinkingSigner

ENVELOPE_PROVIDER: Final = "gemini"
"""The provider tag of the envelopes of both Google backends; ``b`` in the payload tells them apart."""

DUMMY_SIGNATURE: Final = "skip_thought_signature_validator"
"""Google's documented stand-in for a function call whose signature is unknown (history written by
another model or edited by the client); Gemini 3 then skips the validation of that part."""

PLACEMENTS: Final = frozenset({"thought", "call", "text", "empty"})
"""Where a sealed signature goes back (see the package docstring's table)."""

_GEMINI_VERSION: Final = re.compile(r"gemini-(\d+)")


@dataclass(frozen=True, slots=True)
class Carried:
    """A thought signature read back from a thinking block."""

    signature: str
    on: str


def seal(signer: ThinkingSigner, backend: str, signature: str, on: str) -> str:
    """The thinking-block signature that carries ``signature`` back to ``on`` (a placement)."""
    return signer.seal(ENVELOPE_PROVIDER, {"b": backend, "s": signature, "on": on})


def unseal(signer: ThinkingSigner, backend: str, block_signature: object) -> Carried | None:
    """The signature a thinking block carries for ``backend``; None for anything else (Anthropic's own
    signatures, other providers' envelopes, the other Google backend's, forgeries)."""
    payload: dict[str, Any] | None = signer.unseal(ENVELOPE_PROVIDER, block_signature)
    if payload is None or payload.get("b") != backend:
        return None
    signature, on = payload.get("s"), payload.get("on")
    if not isinstance(signature, str) or not signature or on not in PLACEMENTS:
        return None
    return Carried(signature, str(on))


def validates_signatures(model: str) -> bool:
    """Whether the model rejects a function call of the current turn without a signature (Gemini 3 and
    later); older models accept history without signatures, so no dummy is sent to them."""
    match = _GEMINI_VERSION.search(model)
    return match is not None and int(match.group(1)) >= 3

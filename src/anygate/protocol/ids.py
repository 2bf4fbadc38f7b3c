"""Request ids in Anthropic's shape (``req_…``), reported in the ``request-id`` header and error bodies."""

from __future__ import annotations

import random
from typing import Final

_REQUEST_IDS: Final = random.Random()
"""Request ids need to be unique, not secret: a PRNG seeded from the OS per process, instead of a system
call for fresh random bytes on every request."""


def new_request_id() -> str:
    """A fresh ``req_…`` id."""
    return f"req_{_REQUEST_IDS.getrandbits(96):024x}"


def random_hex(bits: int = 96) -> str:
    """A fresh random id part in hex (unique, not secret: the same generator as request ids)."""
    return f"{_REQUEST_IDS.getrandbits(bits):0{bits // 4}x}"

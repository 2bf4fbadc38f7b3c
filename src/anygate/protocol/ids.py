"""Request ids in Anthropic's shape (``req_…``), reported in the ``request-id`` header and error bodies."""

from __future__ import annotations

import random
import time
from typing import Final

_REQUEST_IDS: Final = random.Random()
"""Request ids need to be unique, not secret: a PRNG seeded from the OS per process, instead of a system
call for fresh random bytes on every request."""


def new_request_id() -> str:
    """A fresh ``req_…`` id: 24 hex digits, the time in milliseconds (11 digits) and 52 random bits.

    Time first, so ids sort by when requests arrived and every index keyed by request id (the spend
    rows' primary key) grows at its end: random ids land all over such an index, and in SQLite each of
    them dirtied a page of its own, about 25 µs per spend row once the table held 200,000 rows."""
    return f"req_{time.time_ns() // 1_000_000:011x}{_REQUEST_IDS.getrandbits(52):013x}"


def random_hex(bits: int = 96) -> str:
    """A fresh random id part in hex (unique, not secret: the same generator as request ids)."""
    return f"{_REQUEST_IDS.getrandbits(bits):0{bits // 4}x}"

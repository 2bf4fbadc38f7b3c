"""The server's resource limits (``general_settings``), with their defaults in one table.

Each limit bounds what one client (or one upstream) can make the gateway hold or wait for: bytes of
request head, seconds of a slow request, idle connections, concurrent work, and the length of one line of
an upstream's event stream. ``0`` switches a limit off. docs/security.md explains each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

LIMIT_DEFAULTS: Final[Mapping[str, float]] = {
    "max_header_size_kb": 64,
    "header_timeout": 10.0,
    "body_timeout": 60.0,
    "keep_alive_timeout": 5.0,
    "max_connections": 4096,
    "max_concurrent_requests": 2048,
    "max_sse_line_mb": 16,
}
"""``general_settings`` key → default. Sizes in KB/MB, times in seconds, counts per worker process."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force; the field names are the ``general_settings`` keys."""

    max_header_size_kb: float = LIMIT_DEFAULTS["max_header_size_kb"]
    """Request line plus headers of one request; larger heads get 431 before they are buffered whole."""
    header_timeout: float = LIMIT_DEFAULTS["header_timeout"]
    """Seconds from a connection's first byte (or its opening) to the end of the request's headers."""
    body_timeout: float = LIMIT_DEFAULTS["body_timeout"]
    """Seconds from the end of the headers to the end of the request body."""
    keep_alive_timeout: float = LIMIT_DEFAULTS["keep_alive_timeout"]
    """Seconds an idle keep-alive connection is kept between requests."""
    max_connections: float = LIMIT_DEFAULTS["max_connections"]
    """Open client connections; a connection beyond it is answered 529 and closed."""
    max_concurrent_requests: float = LIMIT_DEFAULTS["max_concurrent_requests"]
    """Requests being served at once; beyond it the answer is 529 ``overloaded_error``."""
    max_sse_line_mb: float = LIMIT_DEFAULTS["max_sse_line_mb"]
    """One line (or one frame) of an upstream event stream; beyond it the stream is malformed."""

    @property
    def max_header_bytes(self) -> int:
        return int(self.max_header_size_kb * 1024)

    @property
    def max_sse_line_bytes(self) -> int:
        return int(self.max_sse_line_mb * 1024 * 1024)

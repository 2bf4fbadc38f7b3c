"""What a failed upstream connection is called in a client's error message.

The transport's own text names internal addresses ("Cannot connect to host 10.0.3.7:8000") and OpenSSL
internals ("[SSL: CERTIFICATE_VERIFY_FAILED] … (_ssl.c:1000)"): useful in a debugger, an information
leak in an API answer. A client needs to know what failed, in words that are the same for every upstream.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Mapping
from typing import Final

import aiohttp

ERRNO_REASONS: Final[Mapping[int, str]] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EADDRNOTAVAIL: "address not available",
}


def connect_failure_reason(exc: aiohttp.ClientConnectorError) -> str:
    """A short, address-free reason a connection to an upstream could not be made."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "the upstream's TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError) or isinstance(exc.os_error, ssl.SSLError):
        return "the TLS handshake failed"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if (dns_error is not None and isinstance(exc, dns_error)) or isinstance(exc.os_error, socket.gaierror):
        return "the upstream's host name did not resolve"
    if isinstance(exc.os_error, TimeoutError):
        return "connection timed out"
    code = exc.os_error.errno if isinstance(exc.os_error, OSError) else None
    return ERRNO_REASONS.get(code or 0, "connection failed")

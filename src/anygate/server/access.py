"""Who may reach the server at all: loopback checks, keyless-mode request rules, master key strength.

Keys themselves are checked by the gateway's authenticate stage (:mod:`anygate.auth`); this module holds
the rules that depend on how the server is exposed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Final

from anygate.protocol.errors import GatewayError

LOOPBACK_NAMES: Final = frozenset({"localhost", "ip6-localhost", "localhost.localdomain"})
"""Host names that reach only this machine."""
THIS_HOST_NAMES: Final = frozenset({"0.0.0.0", "::"})
"""``Host`` values a local client may send (connecting to 0.0.0.0 reaches this machine); never a bind
address that counts as loopback, since binding them listens on every interface."""
MIN_PUBLIC_KEY_LENGTH: Final = 16
MIN_PUBLIC_KEY_DISTINCT: Final = 8


def is_loopback(host: str) -> bool:
    """True for addresses and names only this machine can reach."""
    host = host.lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:4000`` → ``::1``)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    name, colon, port = host_header.rpartition(":")
    return name if colon and port.isdigit() else host_header


def check_keyless_request(headers: Mapping[str, str]) -> None:
    """Refuse what a web page could send to a gateway that has no master key.

    Without a key anyone who reaches the gateway spends its upstream credentials; the CLI allows that
    only on loopback, but a browser on the same machine reaches loopback too. A cross-site form or
    ``fetch`` can only send a "simple" request (``text/plain`` and other non-JSON types), and a DNS-rebound
    page sends its own host name: so a keyless gateway accepts only ``application/json`` bodies (403
    otherwise) and loopback ``Host`` values (403 otherwise).
    """
    host = host_name(headers.get("host", ""))
    if host not in THIS_HOST_NAMES and not is_loopback(host):
        raise GatewayError(
            403,
            "this gateway has no master key and serves only requests addressed to localhost; "
            "configure general_settings.master_key to serve other host names",
        )
    content_type = headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        raise GatewayError(
            403, "this gateway has no master key and accepts only content-type: application/json bodies"
        )


def weak_master_key(key: str) -> str | None:
    """Why ``key`` is too weak to guard a gateway others can reach, or None when it is strong enough:
    at least 16 characters, of which at least 8 different ones (``openssl rand -hex 16`` passes; ``sk-1234``
    and ``aaaaaaaaaaaaaaaa`` do not)."""
    if len(key) < MIN_PUBLIC_KEY_LENGTH:
        return f"it has {len(key)} characters; use at least {MIN_PUBLIC_KEY_LENGTH}"
    if len(set(key)) < MIN_PUBLIC_KEY_DISTINCT:
        return f"it uses fewer than {MIN_PUBLIC_KEY_DISTINCT} different characters"
    return None

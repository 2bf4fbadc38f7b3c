"""Which addresses web fetch may connect to, enforced where the connection is made.

Web fetch takes URLs from a model, and a model takes them from whatever it read: a page can ask it to
fetch ``http://169.254.169.254/latest/meta-data/`` (the cloud metadata service) or an admin panel on the
gateway's private network. So, unless ``web_fetch.allow_private_networks`` is set, the gateway refuses
every address that is not public:

- loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::), private (RFC 1918: 10/8, 172.16/12,
  192.168/16; unique-local fc00::/7, which holds AWS's fd00:ec2::254), link-local (169.254/16, which
  holds the metadata address 169.254.169.254; fe80::/10), shared CGNAT space (100.64/10), multicast
  (224/4, ff00::/8), reserved and documentation ranges (240/4, 192.0.2/24, 2001:db8::/32…), and
- IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``,
  6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``): the embedded IPv4 address is what is checked.

The check happens after DNS resolution, on the addresses the connection then uses: :class:`GuardedResolver`
wraps the resolver of the fetch session's connector, refuses a host when any address it resolves to is
forbidden, and hands the connector exactly the addresses it checked. There is no second lookup for a
DNS-rebinding server to answer differently (the connector's DNS cache is off, so every request and every
redirect hop is resolved and checked afresh). A URL whose host is an IP literal never reaches a resolver
(aiohttp connects to it directly), so :func:`forbidden_address` is applied to literals before the request.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORBIDDEN_NETWORKS: Final = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network" and the unspecified address
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, with the cloud metadata service at 169.254.169.254
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # unspecified, loopback and IPv4-compatible (mapped addresses are unwrapped first)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local, with AWS's metadata service at fd00:ec2::254
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
"""Networks web fetch never connects to (without ``allow_private_networks``)."""

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")


class AddressRefused(OSError):
    """A host resolved to an address web fetch may not connect to. An ``OSError``, so that aiohttp
    reports it as a failed lookup; the fetcher finds it in the exception chain."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolves to an address that is not public")
        self.host = host


def parse_address(text: str) -> IPAddress | None:
    """The IP address ``text`` writes (an IPv6 zone such as ``%eth0`` is ignored), or None."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_address(address: IPAddress | str) -> bool:
    """True for every address that is not a public unicast address (see the module's list)."""
    ip = parse_address(address) if isinstance(address, str) else address
    if ip is None:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return forbidden_address(inner)
    if any(ip in network for network in FORBIDDEN_NETWORKS if network.version == ip.version):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_link_local


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and passes on only hosts whose every address may be fetched."""

    def __init__(self, inner: AbstractResolver, *, allow_private_networks: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private_networks

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise OSError(f"{host} has no address")
        if not self._allow_private and any(forbidden_address(result["host"]) for result in results):
            raise AddressRefused(host)
        return results

    async def close(self) -> None:
        await self._inner.close()

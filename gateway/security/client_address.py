"""Which address a request comes from, for limits keyed by source.

`X-Forwarded-For` is written by whoever sends the request, so it is believed only
when the peer that connected is one of the configured proxies (an Ingress, a load
balancer). The header is read from the right: each trusted proxy appended the
address it saw, and the first address that is not a trusted proxy is the client.
With no proxies configured (the default) the header is ignored altogether, so a
caller cannot pick a fresh address per request to escape a limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (`10.0.0.0/8`, `2001:db8::/32`, or one address) as networks; ValueError names
    the first one that is not."""
    networks = []
    for text in cidrs:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class ClientAddresses:
    """Resolves the client's address from the peer and `X-Forwarded-For`."""

    def __init__(self, trusted_proxies: Sequence[Network] = ()) -> None:
        self.trusted = tuple(trusted_proxies)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address: the peer's, unless the peer is a trusted proxy."""
        if not peer:
            return UNKNOWN
        if not self.trusted:
            return peer  # without proxies the peer is the client; no need to parse it
        current = _address(peer)
        if current is None or not self._trusted(current):
            return peer
        hops = [hop for hop in (forwarded_for or "").split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Garbage from before the first trusted proxy: the last good address
                # is the best that is known.
                break
            current = address
            if not self._trusted(address):
                break
        return str(current)


def grpc_peer_host(peer: str | None) -> str:
    """The address of a gRPC peer (`ipv4:10.0.0.5:41234`, `ipv6:[::1]:5000`)."""
    if not peer:
        return UNKNOWN
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:].partition("]")[0] or UNKNOWN
    if kind == "ipv4":
        return rest.rpartition(":")[0] or UNKNOWN
    return peer

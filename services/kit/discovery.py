"""Where peers live.

The seam every outbound call goes through. Today: static addresses from config.
A later issue adds Consul and Kubernetes DNS behind the same `Discovery` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from services.kit.errors import Unavailable


class Discovery(Protocol):
    def resolve(self, service: str) -> str:
        """Return a gRPC target (host:port or a resolver URI) for a service name."""
        ...


class StaticDiscovery:
    """Addresses given in configuration, for example {"map": "127.0.0.1:50051"}."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self._addresses = dict(addresses)

    def resolve(self, service: str) -> str:
        try:
            return self._addresses[service]
        except KeyError:
            raise Unavailable(f"no address configured for service {service!r}") from None

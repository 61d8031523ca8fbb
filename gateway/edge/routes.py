"""Which methods the edge forwards, to which component, needing which scope.

Read from the platform's table of components (`services/kit/components.py`) and the
scope each method's contract declares (`services/kit/scopes.py`), the same table the
services enforce; so a new RPC is reachable at the edge, with the same scope, as
soon as its contract declares it. There is no per-method code here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pool

from services.kit.components import COMPONENTS
from services.kit.scopes import method_scopes


@dataclass(frozen=True)
class Route:
    """One forwarded method: `/pkg.Service/Method` on `component`."""

    method: str
    service: str
    component: str
    scope: str  # "" : any authenticated caller; the domain decides what it sees
    server_streaming: bool


def load_contract(service_name: str) -> None:
    """Put a service's descriptors in the pool: `grassroots.map.v1.MapService` lives in
    `grassroots.map.v1.map_service_pb2`, as buf generates it."""
    package, _, service = service_name.rpartition(".")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", service).lower()
    importlib.import_module(f"{package}.{snake}_pb2")


def public_routes() -> dict[str, Route]:
    """Every unary and server-streaming method of the components, by full method path.

    A method whose contract declares no scope is left out (UNIMPLEMENTED at the
    edge), as the services refuse it too.
    """
    pool = descriptor_pool.Default()
    routes: dict[str, Route] = {}
    for component in COMPONENTS.values():
        for service_name in component.service_names:
            load_contract(service_name)
        for method, scope in method_scopes(*component.service_names).items():
            service_name, _, name = method[1:].partition("/")
            descriptor = pool.FindServiceByName(service_name).methods_by_name[name]
            if descriptor.client_streaming:
                continue  # the platform has none; the proxy forwards one request per call
            routes[method] = Route(
                method, service_name, component.name, scope, descriptor.server_streaming
            )
    return routes


def public_services(routes: Mapping[str, Route]) -> tuple[str, ...]:
    """The gRPC services the edge offers (for reflection and health)."""
    return tuple(sorted({route.service for route in routes.values()}))

"""Start and stop the edge: the proxy, its own health, and reflection of the public services."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from gateway.auth import Guard
from gateway.edge.proxy import EdgeProxy
from gateway.edge.routes import public_routes, public_services
from gateway.edge.settings import EdgeSettings
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from services.kit.client import CHANNEL_OPTIONS
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.server import SERVER_OPTIONS, RunningServer

log = logging.getLogger("grassroots.edge")

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass
class RunningEdge:
    """A started edge; `stop()` drains calls, then closes the component channels."""

    server: RunningServer
    upstreams: Upstreams
    guard: Guard
    forwarding: tuple[grpc.aio.Channel, ...]

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop()
        await self.guard.limiter.close()
        await self.upstreams.close()
        for channel in self.forwarding:
            await channel.close()


async def start_edge(
    settings: EdgeSettings, gateway: GatewaySettings, *, fixed_caller: Caller | None = None
) -> RunningEdge:
    """The edge on `settings.host:grpc_port` (0: any free port). `fixed_caller`: benchmarks."""
    upstreams = Upstreams(StaticDiscovery(gateway.addresses()), NAMES, gateway.call_timeout_seconds)
    guard = Guard.from_settings(gateway, fixed_caller)
    guard.connect(upstreams, gateway)
    routes = public_routes()
    # Forwarding has channels of its own, without the kit's client interceptors: the
    # proxy sets deadline, principal and request id itself, and Python interceptors
    # would cost more than the rest of the hop.
    forwarding = {
        name: grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        for name, address in gateway.addresses().items()
    }
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(
        (EdgeProxy(routes, guard, forwarding, gateway.call_timeout_seconds),)
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    services = public_services(routes)
    reflection.enable_server_reflection(
        (*services, HEALTH_SERVICE, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    if port == 0:
        raise SystemExit(f"edge: cannot bind {settings.host}:{settings.grpc_port}")
    await server.start()
    for name in ("", *services):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("edge serving on %s:%d", settings.host, port, extra={"grpc_port": port})
    running = RunningServer(server, health, port, settings.grace_seconds)
    return RunningEdge(running, upstreams, guard, tuple(forwarding.values()))

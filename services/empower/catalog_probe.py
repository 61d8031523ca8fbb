"""What a running component says about itself: its services and methods by gRPC server
reflection, and its health by the standard health check."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.empower.domain.catalog import ComponentFacts, GrpcService
from services.kit.client import open_channel

# Services every component serves for the platform, not for villages.
_PLATFORM_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")


class ReflectionProbe:
    """Asks each configured component; one not configured or down is UNAVAILABLE."""

    def __init__(self, addresses: dict[str, str], timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.channels = {
            name: open_channel(address, default_timeout=timeout)
            for name, address in addresses.items()
            if address
        }

    async def describe(self, component: str) -> ComponentFacts:
        channel = self.channels.get(component)
        if channel is None:
            return ComponentFacts(health="NOT_CONFIGURED")
        try:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=self.timeout
            )
            services = await self._services(channel)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            unreachable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return ComponentFacts(health="UNAVAILABLE" if unreachable else code.name)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        return ComponentFacts(services=services, health=status)

    async def _services(self, channel: grpc.aio.Channel) -> tuple[GrpcService, ...]:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(timeout=self.timeout)
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await call.read()
        names = [
            s.name
            for s in listed.list_services_response.service
            if not s.name.startswith(_PLATFORM_SERVICES)
        ]
        found: list[GrpcService] = []
        for name in names:
            await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=name))
            answer = await call.read()
            methods: tuple[str, ...] = ()
            for raw in answer.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                for service in proto.service:
                    if f"{proto.package}.{service.name}" == name:
                        methods = tuple(m.name for m in service.method)
            found.append(GrpcService(name, methods))
        await call.done_writing()
        return tuple(found)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

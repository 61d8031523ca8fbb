"""gRPC channels and stubs to the five components, and their health."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.deadlines import NoteTimeouts
from gateway.usage import counters
from grassroots.command.v1 import command_service_pb2_grpc, plans_service_pb2_grpc
from grassroots.empower.v1 import (
    catalog_service_pb2_grpc,
    credit_service_pb2_grpc,
    datasets_service_pb2_grpc,
    empower_service_pb2_grpc,
    forms_service_pb2_grpc,
    identity_service_pb2_grpc,
    notices_service_pb2_grpc,
    people_service_pb2_grpc,
    points_service_pb2_grpc,
)
from grassroots.events.v1 import events_service_pb2_grpc
from grassroots.map.v1 import map_service_pb2_grpc
from grassroots.twin.v1 import twin_service_pb2_grpc
from services.kit.client import open_channel
from services.kit.discovery import Discovery


class Upstreams:
    """One channel per component, opened once and shared by every request."""

    def __init__(self, discovery: Discovery, names: tuple[str, ...], timeout: float) -> None:
        self.channels: dict[str, grpc.aio.Channel] = {
            name: open_channel(
                discovery.resolve(name),
                default_timeout=timeout,
                interceptors=[*counters(name), NoteTimeouts(name)],
            )
            for name in names
        }
        self.map = map_service_pb2_grpc.MapServiceStub(self.channels["map"])
        self.events = events_service_pb2_grpc.EventsServiceStub(self.channels["events"])
        self.command = command_service_pb2_grpc.CommandServiceStub(self.channels["command"])
        self.plans = plans_service_pb2_grpc.PlansServiceStub(self.channels["command"])
        self.twin = twin_service_pb2_grpc.TwinServiceStub(self.channels["twin"])
        self.empower = empower_service_pb2_grpc.EmpowerServiceStub(self.channels["empower"])
        self.identity = identity_service_pb2_grpc.IdentityServiceStub(self.channels["empower"])
        self.people = people_service_pb2_grpc.PeopleServiceStub(self.channels["empower"])
        self.forms = forms_service_pb2_grpc.FormsServiceStub(self.channels["empower"])
        self.points = points_service_pb2_grpc.PointsServiceStub(self.channels["empower"])
        self.credit = credit_service_pb2_grpc.CreditServiceStub(self.channels["empower"])
        self.notices = notices_service_pb2_grpc.NoticesServiceStub(self.channels["empower"])
        self.datasets = datasets_service_pb2_grpc.DatasetsServiceStub(self.channels["empower"])
        self.catalog = catalog_service_pb2_grpc.CatalogServiceStub(self.channels["empower"])
        self._health = {
            name: health_pb2_grpc.HealthStub(channel) for name, channel in self.channels.items()
        }

    async def health(self, deadline_seconds: float) -> Mapping[str, str]:
        """Every component's health status name; unreachable ones report UNAVAILABLE."""

        async def check(name: str) -> tuple[str, str]:
            try:
                response = await self._health[name].Check(
                    health_pb2.HealthCheckRequest(), timeout=deadline_seconds
                )
            except grpc.aio.AioRpcError as exc:
                return name, exc.code().name
            return name, health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

        results = await asyncio.gather(*(check(name) for name in self.channels))
        return dict(results)

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

"""The map service as the events domain's Locator, over gRPC."""

from __future__ import annotations

import grpc

from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.type.v1 import geo_pb2
from services.events.domain.model import GridPlace, Point
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.principal import Principal
from services.kit.status import domain_error_from

SUBJECT = "services/events"


class MapLocator:
    """Asks the map service where a point is, as the events service itself.

    Locating a report is the events service's work, not the caller's: a resident may
    report (`events:write`) without reading the map, so the call carries a service
    principal for the report's tenant with `map:read` only.
    """

    def __init__(self, target: str, timeout: float) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = map_grpc.MapServiceStub(self.channel)
        self._principals: dict[str, Principal] = {}

    def _as_service(self, parent: str) -> Principal:
        """One principal per tenant, so it is signed once, not per call."""
        found = self._principals.get(parent)
        if found is None:
            if len(self._principals) > 10_000:
                self._principals.clear()
            found = self._principals[parent] = Principal(
                SUBJECT, parent, "service", scopes=frozenset({"map:read"})
            )
        return found

    async def locate_many(self, parent: str, points: list[Point]) -> list[GridPlace | None]:
        """One LocatePoints call for a whole batch: no call per report."""
        request = map_pb.LocatePointsRequest(
            parent=tenancy.tenant_name(parent),
            points=geo_pb2.CoordinateArrays(
                longitudes=[p.longitude for p in points],
                latitudes=[p.latitude for p in points],
                crs="EPSG:4326",
            ),
        )
        try:
            response = await self.stub.LocatePoints(
                request, metadata=self._as_service(parent).to_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "map") from None
        return [
            GridPlace(loc.village, loc.grid_cell, loc.grid_worker) if loc.found else None
            for loc in response.locations
        ]

    async def close(self) -> None:
        await self.channel.close()

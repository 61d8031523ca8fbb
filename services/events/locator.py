"""The map service as the events domain's Locator, over gRPC."""

from __future__ import annotations

import grpc

from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.type.v1 import geo_pb2
from services.events.domain.model import GridPlace, Point
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.status import domain_error_from


class MapLocator:
    """Asks the map service where a point is; the caller's principal goes along."""

    def __init__(self, target: str, timeout: float) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = map_grpc.MapServiceStub(self.channel)

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
            response = await self.stub.LocatePoints(request)
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "map") from None
        return [
            GridPlace(loc.village, loc.grid_cell, loc.grid_worker) if loc.found else None
            for loc in response.locations
        ]

    async def close(self) -> None:
        await self.channel.close()

"""gRPC adapter of the map service: messages in, domain calls, messages out."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from services.kit import geo as crs
from services.kit import tenancy
from services.kit.component import ServiceComponent
from services.kit.context import current_principal
from services.kit.errors import InvalidArgument, NotFound, Unauthenticated
from services.kit.unimplemented import fill_unimplemented
from services.map.domain.grid import GridIndex

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MapService"].full_name


class MapServicer(pb_grpc.MapServiceServicer):
    def __init__(self, index: GridIndex, max_batch: int) -> None:
        self.index = index
        self.max_batch = max_batch

    async def LocatePoints(
        self, request: pb.LocatePointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.LocatePointsResponse:
        principal = current_principal()
        if principal is None:
            raise Unauthenticated("no principal")
        scope = tenancy.parse_parent(request.parent)
        if not principal.can_see(scope):
            raise NotFound(f"tenant {request.parent!r} not found")
        points = request.points
        n = len(points.longitudes)
        if n != len(points.latitudes):
            raise InvalidArgument.field(
                "points.latitudes",
                f"has {len(points.latitudes)} values but points.longitudes has {n}",
            )
        if n > self.max_batch:
            raise InvalidArgument.field(
                "points", f"{n} points exceed the limit of {self.max_batch} per call"
            )
        lon = np.asarray(points.longitudes, dtype=np.float64)
        lat = np.asarray(points.latitudes, dtype=np.float64)
        crs.check_ranges(lon, lat, "points.longitudes", "points.latitudes")
        lon, lat = crs.to_storage(lon, lat, points.crs, "points.crs")
        found = self.index.locate(lon, lat, scope)
        return pb.LocatePointsResponse(locations=_to_messages(found.cell_index, found.cells))


def _to_messages(cell_index: np.ndarray, cells: Sequence) -> list[pb.PointLocation]:
    # One message per distinct cell, reused: building it is the costly part.
    cache: dict[int, pb.PointLocation] = {}
    not_found = pb.PointLocation(found=False)
    out = []
    for index in cell_index.tolist():
        if index < 0:
            out.append(not_found)
            continue
        message = cache.get(index)
        if message is None:
            cell = cells[index]
            message = pb.PointLocation(
                found=True,
                village=cell.village,
                grid_cell=cell.grid_cell_id,
                grid_worker=cell.grid_worker_id,
            )
            cache[index] = message
        out.append(message)
    return out


fill_unimplemented(MapServicer, SERVICE_NAME, "the map component (layers, features, OGC API)")


def build_component(index: GridIndex, max_batch: int) -> ServiceComponent:
    return ServiceComponent(
        [(MapServicer(index, max_batch), pb_grpc.add_MapServiceServicer_to_server)],
        [SERVICE_NAME],
    )

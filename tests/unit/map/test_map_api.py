"""LocatePoints over real gRPC."""

from __future__ import annotations

import grpc
import pytest
import shapely

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING, principal_of


def request(lons, lats, crs="", parent=TOWN):
    return pb.LocatePointsRequest(
        parent=tenancy.tenant_name(parent),
        points=geo_pb2.CoordinateArrays(longitudes=lons, latitudes=lats, crs=crs),
    )


def md(tenant=TOWN):
    return principal_of(tenant).to_metadata()


async def test_locates_a_batch_in_order(map_server, grid_index):
    points = shapely.point_on_surface(grid_index.polygons[:5])
    lons = [*shapely.get_x(points).tolist(), 0.0]
    lats = [*shapely.get_y(points).tolist(), 0.0]
    stub = pb_grpc.MapServiceStub(map_server.channel)
    response = await stub.LocatePoints(request(lons, lats, "EPSG:4490"), metadata=md())
    assert [loc.grid_cell for loc in response.locations[:5]] == [
        c.grid_cell_id for c in grid_index.cells[:5]
    ]
    assert [loc.grid_worker for loc in response.locations[:5]] == [
        c.grid_worker_id for c in grid_index.cells[:5]
    ]
    assert not response.locations[5].found


@pytest.mark.parametrize(
    ("lons", "lats", "crs", "field"),
    [
        ([121.1], [31.2, 31.3], "", "points.latitudes"),
        ([121.1, 121.2], [31.2, 91.0], "", "points.latitudes[1]"),
        ([200.0], [31.2], "", "points.longitudes[0]"),
        ([float("nan")], [31.2], "", "points.longitudes[0]"),
        ([121.1], [31.2], "EPSG:999999", "points.crs"),
    ],
)
async def test_bad_points_name_the_field(map_server, lons, lats, crs, field):
    stub = pb_grpc.MapServiceStub(map_server.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.LocatePoints(request(lons, lats, crs), metadata=md())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure_of(info.value).violations] == [field]


async def test_batch_over_the_cap_is_refused(map_server):
    stub = pb_grpc.MapServiceStub(map_server.channel)
    n = 100_001
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.LocatePoints(request([121.1] * n, [31.2] * n), metadata=md())
    assert [v.field for v in failure_of(info.value).violations] == ["points"]


async def test_a_village_cannot_locate_in_the_town_or_a_neighbour(map_server, grid_index):
    stub = pb_grpc.MapServiceStub(map_server.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.LocatePoints(request([121.1], [31.2], parent=TOWN), metadata=md(XINGMING))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    index = next(i for i, c in enumerate(grid_index.cells) if c.village == XIANGYANG)
    point = shapely.point_on_surface(grid_index.polygons[index])
    response = await stub.LocatePoints(
        request([point.x], [point.y], parent=XINGMING), metadata=md(XINGMING)
    )
    assert not response.locations[0].found

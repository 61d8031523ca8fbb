"""Grid workers' names are people's names: callers without `people:read` (an app key
with only map scopes, say) see them masked, in locations and in grid-cell features."""

from __future__ import annotations

import grpc
import pytest
import shapely

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.masking import mask_name
from services.kit.status import failure_of
from tests.conftest import COMPONENT_SCOPES, TOWN, XINGMING, SignedAtCall, principal_of

WITHOUT = SignedAtCall(principal_of(TOWN))
WITH = SignedAtCall(principal_of(TOWN, scopes=COMPONENT_SCOPES | {"people:read"}))
GRID_CELLS = f"{tenancy.tenant_name(XINGMING)}/layers/grid-cells"


async def _locate(map_server, grid_index, metadata):  # type: ignore[no-untyped-def]
    points = shapely.point_on_surface(grid_index.polygons[:3])
    response = await pb_grpc.MapServiceStub(map_server.channel).LocatePoints(
        pb.LocatePointsRequest(
            parent=tenancy.tenant_name(TOWN),
            points=geo_pb2.CoordinateArrays(
                longitudes=shapely.get_x(points).tolist(), latitudes=shapely.get_y(points).tolist()
            ),
        ),
        metadata=metadata,
    )
    return [loc.grid_worker_name for loc in response.locations]


async def test_located_grid_workers_are_masked_without_the_people_scope(map_server, grid_index):
    names = [cell.grid_worker_name for cell in grid_index.cells[:3]]

    assert await _locate(map_server, grid_index, WITH) == names
    masked = await _locate(map_server, grid_index, WITHOUT)
    assert masked == [mask_name(n) for n in names]
    assert all(m != n and "*" in m for m, n in zip(masked, names, strict=True))
    # Full names again afterwards: the masked answer is kept apart, not instead.
    assert await _locate(map_server, grid_index, WITH) == names


async def _names_listed(map_server, metadata, filter_text=""):  # type: ignore[no-untyped-def]
    page = await pb_grpc.MapServiceStub(map_server.channel).ListFeatures(
        pb.ListFeaturesRequest(parent=GRID_CELLS, page_size=5, filter=filter_text),
        metadata=metadata,
    )
    return [f.properties["grid_worker_name"] for f in page.features]


async def test_grid_cell_features_mask_the_worker_without_the_people_scope(map_server):
    full = await _names_listed(map_server, WITH)
    masked = await _names_listed(map_server, WITHOUT)

    assert len(full) == 5 and masked == [mask_name(n) for n in full]
    assert not set(full) & set(masked)


async def test_a_masked_name_cannot_be_found_out_by_filtering(map_server):
    full = (await _names_listed(map_server, WITH))[0]
    assert await _names_listed(map_server, WITH, f'grid_worker_name = "{full}"') == [full]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _names_listed(map_server, WITHOUT, f'grid_worker_name = "{full}"')

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure_of(refused.value).violations] == ["filter"]

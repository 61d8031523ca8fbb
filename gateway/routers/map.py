"""REST for the map component."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from gateway.auth import call_metadata, principal
from gateway.errors import call
from gateway.schemas.map import LocateRequest, LocateResponse, PointLocationOut
from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/map", tags=["map"])


@router.post("/locate", response_model=LocateResponse, summary="Locate points in grid cells")
async def locate_points(
    body: LocateRequest, request: Request, who: Annotated[Principal, Depends(principal)]
) -> LocateResponse:
    """For each point: its village, grid cell and grid worker, in input order."""
    rpc = request.app.state.upstreams.map.LocatePoints(
        pb.LocatePointsRequest(
            parent=tenancy.tenant_name(who.tenant),
            points=geo_pb2.CoordinateArrays(
                longitudes=body.longitudes, latitudes=body.latitudes, crs=body.crs
            ),
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return LocateResponse(
        locations=[
            PointLocationOut(
                found=True,
                village=loc.village,
                grid_cell=loc.grid_cell,
                grid_worker=loc.grid_worker,
            )
            if loc.found
            else PointLocationOut(found=False)
            for loc in response.locations
        ]
    )

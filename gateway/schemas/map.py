"""JSON shapes of the map API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_REST_LOCATE = 10_000


class LocateRequest(BaseModel):
    """Points as parallel arrays, like the gRPC call, so large batches stay cheap."""

    model_config = ConfigDict(extra="forbid", strict=True)

    longitudes: list[float] = Field(..., min_length=1, max_length=MAX_REST_LOCATE)
    latitudes: list[float] = Field(..., min_length=1, max_length=MAX_REST_LOCATE)
    crs: str = Field("EPSG:4326", max_length=32)


class PointLocationOut(BaseModel):
    found: bool
    village: str | None = None
    grid_cell: str | None = None
    grid_worker: str | None = None


class LocateResponse(BaseModel):
    locations: list[PointLocationOut]

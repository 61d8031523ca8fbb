"""JSON shapes of the map API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import CRS_DESCRIPTION, FILTER_FIELDS_DESCRIPTION
from gateway.schemas.contract import limited
from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.type.v1 import geo_pb2

MAX_REST_LOCATE = 10_000

LayerKindName = Literal[
    "admin_boundary", "grid_cell", "building", "parcel", "poi", "route", "geofence", "other"
]
FieldTypeName = Literal["string", "integer", "number", "boolean", "date"]
SensitivityName = Literal["public", "internal", "sensitive"]
GeometryTypeName = Literal[
    "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "Geometry"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LocateRequest(_Strict):
    """Points as parallel arrays, like the gRPC call, so large batches stay cheap."""

    longitudes: list[float] = Field(..., min_length=1, max_length=MAX_REST_LOCATE)
    latitudes: list[float] = Field(..., min_length=1, max_length=MAX_REST_LOCATE)
    crs: str = limited(geo_pb2.CoordinateArrays, "crs", "EPSG:4326", description=CRS_DESCRIPTION)


class PointLocationOut(BaseModel):
    found: bool
    village: str | None = None
    grid_cell: str | None = None
    grid_worker: str | None = None
    grid_worker_name: str | None = None


class LocateResponse(BaseModel):
    locations: list[PointLocationOut]


class TransformRequest(_Strict):
    longitudes: list[float] = Field(..., min_length=1, max_length=MAX_REST_LOCATE)
    latitudes: list[float] = Field(..., min_length=1, max_length=MAX_REST_LOCATE)
    crs: str = limited(geo_pb2.CoordinateArrays, "crs", "EPSG:4326", description=CRS_DESCRIPTION)
    target_crs: str = limited(
        pb.TransformCoordinatesRequest, "target_crs", description=CRS_DESCRIPTION
    )


class TransformResponse(BaseModel):
    longitudes: list[float]
    latitudes: list[float]
    crs: str


class FieldSpecIn(_Strict):
    name: str = limited(pb.FieldSpec, "name")
    type: FieldTypeName
    required: bool = False
    description: str = limited(pb.FieldSpec, "description", "")


class LayerCreate(_Strict):
    layer_id: str = limited(pb.CreateLayerRequest, "layer_id", examples=["hydrants"])
    display_name: str = limited(pb.Layer, "display_name")
    kind: LayerKindName
    geometry_type: GeometryTypeName
    fields: list[FieldSpecIn] = limited(pb.Layer, "fields", [])
    sensitivity: SensitivityName = "internal"
    shared: bool = False


class LayerOut(BaseModel):
    name: str
    tenant: str
    layer_id: str
    display_name: str
    kind: LayerKindName
    geometry_type: str
    fields: list[FieldSpecIn]
    sensitivity: SensitivityName
    shared: bool
    feature_count: int
    extent: list[float] | None
    create_time: str | None
    update_time: str | None


class LayerList(BaseModel):
    layers: list[LayerOut]
    next_page_token: str = ""


class ImportOut(BaseModel):
    layer: LayerOut
    imported_count: int
    repaired_count: int


class DistanceQueryIn(_Strict):
    geometry: dict[str, Any]
    distance_meters: float = limited(pb.DistanceQuery, "distance_meters")


class PointIn(_Strict):
    longitude: float
    latitude: float


class NearestQueryIn(_Strict):
    point: PointIn
    k: int = limited(pb.NearestQuery, "k")
    max_distance_meters: float = limited(pb.NearestQuery, "max_distance_meters", 0)


class SearchRequest(_Strict):
    """Exactly one of intersects, within_distance, nearest."""

    intersects: dict[str, Any] | None = None
    within_distance: DistanceQueryIn | None = None
    nearest: NearestQueryIn | None = None
    crs: str = limited(
        geo_pb2.Geometry, "crs", "", description="of the query geometry: " + CRS_DESCRIPTION
    )
    response_crs: str = limited(
        pb.SearchFeaturesRequest,
        "response_crs",
        "",
        description="of the answer: " + CRS_DESCRIPTION,
    )
    filter: str = limited(
        pb.SearchFeaturesRequest, "filter", "", description=FILTER_FIELDS_DESCRIPTION
    )
    page_size: int = Field(100, ge=1, le=10_000)
    page_token: str = Field("", max_length=512)


class GridCellCountOut(BaseModel):
    grid_cell: str
    village: str
    count: int


class GridCellCounts(BaseModel):
    counts: list[GridCellCountOut]

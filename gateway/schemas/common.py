"""Shapes shared by several components."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.contract import limited
from grassroots.type.v1 import geo_pb2

CRS_DESCRIPTION = (
    "EPSG:4326 (WGS84, the default), EPSG:4490 (CGCS2000), any other EPSG code such as "
    "EPSG:4549 (CGCS2000 Gauss-Kruger), GCJ-02 (AMap, Tencent maps) or BD-09 (Baidu maps)"
)
FILTER_FIELDS_DESCRIPTION = (
    'equality terms on the layer\'s declared fields joined by AND: field = "value"'
)


class GeoPointIn(BaseModel):
    """A point as a phone or a GIS sends it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    longitude: float = Field(..., ge=-180, le=180, examples=[121.1605])
    latitude: float = Field(..., ge=-90, le=90, examples=[31.2903])
    crs: str = limited(
        geo_pb2.GeoPoint, "crs", "EPSG:4326", description=CRS_DESCRIPTION, examples=["GCJ-02"]
    )


class GeoPointOut(BaseModel):
    longitude: float
    latitude: float
    crs: str

"""Shapes shared by several components."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GeoPointIn(BaseModel):
    """A point as a phone or a GIS sends it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    longitude: float = Field(..., ge=-180, le=180, examples=[121.1605])
    latitude: float = Field(..., ge=-90, le=90, examples=[31.2903])
    crs: str = Field("EPSG:4326", max_length=32, description="EPSG:4326 or EPSG:4490")


class GeoPointOut(BaseModel):
    longitude: float
    latitude: float
    crs: str

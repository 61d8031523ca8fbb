"""Shapes shared by several components."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from gateway.schemas.contract import limited
from grassroots.type.v1 import geo_pb2
from services.kit.errors import InvalidArgument
from services.kit.timestamps import parse_time

# RFC 3339's date-time: a full date, `T`, a full time with seconds, and an offset.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
RFC3339_DESCRIPTION = (
    "RFC 3339 with an offset, e.g. 2026-12-01T09:00:00+08:00 or 2026-12-01T01:00:00Z"
)


def rfc3339_time(value: object, field: str) -> datetime:
    """A time a caller sent, in UTC: RFC 3339 text with an offset (`Z` or `+08:00`) between
    the years 1000 and 8999. A time without an offset, a date alone or a unix time is
    INVALID_ARGUMENT on `field`: read as UTC it would be eight hours off in China."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        shown = repr(value)[:40]
        raise InvalidArgument.field(
            field,
            f"needs an RFC 3339 time with an offset, e.g. 2026-12-01T09:00:00+08:00, not {shown}",
        )
    return parse_time(value.upper(), field, what=field)  # RFC 3339 allows `t` and `z`


def _time_in(value: object, info: Any) -> datetime:
    try:
        return rfc3339_time(value, info.field_name or "time")
    except InvalidArgument as exc:
        raise PydanticCustomError("rfc3339_time", exc.violations[0].description) from None


# Every time in a request body or query: the one way the gateway reads one. FastAPI's
# own `datetime` would take a zone-less time, a date alone or a unix time as UTC.
Rfc3339Time = Annotated[
    datetime,
    BeforeValidator(_time_in),
    WithJsonSchema({"type": "string", "format": "date-time", "description": RFC3339_DESCRIPTION}),
]

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

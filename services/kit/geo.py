"""Coordinate reference systems every service accepts at the edge, and the storage CRS.

Storage is WGS84 (EPSG:4326). CGCS2000 (EPSG:4490) differs from WGS84 by a few
centimetres, far below what a grid lookup can resolve, so it is taken as is. The
phone-map offsets (GCJ-02, BD-09) and arbitrary EPSG codes arrive with the map
component's CRS work.
"""

from __future__ import annotations

import numpy as np

from services.kit.errors import InvalidArgument

STORAGE_CRS = "EPSG:4326"
_SAME_AS_STORAGE = {"", "EPSG:4326", "EPSG:4490", "WGS84", "CRS84", "OGC:CRS84"}
SUPPORTED = ("EPSG:4326", "EPSG:4490")


def normalise_crs(crs: str, field: str = "crs") -> str:
    key = crs.strip().upper()
    if key in _SAME_AS_STORAGE:
        return STORAGE_CRS
    raise InvalidArgument.field(
        field, f"unsupported CRS {crs!r}; supported: {', '.join(SUPPORTED)}"
    )


def to_storage(
    lon: np.ndarray, lat: np.ndarray, crs: str, field: str = "crs"
) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates to the storage CRS (a no-op for the CRSs accepted today)."""
    normalise_crs(crs, field)
    return lon, lat


def check_ranges(lon: np.ndarray, lat: np.ndarray, lon_field: str, lat_field: str) -> None:
    """Reject the first out-of-range or non-finite coordinate, naming its index."""
    bad_lat = np.flatnonzero(~np.isfinite(lat) | (lat < -90) | (lat > 90))
    if bad_lat.size:
        i = int(bad_lat[0])
        raise InvalidArgument.field(f"{lat_field}[{i}]", f"latitude {lat[i]} is not in [-90, 90]")
    bad_lon = np.flatnonzero(~np.isfinite(lon) | (lon < -180) | (lon > 180))
    if bad_lon.size:
        i = int(bad_lon[0])
        raise InvalidArgument.field(
            f"{lon_field}[{i}]", f"longitude {lon[i]} is not in [-180, 180]"
        )

"""Distances in metres on the ground, not in degrees.

Near a point, longitude and latitude scale to metres by the WGS84 radii of
curvature at that latitude; within a few kilometres this local plane is accurate to
centimetres, which is all a "within 200 m of the alarm" question needs. Farther,
an azimuthal equidistant projection centred on the query is used instead.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer

LOCAL_PLANE_LIMIT_M = 5_000.0


def metres_per_degree(latitude: float) -> tuple[float, float]:
    """(metres per degree of longitude, of latitude) on WGS84 at `latitude`."""
    phi = math.radians(latitude)
    per_lat = 111_132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    per_lon = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return per_lon, per_lat


def degree_margin(latitude: float, metres: float) -> tuple[float, float]:
    """How many degrees (lon, lat) cover `metres` at `latitude`, with a safety margin."""
    per_lon, per_lat = metres_per_degree(latitude)
    return metres / max(per_lon, 1e-6) * 1.01, metres / per_lat * 1.01


@lru_cache(maxsize=256)
def _aeqd(lon0: float, lat0: float) -> Transformer:
    return Transformer.from_crs(
        "EPSG:4326",
        f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m",
        always_xy=True,
    )


def to_local_metres(geometries: np.ndarray, lon0: float, lat0: float, reach_m: float) -> np.ndarray:
    """Geometries in a plane in metres centred on (lon0, lat0)."""
    if reach_m <= LOCAL_PLANE_LIMIT_M:
        per_lon, per_lat = metres_per_degree(lat0)
        scale = np.array([per_lon, per_lat])
        origin = np.array([lon0, lat0])
        return shapely.transform(geometries, lambda xy: (xy - origin) * scale)
    transformer = _aeqd(round(lon0, 4), round(lat0, 4))

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, project)

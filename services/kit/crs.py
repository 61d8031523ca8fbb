"""Coordinate reference systems: name them one way, store everything in WGS84.

Village data arrives in whatever the source used: WGS84 from GPS, CGCS2000 Gauss-Kruger
from land surveys, GCJ-02 from AMap/Tencent and BD-09 from Baidu. Everything is stored
as WGS84 lon/lat (EPSG:4326), so a point entered from any map lands in the same place.

All functions take and return numpy arrays and work on the whole batch at once. x/y are
always "lon, lat" for geographic CRSs (pyproj's always_xy order), whatever the EPSG
axis order says.

GCJ-02 and BD-09 are not EPSG systems: they are deliberate, closed-form offsets of
WGS84. The forward formulas are the widely published ones (eviltransform,
coordtransform); the inverses are not closed-form, so they are solved by fixed-point
iteration to well under a centimetre instead of the one-step approximation
(about 1-2 m off for GCJ-02, about 0.2 m for BD-09) that those libraries return.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pyproj
from pyproj.exceptions import CRSError, ProjError

from services.kit.errors import InvalidArgument

STORAGE_CRS = "EPSG:4326"
GCJ02 = "GCJ-02"
BD09 = "BD-09"

# CGCS2000 differs from WGS84 by centimetres; PROJ itself only has a "ballpark" (no-op)
# operation between them, so skipping pyproj is exact with respect to PROJ too.
_WGS84_ALIASES = frozenset({STORAGE_CRS, "EPSG:4490"})

_ALIASES = {
    "": STORAGE_CRS,
    "WGS84": STORAGE_CRS,
    "WGS-84": STORAGE_CRS,
    "CRS84": STORAGE_CRS,
    "OGC:CRS84": STORAGE_CRS,
    "HTTP://WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84": STORAGE_CRS,
    "HTTPS://WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84": STORAGE_CRS,
    "GCJ-02": GCJ02,
    "GCJ02": GCJ02,
    "BD-09": BD09,
    "BD09": BD09,
}
_EPSG_PATTERN = re.compile(r"(?:EPSG:|HTTPS?://WWW\.OPENGIS\.NET/DEF/CRS/EPSG/0/)(\d{1,9})")

# Published GCJ-02 constants: Krasovsky 1940 semi-major axis and its eccentricity squared.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
# BD-09 rotation/scale frequency.
_X_PI = math.pi * 3000.0 / 180.0
# The rough box inside which GCJ-02 applies its offset (eviltransform's outOfChina).
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)

# Inverse iterations stop when a step moves no point more than this many degrees
# (about 1e-5 m); the offsets' slopes are ~1e-3, so it takes 3-4 steps.
_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_ITERATIONS = 20

_GEOD = pyproj.Geod(ellps="WGS84")


def normalise_crs(crs: str, field: str = "crs") -> str:
    """Return the one canonical spelling so callers can compare and cache by name.

    Gives "EPSG:4326", "EPSG:<code>", "GCJ-02" or "BD-09"; an empty name means WGS84.
    Raises InvalidArgument naming `field` for anything else, including EPSG codes that
    PROJ does not know or that are not horizontal (vertical, geocentric, compound).
    """
    key = crs.strip().upper()
    alias = _ALIASES.get(key)
    if alias is not None:
        return alias
    match = _EPSG_PATTERN.fullmatch(key)
    if match is not None:
        code = int(match.group(1))
        if _epsg_crs(code) is not None:
            return f"EPSG:{code}"
    shown = crs if len(crs) <= 64 else crs[:61] + "..."
    raise InvalidArgument.field(
        field, f"unsupported CRS {shown!r}; use EPSG:<code>, GCJ-02 or BD-09"
    )


def to_storage(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert x/y in `crs` to WGS84 lon/lat, the storage CRS.

    Points PROJ cannot transform come back as inf, as pyproj returns them.
    """
    name = normalise_crs(crs)
    xs, ys = _as_arrays(x, y)
    if name in _WGS84_ALIASES:
        return xs.copy(), ys.copy()
    if name == GCJ02:
        return gcj02_to_wgs84(xs, ys)
    if name == BD09:
        return bd09_to_wgs84(xs, ys)
    lon, lat = _transformer(name, STORAGE_CRS).transform(xs, ys)
    return _as_arrays(lon, lat)


def from_storage(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert stored WGS84 lon/lat to x/y in `crs`, for clients that draw in that CRS."""
    name = normalise_crs(crs)
    lons, lats = _as_arrays(lon, lat)
    if name in _WGS84_ALIASES:
        return lons.copy(), lats.copy()
    if name == GCJ02:
        return wgs84_to_gcj02(lons, lats)
    if name == BD09:
        return wgs84_to_bd09(lons, lats)
    x, y = _transformer(STORAGE_CRS, name).transform(lons, lats)
    return _as_arrays(x, y)


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the published GCJ-02 offset; points outside China's box are unchanged."""
    lons, lats = _as_arrays(lon, lat)
    out_lon, out_lat = lons.copy(), lats.copy()
    inside = _in_china(lons, lats)
    dlon, dlat = _gcj02_delta(lons[inside], lats[inside])
    out_lon[inside] += dlon
    out_lat[inside] += dlat
    return out_lon, out_lat


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert the GCJ-02 offset by fixed-point iteration, wgs = gcj - delta(wgs).

    The one-step published inverse is 1-2 m off; this converges to ~1e-5 m.
    Points whose GCJ-02 position is outside China's box are unchanged.
    """
    lons, lats = _as_arrays(lon, lat)
    out_lon, out_lat = lons.copy(), lats.copy()
    inside = _in_china(lons, lats)
    g_lon, g_lat = lons[inside], lats[inside]

    def step(w_lon: np.ndarray, w_lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dlon, dlat = _gcj02_delta(w_lon, w_lat)
        return g_lon - dlon, g_lat - dlat

    out_lon[inside], out_lat[inside] = _fixed_point(step, g_lon, g_lat)
    return out_lon, out_lat


def gcj02_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply Baidu's published BD-09 offset on top of GCJ-02."""
    lons, lats = _as_arrays(lon, lat)
    z = np.hypot(lons, lats) + 0.00002 * np.sin(lats * _X_PI)
    theta = np.arctan2(lats, lons) + 0.000003 * np.cos(lons * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert BD-09: the published approximation, then refined by fixed-point iteration.

    The published inverse alone is up to ~0.2 m off; the refinement makes
    gcj -> bd -> gcj exact to ~1e-5 m.
    """
    b_lon, b_lat = _as_arrays(lon, lat)
    x = b_lon - 0.0065
    y = b_lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    start_lon, start_lat = z * np.cos(theta), z * np.sin(theta)

    def step(g_lon: np.ndarray, g_lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f_lon, f_lat = gcj02_to_bd09(g_lon, g_lat)
        return g_lon - (f_lon - b_lon), g_lat - (f_lat - b_lat)

    return _fixed_point(step, start_lon, start_lat)


def wgs84_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 to BD-09 via GCJ-02, the only way Baidu's offset is defined."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 to WGS84 via GCJ-02."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def check_ranges(x: np.ndarray, y: np.ndarray, x_field: str, y_field: str, crs: str) -> None:
    """Reject coordinates that cannot be a place, naming the first bad one.

    Geographic CRSs (in degrees) need finite lon in [-180, 180] and lat in [-90, 90];
    projected CRSs only need finite values, since their valid extent varies by zone.
    A bad x and y at the same index report the x field.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape:
        raise InvalidArgument.field(
            y_field, f"has {ys.size} values but {x_field} has {xs.size}; they must pair up"
        )
    xs, ys = xs.ravel(), ys.ravel()
    name = normalise_crs(crs)
    if _is_geographic_degrees(name):
        # Written as "not inside" so NaN, which compares false, counts as bad.
        bad_x = ~(np.abs(xs) <= 180.0)
        bad_y = ~(np.abs(ys) <= 90.0)
        x_why = "must be a finite longitude in [-180, 180]"
        y_why = "must be a finite latitude in [-90, 90]"
    else:
        bad_x = ~np.isfinite(xs)
        bad_y = ~np.isfinite(ys)
        x_why = y_why = "must be a finite number"
    bad = bad_x | bad_y
    if not bad.any():
        return
    i = int(np.argmax(bad))
    if bad_x[i]:
        raise InvalidArgument.field(f"{x_field}[{i}]", f"{x_why}, got {xs[i]!r}")
    raise InvalidArgument.field(f"{y_field}[{i}]", f"{y_why}, got {ys[i]!r}")


def check_in_china(lon: float, lat: float, lon_field: str, lat_field: str) -> None:
    """A WGS84 position the platform keeps (a handler's, a visit's) lies in China's
    bounding box, the same one GCJ-02 is applied in; anything else was sent in the wrong
    CRS (degrees labelled EPSG:3857) or by a phone somewhere else. Names the field."""
    if not _CHINA_LON[0] <= lon <= _CHINA_LON[1]:
        raise InvalidArgument.field(
            lon_field,
            f"must lie in China (longitude {_CHINA_LON[0]} to {_CHINA_LON[1]}), "
            f"got {lon:.6f} in WGS84; check the crs",
        )
    if not _CHINA_LAT[0] <= lat <= _CHINA_LAT[1]:
        raise InvalidArgument.field(
            lat_field,
            f"must lie in China (latitude {_CHINA_LAT[0]} to {_CHINA_LAT[1]}), "
            f"got {lat:.6f} in WGS84; check the crs",
        )


def ground_distance_m(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Geodesic distance on the WGS84 ellipsoid in metres, for tolerances in real units."""
    a_lon, a_lat, b_lon, b_lat = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2))
    )
    _, _, dist = _GEOD.inv(a_lon, a_lat, b_lon, b_lat)
    return np.asarray(dist, dtype=np.float64)


def _as_arrays(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return xs, ys


def _in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (
        (lon >= _CHINA_LON[0]) & (lon <= _CHINA_LON[1])
        & (lat >= _CHINA_LAT[0]) & (lat <= _CHINA_LAT[1])
    )  # fmt: skip


def _gcj02_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published GCJ-02 offset (degrees) at WGS84 lon/lat, without the China test."""
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * math.pi
    y_pi = y * math.pi
    shared = (20.0 * np.sin(6.0 * x_pi) + 20.0 * np.sin(2.0 * x_pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    d_lat += shared
    d_lat += (20.0 * np.sin(y_pi) + 40.0 * np.sin(y_pi / 3.0)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(y_pi / 12.0) + 320.0 * np.sin(y_pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    d_lon += shared
    d_lon += (20.0 * np.sin(x_pi) + 40.0 * np.sin(x_pi / 3.0)) * 2.0 / 3.0
    d_lon += (150.0 * np.sin(x_pi / 12.0) + 300.0 * np.sin(x_pi / 30.0)) * 2.0 / 3.0

    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _KRASOVSKY_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / (
        (_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi
    )
    d_lon = (d_lon * 180.0) / (_KRASOVSKY_A / sqrt_magic * np.cos(rad_lat) * math.pi)
    return d_lon, d_lat


_Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _fixed_point(step: _Step, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Iterate `step` over the whole batch until no point moves more than the tolerance."""
    for _ in range(_INVERSE_MAX_ITERATIONS):
        new_lon, new_lat = step(lon, lat)
        moved = np.maximum(np.abs(new_lon - lon), np.abs(new_lat - lat))
        lon, lat = new_lon, new_lat
        # Non-finite input never converges; it stays non-finite and must not block the rest.
        if not np.any(moved[np.isfinite(moved)] > _INVERSE_TOLERANCE_DEG):
            break
    return lon, lat


@lru_cache(maxsize=256)
def _epsg_crs(code: int) -> pyproj.CRS | None:
    """The EPSG CRS if PROJ knows it and it is horizontal (2D/3D geographic or projected)."""
    try:
        crs = pyproj.CRS.from_epsg(code)
    except CRSError:
        return None
    if crs.is_vertical or crs.is_compound or not (crs.is_geographic or crs.is_projected):
        return None
    # Some codes PROJ knows cannot be converted to WGS84 (EPSG:2301 has no usable
    # operation): refuse them here, by name, rather than fail later in a transform.
    try:
        pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)
        pyproj.Transformer.from_crs(STORAGE_CRS, crs, always_xy=True)
    except ProjError:
        return None
    return crs


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> pyproj.Transformer:
    # Transformer is thread-safe since pyproj 3.1, so one cached instance serves all threads.
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


@lru_cache(maxsize=256)
def _is_geographic_degrees(name: str) -> bool:
    if name in (GCJ02, BD09) or name in _WGS84_ALIASES:
        return True
    crs = _epsg_crs(int(name.removeprefix("EPSG:")))
    return (
        crs is not None
        and crs.is_geographic
        and all(axis.unit_name == "degree" for axis in crs.axis_info[:2])
    )

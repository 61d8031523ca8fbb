"""Geofence shapes: a map layer's features as one prepared geometry, tested against
many positions at once.

A layer is fetched once (see services/twin/map_layers.py) and kept; a rule's view of it
is the union of its features, widened by the rule's buffer, in a local metric frame
(an equirectangular projection about the layer's centre: within the few kilometres of
a village or town its error is far below a GPS fix's), prepared so that each batch of
positions is one vectorised `intersects_xy` call.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import shapely

from services.kit.layer_geometry import LayerGeometry

# Metres per degree of latitude, and of longitude at the equator.
_M_PER_DEG_LAT = 110_540.0
_M_PER_DEG_LON = 111_320.0


class LayerShape:
    """One layer, widened by one buffer, ready to test positions."""

    def __init__(self, geometry: LayerGeometry, buffer_m: float) -> None:
        self.layer = geometry.layer
        self.update_ms = geometry.update_ms
        self.buffer_m = buffer_m
        parts = [g for g in geometry.geometries if g is not None and not g.is_empty]
        if parts:
            west, south, east, north = shapely.total_bounds(np.asarray(parts, dtype=object))
            self._lon0, self._lat0 = (west + east) / 2, (south + north) / 2
        else:
            self._lon0 = self._lat0 = 0.0
        self._kx = _M_PER_DEG_LON * math.cos(math.radians(self._lat0))
        local = [shapely.transform(g, self._to_local) for g in parts]
        if buffer_m > 0:
            local = [shapely.buffer(g, buffer_m, quad_segs=4) for g in local]
        self.shape = shapely.union_all(local) if local else shapely.Polygon()
        shapely.prepare(self.shape)

    def _to_local(self, coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = np.empty_like(coords)
        out[:, 0] = (coords[:, 0] - self._lon0) * self._kx
        out[:, 1] = (coords[:, 1] - self._lat0) * _M_PER_DEG_LAT
        return out

    def covers(
        self, longitudes: npt.NDArray[np.float64], latitudes: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Per position, whether it lies on (inside or on the edge of) the layer's features."""
        x = (longitudes - self._lon0) * self._kx
        y = (latitudes - self._lat0) * _M_PER_DEG_LAT
        return np.asarray(shapely.intersects_xy(self.shape, x, y), dtype=bool)

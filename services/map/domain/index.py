"""A layer's features in memory with an STRtree: every read query is answered here.

Both storage backends load a layer into a `LayerIndex`; a write builds a new index
and swaps the reference, so readers never see a half-built one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import shapely

from services.kit.masking import mask_name
from services.map.domain.metric import degree_margin, metres_per_degree, to_local_metres
from services.map.domain.model import FeatureBatch


@dataclass(frozen=True)
class Hit:
    row: int
    distance_m: float | None = None


class LayerIndex:
    def __init__(self, batch: FeatureBatch) -> None:
        self.batch = batch
        self.tree = shapely.STRtree(batch.geometries)
        self._row_of = {str(fid): row for row, fid in enumerate(batch.ids)}
        self._rendered: dict[tuple[str, bool], np.ndarray] = {}
        self._masked: FeatureBatch | None = None

    def rendered(
        self,
        rows: np.ndarray,
        crs: str,
        to_crs: Callable[[np.ndarray], np.ndarray],
        masked: FeatureBatch | None = None,
    ) -> list[str]:
        """Each row as GeoJSON Feature text in `crs`, rendered once and kept.

        An index never changes (a write builds a new one), so the cache needs no
        invalidation; pages served to GIS clients then cost a join of strings.
        `masked` is the batch with personal fields masked, cached apart.
        """
        source = self.batch if masked is None else masked
        key = (crs, masked is not None)
        cache = self._rendered.get(key)
        if cache is None:
            cache = self._rendered[key] = np.full(len(self.batch), None, dtype=object)
        missing = (
            rows[np.array([cache[r] is None for r in rows], dtype=bool)] if len(rows) else rows
        )
        if len(missing):
            geometries = shapely.to_geojson(to_crs(self.batch.geometries[missing]))
            for row, geometry in zip(missing.tolist(), geometries, strict=True):
                feature_id = json.dumps(str(self.batch.ids[row]), ensure_ascii=False)
                properties = json.dumps(source.properties(row), ensure_ascii=False)
                cache[row] = (
                    f'{{"type":"Feature","id":{feature_id},"geometry":{geometry},'
                    f'"properties":{properties}}}'
                )
        return [cache[r] for r in rows.tolist()]

    def masked(self, fields: tuple[str, ...]) -> FeatureBatch:
        """The batch with the named person fields masked (made once, like the index)."""
        if self._masked is None:
            columns = dict(self.batch.columns)
            for name in fields:
                if name in columns:
                    values = columns[name]
                    columns[name] = np.array(
                        [None if v is None else mask_name(str(v)) for v in values], dtype=object
                    )
            self._masked = FeatureBatch(self.batch.ids, self.batch.geometries, columns)
        return self._masked

    def __len__(self) -> int:
        return len(self.batch)

    def row(self, feature_id: str) -> int | None:
        return self._row_of.get(feature_id)

    def extent(self) -> tuple[float, float, float, float] | None:
        if not len(self.batch):
            return None
        minx, miny, maxx, maxy = shapely.total_bounds(self.batch.geometries)
        return float(minx), float(miny), float(maxx), float(maxy)

    def matching(self, equals: Mapping[str, str]) -> np.ndarray:
        """Rows whose properties equal the given values (compared as text)."""
        mask = np.ones(len(self.batch), dtype=bool)
        for name, wanted in equals.items():
            values = self.batch.columns[name]
            mask &= np.array([v is not None and _text(v) == wanted for v in values], dtype=bool)
        return mask

    def in_bbox(self, bbox: tuple[float, float, float, float]) -> np.ndarray:
        rows = self.tree.query(shapely.box(*bbox), predicate="intersects")
        mask = np.zeros(len(self.batch), dtype=bool)
        mask[rows] = True
        return mask

    def intersecting(self, geometry: shapely.Geometry) -> np.ndarray:
        return np.sort(self.tree.query(geometry, predicate="intersects"))

    def within_distance(self, geometry: shapely.Geometry, metres: float) -> list[Hit]:
        """Features within `metres` on the ground of `geometry`, nearest first."""
        centre = shapely.centroid(geometry)
        lon0, lat0 = centre.x, centre.y
        dlon, dlat = degree_margin(lat0, metres)
        minx, miny, maxx, maxy = shapely.bounds(geometry)
        window = shapely.box(minx - dlon, miny - dlat, maxx + dlon, maxy + dlat)
        rows = self.tree.query(window, predicate="intersects")
        if not rows.size:
            return []
        reach = metres + _half_diagonal_m(minx, miny, maxx, maxy, lat0)
        local = to_local_metres(self.batch.geometries[rows], lon0, lat0, reach)
        origin = to_local_metres(np.array([geometry]), lon0, lat0, reach)[0]
        distances = shapely.distance(local, origin)
        keep = distances <= metres
        rows, distances = rows[keep], distances[keep]
        order = np.lexsort((rows, distances))
        return [Hit(int(rows[i]), float(distances[i])) for i in order]

    def nearest(
        self, point: shapely.Point, k: int, max_distance_m: float | None = None
    ) -> list[Hit]:
        """The k features nearest on the ground; searches outwards in growing circles."""
        if not len(self.batch):
            return []
        limit = max_distance_m if max_distance_m is not None else 20_037_508.0
        radius = min(100.0, limit)
        while True:
            hits = self.within_distance(point, radius)
            if len(hits) >= k or radius >= limit:
                return hits[:k]
            radius = min(radius * 4, limit)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _half_diagonal_m(minx: float, miny: float, maxx: float, maxy: float, lat: float) -> float:
    per_lon, per_lat = metres_per_degree(lat)
    return float(np.hypot((maxx - minx) * per_lon, (maxy - miny) * per_lat)) / 2

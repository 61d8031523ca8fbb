"""Which grid cell, village and grid worker a point belongs to, for many points at once.

Grid cells tile each village, so the cell answers all three questions. Lookups are
vectorised and never loop in Python per point. A regular raster over the cells answers
most points with one numpy gather: a raster cell that lies, with a margin, inside exactly
one polygon and touches no other can only hold points of that polygon. Only points in
raster cells that a boundary passes through get an exact shapely test, against the few
polygons listed for that raster cell. The index is immutable; a reload builds a new one
and swaps the reference, so readers never see a half-built index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from services.kit import tenancy

# Raster cells per grid cell, within bounds on the raster size (int32 codes: 16 MiB at most).
# Finer rasters send fewer points down the exact path; 4M cells keep the build near a second.
_RASTER_PER_CELL = 1024
_RASTER_MIN, _RASTER_MAX = 1 << 16, 1 << 22
# How far (in raster cells) a raster cell is widened before deciding it is clear of every
# boundary: far above float rounding (~1e-12 cells), far below a cell.
_MARGIN = 1e-6


@dataclass(frozen=True)
class GridCell:
    """One grid cell and who is responsible for it."""

    grid_cell_id: str
    name: str
    village: str
    grid_worker_id: str
    grid_worker_name: str


@dataclass(frozen=True)
class Locations:
    """Per-point answers as parallel arrays; -1 in `cell_index` means not found."""

    cell_index: np.ndarray
    cells: Sequence[GridCell]

    @property
    def found(self) -> np.ndarray:
        return self.cell_index >= 0

    def cell(self, i: int) -> GridCell | None:
        index = int(self.cell_index[i])
        return self.cells[index] if index >= 0 else None


@dataclass(frozen=True)
class _Raster:
    """A regular raster over the polygons' total bounds.

    `codes` per raster cell: a polygon index (the only polygon touching it, and it lies
    inside that polygon), -1 (touches no polygon), or -2 - slot for a mixed raster cell,
    whose candidate polygons are `candidates[offsets[slot]:offsets[slot + 1]]`, ascending.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    sx: float
    sy: float
    nx: int
    ny: int
    codes: np.ndarray
    offsets: np.ndarray
    candidates: np.ndarray


@dataclass
class GridIndex:
    """Grid-cell polygons with their attributes, rasterised for fast point lookups."""

    cells: Sequence[GridCell]
    polygons: np.ndarray
    _raster: _Raster = field(init=False, repr=False)
    _villages: np.ndarray = field(init=False, repr=False)
    _visibility: dict[str, np.ndarray] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.cells) != len(self.polygons):
            raise ValueError("one polygon per grid cell")
        shapely.prepare(self.polygons)
        self._raster = _rasterise(np.asarray(self.polygons, dtype=object))
        self._villages = np.array([c.village for c in self.cells], dtype=object)

    def __len__(self) -> int:
        return len(self.cells)

    def visible_mask(self, subtree: str) -> np.ndarray:
        """Which cells lie under `subtree` (cached: subtrees asked about are few)."""
        mask = self._visibility.get(subtree)
        if mask is None:
            mask = np.array([tenancy.contains(subtree, v) for v in self._villages], dtype=bool)
            self._visibility[subtree] = mask
        return mask

    def locate(self, lon: np.ndarray, lat: np.ndarray, subtree: str) -> Locations:
        """Locate points (storage CRS) among the cells visible from tenant `subtree`.

        A point on the edge shared by two cells goes to the one listed first, so the
        answer is the same on every call.
        """
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        cell_index = np.full(x.shape, -1, dtype=np.int64)
        inside, code = self._raster_codes(x, y)
        if not inside.size:
            return Locations(cell_index=cell_index, cells=self.cells)
        visible = self.visible_mask(subtree)
        # Index -1 of the table is the "not found" entry, used by empty and mixed cells.
        table = np.append(np.where(visible, np.arange(len(visible)), -1), -1)
        cell_index[inside] = table[np.maximum(code, -1)]

        mixed = np.flatnonzero(code <= -2)
        if mixed.size:
            offsets, slot = self._raster.offsets, -2 - code[mixed]
            point, pos = _ranges(offsets[slot], offsets[slot + 1] - 1)
            polygon = self._raster.candidates[pos]
            seen = visible[polygon]
            point, polygon = point[seen], polygon[seen]
            at = inside[mixed[point]]
            hit = shapely.intersects_xy(self.polygons[polygon], x[at], y[at])
            point, polygon = point[hit], polygon[hit]
            # Candidates are ascending per point, so the first hit is the lowest index.
            first = np.ones(point.size, dtype=bool)
            first[1:] = point[1:] != point[:-1]
            cell_index[inside[mixed[point[first]]]] = polygon[first]
        return Locations(cell_index=cell_index, cells=self.cells)

    def exact_share(self, lon: np.ndarray, lat: np.ndarray) -> float:
        """Share of these points that need the exact test (for benchmarks and tuning)."""
        x = np.asarray(lon, dtype=np.float64)
        _inside, code = self._raster_codes(x, np.asarray(lat, dtype=np.float64))
        return float(np.count_nonzero(code <= -2) / max(x.size, 1))

    def _raster_codes(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the points within the raster bounds, and their raster codes."""
        r = self._raster
        # NaN compares false, so it lands outside like any point beyond the bounds.
        inside = np.flatnonzero((x >= r.x0) & (x <= r.x1) & (y >= r.y0) & (y <= r.y1))
        col = np.minimum(((x[inside] - r.x0) * r.sx).astype(np.intp), r.nx - 1)
        row = np.minimum(((y[inside] - r.y0) * r.sy).astype(np.intp), r.ny - 1)
        return inside, r.codes[row * r.nx + col]


def _rasterise(polygons: np.ndarray) -> _Raster:
    """Classify every raster cell as inside one polygon, empty, or mixed (with candidates).

    Pure numpy, no per-cell geometry: raster cells near a boundary segment are mixed, and
    the rest take the polygons whose interior holds their centre, found by scanning each
    raster row's centre line. Geometries that are not valid polygons are not scanned;
    their whole bounding box is marked mixed, so the exact test still decides.
    """
    n = len(polygons)
    bounds = shapely.bounds(polygons).reshape(-1, 4)
    bounds = bounds[~np.isnan(bounds[:, 0])]
    if not bounds.size:  # nothing to find: NaN bounds put every point outside
        no, nan = np.zeros(1, dtype=np.int64), float("nan")
        return _Raster(nan, nan, nan, nan, 1.0, 1.0, 1, 1, np.full(1, -1, np.int32), no, no)
    x0, y0 = (float(b) for b in bounds[:, :2].min(axis=0))
    x1, y1 = (float(b) for b in bounds[:, 2:].max(axis=0))
    width = x1 - x0 or y1 - y0 or 1.0
    height = y1 - y0 or width
    target = min(max(_RASTER_PER_CELL * n, _RASTER_MIN), _RASTER_MAX)
    nx = int(np.clip(round(np.sqrt(target * width / height)), 1, target))
    ny = int(np.clip(round(target / nx), 1, target))
    sx, sy = nx / width, ny / height

    simple = shapely.is_valid(polygons) & np.isin(shapely.get_type_id(polygons), (3, 6))
    parts, part_of = shapely.get_parts(polygons[simple], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    owner = np.flatnonzero(simple)[part_of[ring_of[coord_of]]]
    u, v = (coords[:, 0] - x0) * sx, (coords[:, 1] - y0) * sy
    same = coord_of[1:] == coord_of[:-1]
    u0, v0, u1, v1 = u[:-1][same], v[:-1][same], u[1:][same], v[1:][same]
    owner = owner[:-1][same]

    seg, b_cell = _near_segments(u0, v0, u1, v1, nx, ny)
    odd, o_cell = _near_boxes(polygons, ~simple, x0, y0, sx, sy, nx, ny)
    b_owner, b_cell = np.concatenate([owner[seg], odd]), np.concatenate([b_cell, o_cell])
    i_owner, i_cell = _centres_inside(u0, v0, u1, v1, owner, nx, ny)

    boundary = np.zeros(nx * ny, dtype=bool)
    boundary[b_cell] = True
    count = np.bincount(i_cell, minlength=nx * ny)
    codes = np.full(nx * ny, -1, dtype=np.int32)
    alone = ~boundary[i_cell] & (count[i_cell] == 1)
    codes[i_cell[alone]] = i_owner[alone]
    mixed = boundary | (count > 1)

    cell = np.concatenate([b_cell, i_cell])
    keep = mixed[cell]
    key = np.sort(cell[keep] * n + np.concatenate([b_owner, i_owner])[keep])
    key = key[np.append(True, key[1:] != key[:-1])]
    slot_of = key // n
    offsets = np.flatnonzero(np.append(True, slot_of[1:] != slot_of[:-1]))
    codes[slot_of[offsets]] = -2 - np.arange(offsets.size)
    return _Raster(x0, y0, x1, y1, sx, sy, nx, ny, codes, np.append(offsets, key.size), key % n)


def _near_segments(
    u0: np.ndarray, v0: np.ndarray, u1: np.ndarray, v1: np.ndarray, nx: int, ny: int
) -> tuple[np.ndarray, np.ndarray]:
    """(segment, raster cell) for every raster cell within the margin of a segment.

    Coordinates are in raster units. Each segment is cut into the columns it spans and,
    per column, into the rows its piece spans, padded so rounding can only add cells.
    """
    pad = 2 * _MARGIN
    seg, col = _ranges(
        _clip_floor(np.minimum(u0, u1) - pad, nx), _clip_floor(np.maximum(u0, u1) + pad, nx)
    )
    a, b, du, dv = u0[seg], v0[seg], (u1 - u0)[seg], (v1 - v0)[seg]
    upright = du == 0
    step = np.where(upright, 1.0, du)
    ta, tb = (col - pad - a) / step, (col + 1 + pad - a) / step
    t_lo = np.where(upright, 0.0, np.clip(np.minimum(ta, tb), 0.0, 1.0))
    t_hi = np.where(upright, 1.0, np.clip(np.maximum(ta, tb), 0.0, 1.0))
    va, vb = b + t_lo * dv, b + t_hi * dv
    which, row = _ranges(
        _clip_floor(np.minimum(va, vb) - pad, ny), _clip_floor(np.maximum(va, vb) + pad, ny)
    )
    return seg[which], row * nx + col[which]


def _near_boxes(
    polygons: np.ndarray,
    odd: np.ndarray,
    x0: float,
    y0: float,
    sx: float,
    sy: float,
    nx: int,
    ny: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(geometry, raster cell) for every raster cell in the bounding box of `odd` ones."""
    index = np.flatnonzero(odd & ~shapely.is_empty(polygons) & ~shapely.is_missing(polygons))
    b = shapely.bounds(polygons[index])
    pad = 2 * _MARGIN
    geom, col = _ranges(
        _clip_floor((b[:, 0] - x0) * sx - pad, nx), _clip_floor((b[:, 2] - x0) * sx + pad, nx)
    )
    lo, hi = (b[geom, 1] - y0) * sy - pad, (b[geom, 3] - y0) * sy + pad
    which, row = _ranges(_clip_floor(lo, ny), _clip_floor(hi, ny))
    return index[geom[which]], row * nx + col[which]


def _centres_inside(
    u0: np.ndarray,
    v0: np.ndarray,
    u1: np.ndarray,
    v1: np.ndarray,
    owner: np.ndarray,
    nx: int,
    ny: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(polygon, raster cell) for raster cells whose centre lies inside the polygon.

    Exact for every raster cell away from the polygon's boundary, which is all that is
    relied on. Each row's centre line crosses a polygon's rings an even number of times
    (half-open rule); sorted along the row, crossings pair up as in and out.
    """
    lo, hi = np.minimum(v0, v1), np.maximum(v0, v1)
    seg, row = _ranges(
        np.maximum(np.ceil(lo - 0.5), 0).astype(np.int64),
        np.minimum(np.ceil(hi - 0.5) - 1, ny - 1).astype(np.int64),
    )
    t = (row + 0.5 - v0[seg]) / (v1 - v0)[seg]
    u = u0[seg] + t * (u1 - u0)[seg]
    own = owner[seg]
    order = np.lexsort((u, row, own))
    col, row, own = _clip_floor(u[order], nx), row[order], own[order]
    which, c = _ranges(col[0::2] + 1, col[1::2] - 1)
    return own[0::2][which], row[0::2][which] * nx + c


def _clip_floor(a: np.ndarray, n: int) -> np.ndarray:
    return np.clip(np.floor(a), 0, n - 1).astype(np.int64)


def _ranges(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand inclusive integer ranges into (range number, value) for each value."""
    counts = np.maximum(last - first + 1, 0)
    ends = np.cumsum(counts)
    which = np.repeat(np.arange(counts.size), counts)
    value = np.arange(ends[-1] if ends.size else 0) - np.repeat(ends - counts - first, counts)
    return which, value

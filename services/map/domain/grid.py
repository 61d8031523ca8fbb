"""Which grid cell, village and grid worker a point belongs to, for many points at once.

Grid cells tile each village, so the cell answers all three questions. Lookups are
vectorised: one shapely 2 STRtree query for the whole batch, then numpy indexing,
never a Python loop per point. The index is immutable; a reload builds a new one
and swaps the reference, so readers never see a half-built tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from services.kit import tenancy


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


@dataclass
class GridIndex:
    """An STRtree over grid-cell polygons with their attributes."""

    cells: Sequence[GridCell]
    polygons: np.ndarray
    _tree: shapely.STRtree = field(init=False, repr=False)
    _villages: np.ndarray = field(init=False, repr=False)
    _visibility: dict[str, np.ndarray] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.cells) != len(self.polygons):
            raise ValueError("one polygon per grid cell")
        shapely.prepare(self.polygons)
        self._tree = shapely.STRtree(self.polygons)
        self._villages = np.array([c.village for c in self.cells], dtype=object)

    def __len__(self) -> int:
        return len(self.cells)

    def visible_mask(self, scope: str) -> np.ndarray:
        """Which cells lie in the subtree of `scope` (cached: scopes are few)."""
        mask = self._visibility.get(scope)
        if mask is None:
            mask = np.array([tenancy.contains(scope, v) for v in self._villages], dtype=bool)
            self._visibility[scope] = mask
        return mask

    def locate(self, lon: np.ndarray, lat: np.ndarray, scope: str) -> Locations:
        """Locate points (storage CRS) among the cells visible from tenant `scope`.

        A point on the edge shared by two cells goes to the one listed first, so the
        answer is the same on every call.
        """
        points = shapely.points(lon, lat)
        cell_index = np.full(len(points), -1, dtype=np.int64)
        if len(points) and len(self.cells):
            point_idx, tree_idx = self._tree.query(points, predicate="intersects")
            if point_idx.size:
                visible = self.visible_mask(scope)[tree_idx]
                point_idx, tree_idx = point_idx[visible], tree_idx[visible]
                order = np.lexsort((tree_idx, point_idx))
                point_idx, tree_idx = point_idx[order], tree_idx[order]
                first = np.ones(point_idx.size, dtype=bool)
                first[1:] = point_idx[1:] != point_idx[:-1]
                cell_index[point_idx[first]] = tree_idx[first]
        return Locations(cell_index=cell_index, cells=self.cells)

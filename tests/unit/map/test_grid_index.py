"""Vectorised grid lookups against a brute-force answer."""

from __future__ import annotations

import numpy as np
import shapely

from services.map.domain.grid import GridCell, GridIndex
from tests.conftest import TOWN, XIANGYANG, XINGMING


def test_interior_points_locate_to_their_own_cell(grid_index):
    points = shapely.point_on_surface(grid_index.polygons)
    lon, lat = shapely.get_x(points), shapely.get_y(points)
    found = grid_index.locate(lon, lat, TOWN)
    assert found.found.all()
    assert [found.cell(i).grid_cell_id for i in range(len(points))] == [
        c.grid_cell_id for c in grid_index.cells
    ]


def test_random_points_match_brute_force(grid_index):
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = shapely.total_bounds(grid_index.polygons)
    pad = 0.01
    lon = rng.uniform(minx - pad, maxx + pad, 20_000)
    lat = rng.uniform(miny - pad, maxy + pad, 20_000)
    found = grid_index.locate(lon, lat, TOWN)
    sample = rng.choice(len(lon), 500, replace=False)
    for i in sample:
        hits = np.flatnonzero(shapely.intersects_xy(grid_index.polygons, lon[i], lat[i]))
        expected = int(hits.min()) if hits.size else -1
        assert found.cell_index[i] == expected
    assert 0 < found.found.sum() < len(lon)


def test_scope_hides_cells_of_other_villages(grid_index):
    points = shapely.point_on_surface(grid_index.polygons)
    lon, lat = shapely.get_x(points), shapely.get_y(points)
    villages = np.array([c.village for c in grid_index.cells])
    found = grid_index.locate(lon, lat, XINGMING)
    assert found.found[villages == XINGMING].all()
    assert not found.found[villages == XIANGYANG].any()


def test_point_on_a_shared_edge_goes_to_the_first_cell_every_time():
    left = shapely.box(0, 0, 1, 1)
    right = shapely.box(1, 0, 2, 1)
    cells = [GridCell(f"g{i}", f"G{i}", "a/b", f"w{i}", f"W{i}") for i in range(2)]
    index = GridIndex(cells=cells, polygons=np.array([left, right]))
    for _ in range(3):
        found = index.locate(np.array([1.0, 1.5, 5.0]), np.array([0.5, 0.5, 5.0]), "a")
        assert found.cell_index.tolist() == [0, 1, -1]


def test_empty_batch_is_fine(grid_index):
    found = grid_index.locate(np.array([]), np.array([]), TOWN)
    assert found.cell_index.size == 0

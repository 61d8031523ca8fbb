"""The rasterised GridIndex against a brute-force answer, on a district of ~2,000 cells.

Points include every polygon vertex and points exactly on shared edges (coordinates are
multiples of 2**-24, so halves and quarters of a segment are exact floats on it), where
the lowest cell index must win, and points beyond the district, which find nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from services.kit import tenancy
from services.map.domain.grid import GridCell, GridIndex

SIDE = 45  # 2,025 cells
STEP = 2.0**-24


def _district(seed: int = 3) -> tuple[list[GridCell], np.ndarray]:
    """A jittered lattice tiling near 121.2 E 31.3 N; every edge has a shared mid vertex."""
    rng = np.random.default_rng(seed)
    size = 0.004
    k = np.arange(SIDE + 1)

    def snap(a: np.ndarray) -> np.ndarray:
        return np.round(a / STEP) * STEP

    jitter = rng.uniform(-0.3, 0.3, (2, SIDE + 1, SIDE + 1)) * size
    gx = snap(121.2 + k[None, :] * size + jitter[0])
    gy = snap(31.3 + k[:, None] * size + jitter[1])
    hx = snap((gx[:, :-1] + gx[:, 1:]) / 2)
    hy = snap((gy[:, :-1] + gy[:, 1:]) / 2 + rng.uniform(-0.15, 0.15, hx.shape) * size)
    vx = snap((gx[:-1] + gx[1:]) / 2 + rng.uniform(-0.15, 0.15, (SIDE, SIDE + 1)) * size)
    vy = snap((gy[:-1] + gy[1:]) / 2)
    r, c = np.divmod(np.arange(SIDE * SIDE), SIDE)
    ring = [
        (gx[r, c], gy[r, c]),
        (hx[r, c], hy[r, c]),
        (gx[r, c + 1], gy[r, c + 1]),
        (vx[r, c + 1], vy[r, c + 1]),
        (gx[r + 1, c + 1], gy[r + 1, c + 1]),
        (hx[r + 1, c], hy[r + 1, c]),
        (gx[r + 1, c], gy[r + 1, c]),
        (vx[r, c], vy[r, c]),
    ]
    polygons = shapely.polygons(np.stack([np.stack(xy, axis=-1) for xy in ring], axis=1))
    villages = [f"sh/jd/t{a // 15}/v{b // 9}" for a, b in zip(r, c, strict=True)]
    cells = [GridCell(f"g{i}", f"G{i}", v, f"w{i}", f"W{i}") for i, v in enumerate(villages)]
    return cells, polygons


def _points(polygons: np.ndarray, n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    coords = shapely.get_coordinates(polygons)
    ring_of = shapely.get_coordinates(polygons, return_index=True)[1]
    same = ring_of[1:] == ring_of[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    on_edges = np.concatenate([(a + b) / 2, (3 * a + b) / 4])
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    pad = 0.02 * (maxx - minx)
    scattered = rng.uniform((minx - pad, miny - pad), (maxx + pad, maxy + pad), (n, 2))
    pts = np.concatenate([coords, on_edges, scattered])[:n]
    pts = pts[rng.permutation(len(pts))]
    return pts[:, 0].copy(), pts[:, 1].copy()


def _brute_force(polygons: np.ndarray, visible: np.ndarray, lon, lat) -> np.ndarray:
    """Each point against every visible cell whose box holds it, cells in index order."""
    expected = np.full(lon.size, -1, dtype=np.int64)
    order = np.argsort(lon, kind="stable")
    sorted_lon = lon[order]
    for i in np.flatnonzero(visible):
        x0, y0, x1, y1 = shapely.bounds(polygons[i])
        lo = np.searchsorted(sorted_lon, x0, side="left")
        hi = np.searchsorted(sorted_lon, x1, side="right")
        near = order[lo:hi]
        near = near[(lat[near] >= y0) & (lat[near] <= y1) & (expected[near] < 0)]
        hit = near[shapely.intersects_xy(polygons[i], lon[near], lat[near])]
        expected[hit] = i
    return expected


@pytest.fixture(scope="module")
def district() -> GridIndex:
    cells, polygons = _district()
    return GridIndex(cells=cells, polygons=polygons)


@pytest.fixture(scope="module")
def points(district: GridIndex) -> tuple[np.ndarray, np.ndarray]:
    return _points(district.polygons, 200_000)


@pytest.mark.parametrize("scope", ["sh", "sh/jd/t1", "sh/jd/t2/v3", "zj"])
def test_locate_matches_brute_force(district, points, scope):
    lon, lat = points
    visible = np.array([tenancy.contains(scope, c.village) for c in district.cells])
    expected = _brute_force(district.polygons, visible, lon, lat)
    found = district.locate(lon, lat, scope)
    assert np.array_equal(found.cell_index, expected)
    if scope == "sh":
        # The sample really exercises ties, outside points and the fast path.
        ties = shapely.STRtree(district.polygons).query(
            shapely.points(lon[:20_000], lat[:20_000]), predicate="intersects"
        )[0]
        assert np.bincount(ties).max() >= 3
        assert 0.9 < found.found.mean() < 1
        assert district.exact_share(lon, lat) < 0.5


def test_point_on_a_shared_edge_goes_to_the_lowest_index():
    left, right = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    cells = [GridCell(f"g{i}", f"G{i}", "a/b", f"w{i}", f"W{i}") for i in range(2)]
    index = GridIndex(cells=cells, polygons=np.array([left, right]))
    lon, lat = np.array([1.0, 1.0, 0.5, 1.5, 2.0, 5.0]), np.array([0.5, 1.0, 0.5, 0.5, 1.0, 5.0])
    assert index.locate(lon, lat, "a").cell_index.tolist() == [0, 0, 0, 1, 1, -1]
    swapped = GridIndex(cells=cells, polygons=np.array([right, left]))
    assert swapped.locate(lon, lat, "a").cell_index.tolist() == [0, 0, 1, 0, 0, -1]


def test_overlaps_holes_and_invalid_geometry_match_brute_force():
    polygons = np.array(
        [
            Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]]),
            Polygon([(2, 2), (4, 2), (4, 4), (2, 4)]),
            MultiPolygon([shapely.box(11, 0, 12, 1), Polygon([(13, 0), (14, 0), (14, 1)])]),
            Polygon([(0, 0), (5, 5), (5, 0), (0, 5)]),  # a bow tie: invalid
            LineString([(0, 12), (14, 12.5)]),
            Polygon(),
            None,
            shapely.box(3, 3, 8, 8),
            Point(7, 11),
        ],
        dtype=object,
    )
    cells = [GridCell(f"g{i}", "", "a/b" if i % 2 else "a/c", "", "") for i in range(9)]
    index = GridIndex(cells=cells, polygons=polygons)
    rng = np.random.default_rng(5)
    lon = np.concatenate([rng.uniform(-1, 15, 20_000), rng.integers(-4, 60, 20_000) / 4, [7]])
    lat = np.concatenate([rng.uniform(-1, 13, 20_000), rng.integers(-4, 52, 20_000) / 4, [11]])
    for scope in ("a", "a/b", "a/c"):
        visible = np.array([tenancy.contains(scope, c.village) for c in cells])
        expected = np.full(lon.size, -1)
        for i in np.flatnonzero(visible)[::-1]:
            if polygons[i] is not None:
                expected[shapely.intersects_xy(polygons[i], lon, lat)] = i
        assert np.array_equal(index.locate(lon, lat, scope).cell_index, expected)


def test_odd_inputs_find_nothing(district):
    found = district.locate(
        np.array([np.nan, np.inf, 121.25]), np.array([31.35, 31.35, np.nan]), "sh"
    )
    assert found.cell_index.tolist() == [-1, -1, -1]
    empty = GridIndex(cells=[], polygons=np.array([], dtype=object))
    assert empty.locate(np.array([121.2]), np.array([31.3]), "sh").cell_index.tolist() == [-1]

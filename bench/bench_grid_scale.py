"""GridIndex.locate on a generated district of 10,000 grid cells, in-process.

The district is a jittered lattice of irregular octagons tiling about 60 x 60 km around
121.2 E 31.3 N, grouped into villages and towns. Prints the build time, points per second
(best of 3 over 1,000,000 random points) and the share of points the exact path resolves.
"""

from __future__ import annotations

import math
import time

import numpy as np
import shapely
from common import command_line, scaled

from services.map.domain.grid import GridCell, GridIndex

CENTRE = (121.2, 31.3)
SIDE_KM = 60.0
DISTRICT = "sh/jiading"
TARGET = 1_000_000


def make_district_grid(n_cells: int, seed: int) -> tuple[list[GridCell], np.ndarray]:
    """At least `n_cells` grid cells tiling the district, with their polygons (EPSG:4326).

    Lattice corners are jittered, and every edge gets a jittered middle vertex shared by
    both neighbours, so cells are irregular octagons that still tile without gaps. Blocks
    of 10 x 10 cells form a village, blocks of 5 x 5 villages a town.
    """
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n_cells))
    deg_lon = SIDE_KM / (111.32 * math.cos(math.radians(CENTRE[1])))
    deg_lat = SIDE_KM / 110.57
    dx, dy = deg_lon / side, deg_lat / side
    grid = np.arange(side + 1)
    gx = CENTRE[0] - deg_lon / 2 + grid[None, :] * dx + rng.uniform(-0.3, 0.3, (side + 1,) * 2) * dx
    gy = CENTRE[1] - deg_lat / 2 + grid[:, None] * dy + rng.uniform(-0.3, 0.3, (side + 1,) * 2) * dy
    # Middles of the edges along rows (h) and along columns (v), nudged across the edge.
    hx, hy = (gx[:, :-1] + gx[:, 1:]) / 2, (gy[:, :-1] + gy[:, 1:]) / 2
    hy = hy + rng.uniform(-0.15, 0.15, hy.shape) * dy
    vx, vy = (gx[:-1] + gx[1:]) / 2, (gy[:-1] + gy[1:]) / 2
    vx = vx + rng.uniform(-0.15, 0.15, vx.shape) * dx
    r, c = np.divmod(np.arange(side * side), side)
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
    cells = []
    for i, (row, col) in enumerate(zip(r.tolist(), c.tolist(), strict=True)):
        village = f"{DISTRICT}/town{row // 50}x{col // 50}/village{row // 10}x{col // 10}"
        cells.append(GridCell(f"gc{i:06d}", f"Grid {i}", village, f"gw{i:06d}", f"Worker {i}"))
    return cells, polygons


def best_rate(index: GridIndex, lon: np.ndarray, lat: np.ndarray, scope: str) -> float:
    index.locate(lon[:1000], lat[:1000], scope)
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        index.locate(lon, lat, scope)
        best = min(best, time.perf_counter() - started)
    return lon.size / best


def main(n_cells: int = scaled(10_000, 1_000), n_points: int = scaled(1_000_000, 100_000)) -> None:
    cells, polygons = make_district_grid(n_cells, seed=20240601)
    started = time.perf_counter()
    index = GridIndex(cells=cells, polygons=polygons)
    print(f"built the index of {len(index):,} grid cells in {time.perf_counter() - started:.2f}s")

    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = shapely.total_bounds(polygons)
    lon, lat = rng.uniform(minx, maxx, n_points), rng.uniform(miny, maxy, n_points)
    rate = best_rate(index, lon, lat, DISTRICT)
    found = index.locate(lon, lat, DISTRICT).found.mean()
    print(
        f"in-process: {n_points:,} points, best of 3 = {rate:,.0f} points/s "
        f"({found:.0%} inside a grid cell, {index.exact_share(lon, lat):.1%} by the exact path)"
    )
    town = cells[0].village.rsplit("/", 1)[0]
    print(f"scoped to one town ({town}): {best_rate(index, lon, lat, town):,.0f} points/s")
    print(f"target >= {TARGET:,} points/s: {'met' if rate >= TARGET else 'missed'}")


if __name__ == "__main__":
    command_line(__doc__)
    main()

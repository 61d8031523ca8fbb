"""Map queries on a generated district: LocatePoints over gRPC and in PostGIS, radius search.

The district is bench_grid_scale's: 10,000 grid cells (100 villages of 100 cells) tiling
about 60 x 60 km, seeded village by village through `MapCatalog.import_features` into a
temporary GeoPackage store, plus 100,000 buildings (rotated rectangles of 8-20 m by
6-12 m) scattered inside the cells as one building layer of the district.

Figures, one line each with its target:
  a. LocatePoints over gRPC on loopback, batches of 10,000 points (one and two clients,
     in the server's process and event loop);
  b. the same batches answered by PostGIS (GiST index, one SQL statement per batch), and
     the ratio of the two; the in-process `GridIndex.locate` rate for context;
  c. 200 m radius searches among the buildings, in-process: p50 / p99 latency.
Every figure's answers are checked against an independent computation first.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import shapely
from pyproj import Geod, Transformer

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit.client import open_channel
from services.kit.config import ServiceSettings
from services.kit.principal import Principal
from services.kit.server import start_server
from services.map.api import build_component
from services.map.domain.grid import GridCell
from services.map.domain.metric import degree_margin, metres_per_degree
from services.map.domain.model import FieldSpec, FieldType, Layer, LayerKey, LayerKind
from services.map.domain.service import ImportOptions, MapCatalog, WithinDistance
from services.map.formats import DecodedFeatures
from services.map.seed import SEED_PRINCIPAL
from services.map.store.geopackage import GeoPackageStore

# `python bench/bench_map_queries.py` puts bench/ on sys.path, bench/run.py the repo root.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from bench.bench_grid_scale import DISTRICT, make_district_grid  # noqa: E402
from bench.common import command_line, scaled  # noqa: E402

SEED = 20240601
N_CELLS = scaled(10_000, 1_000)
N_BUILDINGS = scaled(100_000, 5_000)
BATCH = 10_000
BATCHES = scaled(30, 3)
RUNS = scaled(3, 1)
RADIUS_M = 200.0
N_SEARCHES = scaled(2_000, 200)
N_CHECKED = 20
IN_PROCESS_POINTS = scaled(1_000_000, 100_000)

TARGET_GRPC = 300_000
TARGET_RATIO = 5.0
TARGET_P50_MS = 2.0

PG_DSN = "host=127.0.0.1 port=5432 user=postgres"
PRINCIPAL = Principal(
    "users/bench",
    DISTRICT,
    kind="user",
    roles=("district_officer",),
    scopes=frozenset({"map:read"}),
)
BUILDINGS = LayerKey(DISTRICT, "buildings")
GRID_FIELDS = (
    FieldSpec("name", FieldType.STRING),
    FieldSpec("grid_worker_id", FieldType.STRING, True),
    FieldSpec("grid_worker_name", FieldType.STRING, True),
)
# %b sends the coordinate arrays in binary: as text, psycopg spends ~40 ms per batch
# formatting 20,000 floats, which would not be PostGIS's time.
LOCATE_SQL = """
SELECT p.ord, c.id
FROM unnest(%b::float8[], %b::float8[]) WITH ORDINALITY AS p(lon, lat, ord)
LEFT JOIN LATERAL (
    SELECT id FROM cells
    WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
    ORDER BY idx LIMIT 1
) c ON true
ORDER BY p.ord
"""


def say(text: str) -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


# -- the district ----------------------------------------------------------------------


def make_buildings(
    cells: list[GridCell], polygons: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`n` rotated rectangles (8-20 m by 6-12 m), each centred inside a random grid cell."""
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, len(cells), n)
    bounds = shapely.bounds(polygons)
    x, y = np.empty(n), np.empty(n)
    todo = np.arange(n)
    while todo.size:
        b = bounds[cell[todo]]
        x[todo] = rng.uniform(b[:, 0], b[:, 2])
        y[todo] = rng.uniform(b[:, 1], b[:, 3])
        todo = todo[~shapely.contains_xy(polygons[cell[todo]], x[todo], y[todo])]
    length, width = rng.uniform(8, 20, n), rng.uniform(6, 12, n)
    angle = rng.uniform(0, math.pi, n)
    per = np.array([metres_per_degree(lat) for lat in y.tolist()])
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)], dtype=float) / 2
    u = corners[None, :, 0] * length[:, None]
    v = corners[None, :, 1] * width[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    lon = x[:, None] + (u * cos - v * sin) / per[:, 0:1]
    lat = y[:, None] + (u * sin + v * cos) / per[:, 1:2]
    geometries = shapely.polygons(np.stack([lon, lat], axis=-1))
    ids = np.array([cells[i].grid_cell_id for i in cell.tolist()], dtype=object)
    return geometries, ids


def seed_district(catalog: MapCatalog) -> None:
    started = time.perf_counter()
    cells, polygons = make_district_grid(N_CELLS, seed=SEED)
    villages = np.array([c.village for c in cells], dtype=object)
    names = sorted(set(villages.tolist()))
    say(f"setup: importing {len(cells):,} grid cells as {len(names)} village grid-cell layers")
    for village in names:
        rows = np.flatnonzero(villages == village)
        key = LayerKey(village, "grid-cells")
        layer = Layer(key, "Grid cells", LayerKind.GRID_CELL, "Polygon", GRID_FIELDS)
        catalog.create_layer(SEED_PRINCIPAL, layer)
        picked = [cells[i] for i in rows.tolist()]
        source = DecodedFeatures(
            polygons[rows],
            {
                "name": np.array([c.name for c in picked], dtype=object),
                "grid_worker_id": np.array([c.grid_worker_id for c in picked], dtype=object),
                "grid_worker_name": np.array([c.grid_worker_name for c in picked], dtype=object),
            },
            "EPSG:4326",
            np.array([c.grid_cell_id for c in picked], dtype=object),
        )
        catalog.import_features(SEED_PRINCIPAL, key, source, ImportOptions())
    say(f"setup: grid cells imported in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    geometries, cell_ids = make_buildings(cells, polygons, N_BUILDINGS, seed=SEED + 1)
    layer = Layer(
        BUILDINGS,
        "Buildings",
        LayerKind.BUILDING,
        "Polygon",
        (FieldSpec("grid_cell_id", FieldType.STRING),),
    )
    catalog.create_layer(SEED_PRINCIPAL, layer)
    ids = np.array([f"b{i:06d}" for i in range(N_BUILDINGS)], dtype=object)
    source = DecodedFeatures(geometries, {"grid_cell_id": cell_ids}, "EPSG:4326", ids)
    catalog.import_features(SEED_PRINCIPAL, BUILDINGS, source, ImportOptions())
    say(f"setup: {N_BUILDINGS:,} buildings imported in {time.perf_counter() - started:.1f}s")


def point_batches(catalog: MapCatalog, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.total_bounds(catalog.grid.polygons)
    return [
        (rng.uniform(minx, maxx, BATCH), rng.uniform(miny, maxy, BATCH)) for _ in range(BATCHES)
    ]


def expected_ids(catalog: MapCatalog, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
    found = catalog.grid.locate(lon, lat, DISTRICT)
    cells = catalog.grid.cells
    return [cells[i].grid_cell_id if i >= 0 else None for i in found.cell_index.tolist()]


def best_of(runs: int, once: Callable[[], float]) -> float:
    """The best of `runs` rates; `once` returns points per second."""
    return max(once() for _ in range(runs))


# -- a. LocatePoints over gRPC ---------------------------------------------------------


async def bench_grpc(catalog: MapCatalog, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    settings = ServiceSettings(grpc_port=0, host="127.0.0.1")  # type: ignore[call-arg]
    running = await start_server("map", settings, build_component(catalog, 100_000))
    channel = open_channel(f"127.0.0.1:{running.port}", default_timeout=60)
    try:
        stub = pb_grpc.MapServiceStub(channel)
        metadata = PRINCIPAL.to_metadata()
        requests = [
            pb.LocatePointsRequest(
                parent="tenants/" + DISTRICT.replace("/", "-"),
                points=geo_pb2.CoordinateArrays(longitudes=lon.tolist(), latitudes=lat.tolist()),
            )
            for lon, lat in batches
        ]
        response = await stub.LocatePoints(requests[0], metadata=metadata)
        got = [loc.grid_cell if loc.found else None for loc in response.locations]
        assert got == expected_ids(catalog, *batches[0]), "gRPC answers differ from locate()"

        async def client(share: list[pb.LocatePointsRequest]) -> None:
            for request in share:
                await stub.LocatePoints(request, metadata=metadata)

        async def run(clients: int) -> float:
            shares = [requests[i::clients] for i in range(clients)]
            started = time.perf_counter()
            await asyncio.gather(*(client(share) for share in shares))
            return len(requests) * BATCH / (time.perf_counter() - started)

        one = max([await run(1) for _ in range(RUNS)])
        say(
            f"a. gRPC LocatePoints, 1 client, batches of {BATCH:,} ({BATCHES} per run, best of "
            f"{RUNS}): {one:,.0f} points/s (target >= {TARGET_GRPC:,}): "
            f"{verdict(one >= TARGET_GRPC)}"
        )
        two = max([await run(2) for _ in range(RUNS)])
        say(
            f"a. gRPC LocatePoints, 2 concurrent clients (sharing the server's process): "
            f"{two:,.0f} points/s "
            f"(target >= {TARGET_GRPC:,}): {verdict(two >= TARGET_GRPC)}"
        )
        return one
    finally:
        await channel.close()
        await running.stop()


# -- b. the same batches in PostGIS ----------------------------------------------------


def bench_postgis(catalog: MapCatalog, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    database = f"bench_map_{os.getpid()}"
    with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.execute(f"CREATE DATABASE {database}")
    try:
        with psycopg.connect(f"{PG_DSN} dbname={database}", autocommit=True) as conn:
            return _postgis_figures(conn, catalog, batches)
    finally:
        with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _postgis_figures(
    conn: psycopg.Connection, catalog: MapCatalog, batches: list[tuple[np.ndarray, np.ndarray]]
) -> float:
    started = time.perf_counter()
    grid = catalog.grid
    # JIT only adds compile time to these short per-point lookups.
    conn.execute("SET jit = off")
    conn.execute("CREATE EXTENSION postgis")
    conn.execute("CREATE TABLE cells (idx integer PRIMARY KEY, id text NOT NULL, geom geometry)")
    ewkb = shapely.to_wkb(shapely.set_srid(grid.polygons, 4326), hex=True, include_srid=True)
    with conn.cursor() as cur, cur.copy("COPY cells (idx, id, geom) FROM STDIN") as copy:
        for idx, (cell, geom) in enumerate(zip(grid.cells, ewkb.tolist(), strict=True)):
            copy.write_row((idx, cell.grid_cell_id, geom))
    conn.execute("CREATE INDEX cells_geom ON cells USING gist (geom)")
    conn.execute("ANALYZE cells")
    say(f"setup: {len(grid):,} cells loaded into PostGIS in {time.perf_counter() - started:.1f}s")

    params = [(lon.tolist(), lat.tolist()) for lon, lat in batches]
    with conn.cursor() as cur:
        cur.execute(LOCATE_SQL, params[0], prepare=True)
        rows = cur.fetchall()
        assert [r[0] for r in rows] == list(range(1, BATCH + 1)), "PostGIS lost the order"
        got = [r[1] for r in rows]
        assert got == expected_ids(catalog, *batches[0]), "PostGIS answers differ from locate()"

        def once() -> float:
            started = time.perf_counter()
            for lon, lat in params:
                cur.execute(LOCATE_SQL, (lon, lat), prepare=True)
                cur.fetchall()
            return len(params) * BATCH / (time.perf_counter() - started)

        return best_of(RUNS, once)


def bench_in_process(catalog: MapCatalog, n: int = IN_PROCESS_POINTS) -> float:
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = shapely.total_bounds(catalog.grid.polygons)
    lon, lat = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    catalog.grid.locate(lon[:1000], lat[:1000], DISTRICT)

    def once() -> float:
        started = time.perf_counter()
        catalog.grid.locate(lon, lat, DISTRICT)
        return n / (time.perf_counter() - started)

    return best_of(RUNS, once)


# -- c. radius search among the buildings ----------------------------------------------


def query_points(catalog: MapCatalog, n: int, seed: int) -> np.ndarray:
    """`n` random points inside the district's grid cells."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.total_bounds(catalog.grid.polygons)
    lon, lat = rng.uniform(minx, maxx, 2 * n), rng.uniform(miny, maxy, 2 * n)
    inside = catalog.grid.locate(lon, lat, DISTRICT).found
    assert inside.sum() >= n
    return shapely.points(lon[inside][:n], lat[inside][:n])


def geodesic_distances(point: shapely.Point, geometries: np.ndarray) -> np.ndarray:
    """Metres on WGS84 from `point` to the nearest point of each geometry.

    The nearest point is found in an azimuthal equidistant plane centred on `point`
    (true distances from the centre), then measured with `Geod.inv`.
    """
    geod = Geod(ellps="WGS84")
    aeqd = Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={point.y} +lon_0={point.x} +datum=WGS84", always_xy=True
    )

    def forward(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(aeqd.transform(xy[:, 0], xy[:, 1]))

    local = shapely.transform(geometries, forward)
    nearest = shapely.get_coordinates(shapely.shortest_line(local, shapely.Point(0, 0)))[::2]
    lon, lat = aeqd.transform(nearest[:, 0], nearest[:, 1], direction="INVERSE")
    _az, _back, metres = geod.inv(np.full(lon.size, point.x), np.full(lat.size, point.y), lon, lat)
    inside = shapely.intersects(geometries, point)
    return np.where(inside, 0.0, np.asarray(metres))


def check_search(catalog: MapCatalog, points: np.ndarray) -> None:
    index = catalog.indexes[BUILDINGS]
    checked = 0
    for point in points:
        page = catalog.search(PRINCIPAL, BUILDINGS, WithinDistance(point, RADIUS_M), limit=10_000)
        returned = set(page.batch.ids.tolist())
        dlon, dlat = degree_margin(point.y, 300.0)
        window = shapely.box(point.x - dlon, point.y - dlat, point.x + dlon, point.y + dlat)
        rows = index.tree.query(window)
        metres = geodesic_distances(point, index.batch.geometries[rows])
        ids = index.batch.ids[rows]
        for fid, d in zip(ids.tolist(), metres.tolist(), strict=True):
            if fid in returned:
                assert d <= RADIUS_M + 0.5, f"{fid} returned at {d:.2f} m"
            elif d <= 250.0:
                assert d > RADIUS_M - 0.5, f"{fid} missed at {d:.2f} m"
        assert returned <= set(ids[metres <= RADIUS_M + 0.5].tolist())
        checked += len(returned)
    say(f"c. checked {len(points)} searches against geodesic distances ({checked} hits): ok")


def time_calls(points: np.ndarray, call: Callable[[shapely.Point], int]) -> tuple[np.ndarray, int]:
    """Milliseconds per call, and the total number of hits."""
    for point in points[:50]:
        call(point)
    times = np.empty(len(points))
    hits = 0
    for i, point in enumerate(points):
        started = time.perf_counter()
        hits += call(point)
        times[i] = (time.perf_counter() - started) * 1000
    return times, hits


def bench_search(catalog: MapCatalog) -> None:
    points = query_points(catalog, N_SEARCHES, seed=13)
    check_search(catalog, points[:N_CHECKED])
    index = catalog.indexes[BUILDINGS]

    def via_catalog(point: shapely.Point) -> int:
        return catalog.search(PRINCIPAL, BUILDINGS, WithinDistance(point, RADIUS_M)).total

    def via_index(point: shapely.Point) -> int:
        return len(index.within_distance(point, RADIUS_M))

    calls = (("MapCatalog.search", via_catalog), ("LayerIndex.within_distance", via_index))
    for label, call in calls:
        times, hits = time_calls(points, call)
        p50, p99 = np.percentile(times, [50, 99])
        say(
            f"c. {RADIUS_M:.0f} m radius among {N_BUILDINGS:,} buildings, {label}, "
            f"{len(points):,} queries: p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
            f"mean {hits / len(points):.1f} hits (target p50 < {TARGET_P50_MS:g} ms): "
            f"{verdict(p50 < TARGET_P50_MS)}"
        )


# -- main ------------------------------------------------------------------------------


def load_line(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"{when}: {os.cpu_count()} CPUs, load average {one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    started = time.perf_counter()
    say(load_line("machine at start"))
    with tempfile.TemporaryDirectory() as tmp:
        catalog = MapCatalog(GeoPackageStore(Path(tmp) / "map.gpkg"))
        try:
            seed_district(catalog)
            batches = point_batches(catalog, seed=7)
            grpc_rate = asyncio.run(bench_grpc(catalog, batches))
            postgis_rate = bench_postgis(catalog, batches)
            say(
                f"b. PostGIS LATERAL lookup, one statement per batch of {BATCH:,} (GiST, binary "
                f"parameters, prepared, jit off; {BATCHES} per run, best of {RUNS}): "
                f"{postgis_rate:,.0f} points/s"
            )
            ratio = grpc_rate / postgis_rate
            say(
                f"b. ours / PostGIS = {ratio:.1f}x (target >= {TARGET_RATIO:g}x): "
                f"{verdict(ratio >= TARGET_RATIO)}"
            )
            say(
                f"b. context: in-process GridIndex.locate, {IN_PROCESS_POINTS:,} points: "
                f"{bench_in_process(catalog):,.0f} points/s"
            )
            bench_search(catalog)
        finally:
            catalog.store.close()
    say(load_line("machine at end"))
    say(f"total {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    command_line(__doc__)
    main()

"""LocatePoints on the demo village: in-process and over gRPC on loopback.

The demo town is seeded into a map catalog over a temporary GeoPackage store, as
`make run` does, and the catalog's grid is served. Prints points per second;
bench_map_queries.py scales this to a generated district (10,000 grid cells) and adds
the PostGIS comparison.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from common import command_line, scaled

from devstack import demo_village
from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit.client import open_channel
from services.kit.config import ServiceSettings
from services.kit.principal import Principal
from services.kit.server import start_server
from services.map.api import build_component
from services.map.domain.service import MapCatalog
from services.map.seed import seed_demo
from services.map.store.geopackage import GeoPackageStore

TOWN = "sh/jiading/anting"


def random_points(index, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.total_bounds(index.polygons)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def bench_in_process(index, n: int = scaled(1_000_000, 100_000)) -> None:
    lon, lat = random_points(index, n)
    index.locate(lon[:1000], lat[:1000], TOWN)
    started = time.perf_counter()
    found = index.locate(lon, lat, TOWN)
    seconds = time.perf_counter() - started
    print(
        f"in-process: {n:,} points in {seconds:.3f}s = {n / seconds:,.0f} points/s "
        f"({found.found.mean():.0%} inside a grid cell, {len(index):,} cells)"
    )


async def bench_grpc(
    catalog: MapCatalog, batch: int = 10_000, batches: int = scaled(30, 5)
) -> None:
    index = catalog.grid
    settings = ServiceSettings(grpc_port=0, host="127.0.0.1")  # type: ignore[call-arg]
    running = await start_server("map", settings, build_component(catalog, 100_000))
    channel = open_channel(f"127.0.0.1:{running.port}", default_timeout=30)
    stub = pb_grpc.MapServiceStub(channel)
    metadata = Principal("users/bench", TOWN, scopes=frozenset({"map:read"})).to_metadata()
    lon, lat = random_points(index, batch)
    request = pb.LocatePointsRequest(
        parent="tenants/sh-jiading-anting",
        points=geo_pb2.CoordinateArrays(longitudes=lon.tolist(), latitudes=lat.tolist()),
    )
    await stub.LocatePoints(request, metadata=metadata)
    started = time.perf_counter()
    for _ in range(batches):
        await stub.LocatePoints(request, metadata=metadata)
    seconds = time.perf_counter() - started
    total = batch * batches
    print(
        f"gRPC (one connection, batches of {batch:,}): {total:,} points in {seconds:.3f}s = "
        f"{total / seconds:,.0f} points/s"
    )
    await channel.close()
    await running.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.gpkg"
        demo_village.generate(path)
        catalog = MapCatalog(GeoPackageStore(Path(tmp) / "map.gpkg"))
        try:
            seed_demo(catalog, path)
            bench_in_process(catalog.grid)
            asyncio.run(bench_grpc(catalog))
        finally:
            catalog.store.close()


if __name__ == "__main__":
    command_line(__doc__)
    main()

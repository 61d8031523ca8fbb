"""The map service as a process on its production backend, PostGIS."""

from __future__ import annotations

import shutil

import grpc
import psycopg
import shapely

from devstack.stack import Stack, StackConfig
from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit.principal import Principal


def test_map_service_on_postgis_seeds_once_and_survives_a_restart(
    postgis_test_dsn,
    demo_gpkg,
    grid_index,
    tmp_path,
):
    config = StackConfig.on_free_ports(tmp_path / "data", log_dir=tmp_path / "logs")
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    config.extra_env = {
        "GRASSROOTS_MAP_BACKEND": "postgis",
        "GRASSROOTS_MAP_POSTGRES_DSN": postgis_test_dsn,
    }
    stack = Stack(config)
    cell = grid_index.cells[3]
    point = shapely.point_on_surface(grid_index.polygons[3])
    request = pb.LocatePointsRequest(
        parent="tenants/sh",
        points=geo_pb2.CoordinateArrays(longitudes=[point.x], latitudes=[point.y]),
    )
    metadata = Principal("users/t", "sh", scopes=frozenset({"map:read"})).to_metadata()
    try:
        for _ in range(2):
            stack.start("map")
            stack.wait_ready(60, services=("map",))
            with grpc.insecure_channel(config.address("map")) as channel:
                response = pb_grpc.MapServiceStub(channel).LocatePoints(
                    request, metadata=metadata, timeout=5
                )
            assert response.locations[0].grid_cell == cell.grid_cell_id
            stack.stop("map")
            with psycopg.connect(postgis_test_dsn) as conn:
                layers = conn.execute("SELECT count(*) FROM map_layers").fetchone()[0]
                features = conn.execute("SELECT count(*) FROM map_features").fetchone()[0]
            # The demo's seven layers and one road layer per village, seeded once.
            assert layers == 9
            assert features > 4800
    finally:
        stack.stop_all()

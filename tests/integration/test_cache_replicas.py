"""Two replicas each of map and events on one PostgreSQL/PostGIS database and one Redis
bus: what one replica changes, the other answers from memory within a bounded time,
without a restart (ADR 23).

* map: a village's new grid layer is created and imported through the first replica;
  the second lists the layer and locates a point in the new cell;
* events: a category created through the first replica is listed by the second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import shapely

from devstack.stack import REPO, Stack, StackConfig, free_port
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal
from tests.integration.test_events_reliability import private_redis

TOWN = "sh/jd/at"
VILLAGE = "sh/jd/at/vz"
WITHIN_SECONDS = 5.0  # notices travel in milliseconds; a loaded machine gets slack
CELL = shapely.box(121.9, 31.9, 121.901, 31.901)


def _metadata(tenant: str, *scopes: str) -> list[tuple[str, str]]:
    return list(Principal("users/t", tenant, scopes=frozenset(scopes)).to_metadata())


def _eventually(check: Callable[[], bool]) -> float:
    """Seconds until `check()` holds; fails after WITHIN_SECONDS."""
    started = time.monotonic()
    while time.monotonic() - started < WITHIN_SECONDS:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"the other replica did not see the change within {WITHIN_SECONDS} s")


@contextmanager
def second_replica(config: StackConfig, component: str, log: Path) -> Iterator[str]:
    """Another process of `component` with the stack's settings on ports of its own."""
    port = free_port()
    prefix = f"GRASSROOTS_{component.upper()}_"
    env = config.env_for(component) | {
        prefix + "GRPC_PORT": str(port),
        prefix + "METRICS_PORT": str(free_port()),
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{component}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            address = f"{config.host}:{port}"
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=90)
            yield address
        finally:
            process.terminate()
            process.wait(15)


@pytest.mark.integration
def test_a_change_on_one_replica_reaches_the_other_through_the_bus(
    tmp_path, demo_gpkg, postgis_test_dsn
):
    with private_redis(tmp_path / "redis") as bus:
        config = StackConfig.on_free_ports(tmp_path / "data", log_dir=tmp_path / "logs")
        config.extra_env.update(
            {
                "GRASSROOTS_MAP_BACKEND": "postgis",
                "GRASSROOTS_MAP_POSTGRES_DSN": postgis_test_dsn,
                "GRASSROOTS_MAP_BUS_URL": bus.url,
                "GRASSROOTS_EVENTS_BACKEND": "postgres",
                "GRASSROOTS_EVENTS_POSTGRES_DSN": postgis_test_dsn,
                "GRASSROOTS_EVENTS_BUS_URL": bus.url,
            }
        )
        config.data_dir.mkdir(parents=True)
        shutil.copy(demo_gpkg, config.map_file)
        stack = Stack(config)
        try:
            for name in ("map", "events"):
                stack.start(name)
                stack.wait_ready(90, services=(name,))
            with (
                second_replica(config, "map", tmp_path / "map-2.log") as map_2,
                second_replica(config, "events", tmp_path / "events-2.log") as events_2,
            ):
                _map_layers_reach_the_other_replica(config.address("map"), map_2)
                _categories_reach_the_other_replica(config.address("events"), events_2)
        finally:
            stack.stop_all()


def _map_layers_reach_the_other_replica(first: str, second: str) -> None:
    writer = _metadata(TOWN, "map:read", "map:write")
    reader = _metadata(VILLAGE, "map:read")
    parent = tenancy.tenant_name(VILLAGE)
    point = CELL.centroid
    locate = map_pb.LocatePointsRequest(
        parent=parent, points=geo_pb2.CoordinateArrays(longitudes=[point.x], latitudes=[point.y])
    )
    with grpc.insecure_channel(first) as one, grpc.insecure_channel(second) as two:
        stub_1, stub_2 = map_grpc.MapServiceStub(one), map_grpc.MapServiceStub(two)
        assert not stub_2.LocatePoints(locate, metadata=reader, timeout=5).locations[0].found
        stub_1.CreateLayer(
            map_pb.CreateLayerRequest(
                parent=parent,
                layer_id="grid-cells",
                layer=map_pb.Layer(
                    display_name="Grid",
                    kind=map_pb.LAYER_KIND_GRID_CELL,
                    geometry_type="Polygon",
                    fields=[
                        map_pb.FieldSpec(
                            name="grid_worker_id", type=map_pb.FIELD_TYPE_STRING, required=True
                        ),
                        map_pb.FieldSpec(
                            name="grid_worker_name", type=map_pb.FIELD_TYPE_STRING, required=True
                        ),
                    ],
                ),
            ),
            metadata=writer,
            timeout=10,
        )

        def listed() -> bool:
            layers = stub_2.ListLayers(
                map_pb.ListLayersRequest(parent=parent), metadata=reader, timeout=5
            ).layers
            return any(layer.name.endswith("/layers/grid-cells") for layer in layers)

        print(f"new layer listed by the other map replica after {_eventually(listed):.2f} s")
        feature = {
            "type": "Feature",
            "id": "vz-1",
            "geometry": shapely.geometry.mapping(CELL),
            "properties": {"grid_worker_id": "w1", "grid_worker_name": "Wang"},
        }
        stub_1.ImportFeatures(
            map_pb.ImportFeaturesRequest(
                parent=f"{parent}/layers/grid-cells",
                data=json.dumps({"type": "FeatureCollection", "features": [feature]}).encode(),
                format="geojson",
            ),
            metadata=writer,
            timeout=60,
        )

        def located() -> bool:
            found = stub_2.LocatePoints(locate, metadata=reader, timeout=5).locations[0]
            return found.found and found.grid_cell == "vz-1"

        print(f"new grid cell located by the other map replica after {_eventually(located):.2f} s")


def _categories_reach_the_other_replica(first: str, second: str) -> None:
    configure = _metadata(TOWN, "events:configure", "events:read")
    parent = tenancy.tenant_name(TOWN)
    code = "roads.fallen_tree"
    with grpc.insecure_channel(first) as one, grpc.insecure_channel(second) as two:
        stub_1, stub_2 = events_grpc.EventsServiceStub(one), events_grpc.EventsServiceStub(two)

        def codes() -> set[str]:
            listed = stub_2.ListCategories(
                events_pb.ListCategoriesRequest(parent=parent, page_size=1000),
                metadata=configure,
                timeout=5,
            )
            return {category.code for category in listed.categories}

        assert code not in codes()
        stub_1.CreateCategory(
            events_pb.CreateCategoryRequest(
                parent=parent,
                category=events_pb.Category(
                    code=code,
                    display_name="Fallen tree",
                    default_severity=3,
                    duplicate_radius_meters=0,
                    duplicate_window_minutes=0,
                ),
            ),
            metadata=configure,
            timeout=10,
        )
        seconds = _eventually(lambda: code in codes())
        print(f"new category listed by the other events replica after {seconds:.2f} s")

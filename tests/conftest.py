"""Fixtures shared by every suite: the demo village and in-process gRPC servers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from services.kit.client import open_channel
from services.kit.component import ServiceComponent
from services.kit.config import ServiceSettings
from services.kit.principal import Principal
from services.kit.server import RunningServer, start_server
from services.map.api import build_component as build_map
from services.map.domain.service import MapCatalog
from services.map.seed import load_grid_index, seed_demo
from services.map.store.geopackage import GeoPackageStore

XINGMING = "sh/jiading/anting/xingming"
XIANGYANG = "sh/jiading/anting/xiangyang"
TOWN = "sh/jiading/anting"


@pytest.fixture(scope="session")
def demo_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.map import demo_village

    path = tmp_path_factory.mktemp("demo") / "demo-village.gpkg"
    demo_village.generate(path)
    return path


@pytest.fixture(scope="session")
def grid_index(demo_gpkg: Path):  # type: ignore[no-untyped-def]
    return load_grid_index(demo_gpkg)


def principal_of(tenant: str, subject: str = "users/test") -> Principal:
    return Principal(subject=subject, tenant=tenant, kind="user", roles=("tester",))


def settings(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {"grpc_port": 0, "host": "127.0.0.1", "grace_seconds": 5.0}
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]


class InProcessServer:
    """A kit server on a free loopback port, plus a channel to it."""

    def __init__(self, running: RunningServer, channel: grpc.aio.Channel) -> None:
        self.running = running
        self.channel = channel
        self.address = f"127.0.0.1:{running.port}"


async def serve_in_process(
    name: str, component: ServiceComponent, **overrides: object
) -> InProcessServer:
    running = await start_server(name, settings(**overrides), component)
    channel = open_channel(f"127.0.0.1:{running.port}", default_timeout=5.0)
    return InProcessServer(running, channel)


@pytest.fixture(scope="session")
def seeded_map_store(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A map store file with the demo town installed, made once and copied per test."""
    path = tmp_path_factory.mktemp("map-store") / "map.gpkg"
    store = GeoPackageStore(path)
    seed_demo(MapCatalog(store), demo_gpkg)
    store.close()
    return path


@pytest.fixture
def map_catalog(seeded_map_store: Path, tmp_path: Path) -> Iterator[MapCatalog]:
    path = tmp_path / "map.gpkg"
    shutil.copy(seeded_map_store, path)
    catalog = MapCatalog(GeoPackageStore(path))
    yield catalog
    catalog.store.close()


@pytest.fixture
async def map_server(map_catalog: MapCatalog) -> AsyncIterator[InProcessServer]:
    server = await serve_in_process("map", build_map(map_catalog, max_batch=100_000))
    yield server
    await server.channel.close()
    await server.running.stop()

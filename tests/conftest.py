"""Fixtures shared by every suite: the demo village, in-process gRPC servers, PostGIS.

PostGIS tests never skip: CI installs PostgreSQL and PostGIS, so a missing server is a
failure that says what to install or which DSN to set.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from services.kit import signing
from services.kit.client import open_channel
from services.kit.component import ServiceComponent
from services.kit.components import NAMES
from services.kit.config import ServiceSettings
from services.kit.principal import Principal
from services.kit.server import RunningServer, start_server
from services.map.config import MapSettings
from services.map.domain.service import MapCatalog
from services.map.seed import load_grid_index, seed_demo
from services.map.store.geopackage import GeoPackageStore
from services.map.wiring import build as build_map

# Every process of a test run (and the stacks it starts) shares one signing key ring.
os.environ.setdefault(signing.KEYS_VARIABLE, signing.generate_keys_value("test"))

XINGMING = "sh/jiading/anting/xingming"
XIANGYANG = "sh/jiading/anting/xiangyang"
TOWN = "sh/jiading/anting"


@pytest.fixture(scope="session")
def demo_gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from devstack import demo_village

    path = tmp_path_factory.mktemp("demo") / "demo-village.gpkg"
    demo_village.generate(path)
    return path


@pytest.fixture(scope="session")
def demo_identities(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the demo town's identities, installed once a session.

    Installing them takes seconds of slow password hashing (argon2id, one hash an account).
    A platform a test starts gets a copy (`seed_demo_identities`) before it starts, and its
    `install_demo_identities` finds the install complete, as `make run` does on a later day.
    Each platform still has its own copy: what one test changes, no other sees.
    """
    from devstack.stack import Stack, StackConfig

    root = tmp_path_factory.mktemp("demo-identities")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    stack = Stack(config)  # the empower service alone: identities live there
    try:
        stack.start("empower")
        stack.wait_ready(90, services=("empower",))
        stack.install_demo_identities()
    finally:
        stack.stop_all()
    return config.data_dir


def seed_demo_identities(installed: Path, data_dir: Path) -> None:
    """Copy the identities `demo_identities` installed into a platform's data folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for path in installed.iterdir():
        if path.is_file() and path.suffix != ".gpkg":  # the map file is the test's own
            shutil.copy2(path, data_dir / path.name)


@pytest.fixture(scope="session")
def grid_index(demo_gpkg: Path):  # type: ignore[no-untyped-def]
    return load_grid_index(demo_gpkg)


COMPONENT_SCOPES = frozenset(
    f"{component}:{verb}" for component in NAMES for verb in ("read", "write")
) | {"events:handle", "events:manage"}


def principal_of(
    tenant: str, subject: str = "users/test", scopes: frozenset[str] = COMPONENT_SCOPES
) -> Principal:
    """A signed-in tester who may read and write every component and handle and manage
    events, nothing sensitive."""
    return Principal(subject=subject, tenant=tenant, kind="user", roles=("tester",), scopes=scopes)


class SignedAtCall(Sequence[tuple[str, bytes]]):
    """A principal's metadata, signed when a call reads it.

    A module-level caller signed at import would outlive its five-minute signature in a
    long test run; this one re-signs as the principal does for every outbound call.
    """

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        return self.principal.to_metadata()[index]

    def __len__(self) -> int:
        return len(self.principal.to_metadata())


def settings(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {"grpc_port": 0, "host": "127.0.0.1", "grace_seconds": 5.0}
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]


async def create_tenants(channel: grpc.aio.Channel, *paths: str) -> None:
    """Each node of `paths` (`sh/jd/at/va`) and every node above it, made once over
    empower's gRPC API by a boot service; the level is the depth (city = 1), and the
    division code is made up, 12 digits, unique within the call."""
    from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
    from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
    from services.empower.domain.roles import ALL_SCOPES

    boot = SignedAtCall(Principal("services/boot", "sh", kind="service", scopes=ALL_SCOPES))
    tenants = tenant_grpc.EmpowerServiceStub(channel)
    made: list[str] = []
    for path in paths:
        segments = path.split("/")
        for depth in range(1, len(segments) + 1):
            node = "/".join(segments[:depth])
            if node in made:
                continue
            parent = "tenants/" + "-".join(segments[: depth - 1]) if depth > 1 else ""
            await tenants.CreateTenant(
                tenant_pb.CreateTenantRequest(
                    parent=parent,
                    tenant_id=segments[depth - 1],
                    tenant=tenant_pb.Tenant(
                        display_name=segments[depth - 1],
                        level=depth,  # type: ignore[arg-type]
                        admin_code=f"31{len(made):010d}",
                    ),
                ),
                metadata=boot,
            )
            made.append(node)


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
async def map_server(seeded_map_store: Path, tmp_path: Path) -> AsyncIterator[InProcessServer]:
    """The map service started as `python -m services.map` starts it, on a copy of the town."""
    path = tmp_path / "map-server.gpkg"
    shutil.copy(seeded_map_store, path)
    component = await build_map(MapSettings(grpc_port=0, store_file=path, seed_file=None))
    server = await serve_in_process("map", component)
    yield server
    await server.channel.close()
    await server.running.stop()
    await component.close()


DSN_VARIABLE = "GRASSROOTS_TEST_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_connect(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        problem = str(exc)
    pytest.fail(
        f"PostgreSQL is not reachable at {dsn!r} ({problem}). Start PostgreSQL 15+ with "
        f"PostGIS 3 or point {DSN_VARIABLE} at a server where CREATE DATABASE is allowed.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgis_dsn() -> Iterator[str]:
    """A PostGIS database of its own for this test session, dropped at the end."""
    base = os.environ.get(DSN_VARIABLE, DEFAULT_DSN)
    name = f"grassroots_map_test_{uuid.uuid4().hex[:12]}"
    with _admin_connect(base) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(base, dbname=name)
    try:
        problem = ""
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION postgis")
            except psycopg.Error as exc:
                problem = str(exc).strip()
        if problem:
            pytest.fail(
                f"PostGIS is not available on {base!r} ({problem}). Install it, for example "
                "the Debian package postgresql-15-postgis-3.",
                pytrace=False,
            )
        yield dsn
    finally:
        with _admin_connect(base) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgis_test_dsn(postgis_dsn: str) -> Iterator[str]:
    """The session database seen through a schema of this test's own (first on search_path)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgis_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield make_conninfo(postgis_dsn, options=f"-csearch_path={schema},public")
    with psycopg.connect(postgis_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

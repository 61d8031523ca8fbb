"""Map stores under test: the embedded GeoPackage and PostGIS, each fresh per test.

PostGIS tests never skip: CI installs PostgreSQL and PostGIS, so a missing server is a
failure that says what to install or which DSN to set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from services.map.store.geopackage import GeoPackageStore
from services.map.store.postgis import PostgisStore

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


@pytest.fixture
def geopackage_store(tmp_path: Path) -> Iterator[GeoPackageStore]:
    store = GeoPackageStore(tmp_path / "map.gpkg")
    yield store
    store.close()


@pytest.fixture
def postgis_store(postgis_test_dsn: str) -> Iterator[PostgisStore]:
    store = PostgisStore(postgis_test_dsn)
    yield store
    store.close()


@pytest.fixture(params=["geopackage", "postgis"], ids=["geopackage", "postgis"])
def map_store(request: pytest.FixtureRequest) -> GeoPackageStore | PostgisStore:
    """Each backend in turn, empty; the PostGIS database is only made when needed."""
    store: GeoPackageStore | PostgisStore = request.getfixturevalue(f"{request.param}_store")
    return store

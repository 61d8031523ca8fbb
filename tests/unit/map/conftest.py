"""Map stores under test: the embedded GeoPackage and PostGIS, each fresh per test.

The PostGIS database fixtures live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.map.store.geopackage import GeoPackageStore
from services.map.store.postgis import PostgisStore


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

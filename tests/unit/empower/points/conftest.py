"""The points ledger on both stores: every test taking `ledger` runs on SQLite and on
PostgreSQL (a schema of the test's own, see tests/conftest.py)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.empower.domain.points import PointsLedger
from services.empower.store.points_postgres import PostgresPointsStore
from services.empower.store.points_sqlite import SqlitePointsStore
from services.kit.principal import Principal


def clerk(tenant: str, *scopes: str, subject: str = "users/clerk") -> Principal:
    return Principal(subject=subject, tenant=tenant, kind="user", scopes=frozenset(scopes))


@pytest.fixture(params=["sqlite", "postgres"])
async def points_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store: Any
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        store = await PostgresPointsStore.open(dsn, max_connections=8)
    else:
        store = SqlitePointsStore(tmp_path / "points.sqlite3")
    yield store
    closed = store.close()
    if inspect.isawaitable(closed):
        await closed


@pytest.fixture
def ledger(points_store: Any) -> PointsLedger:
    return PointsLedger(points_store)

"""Village credit on both stores: every test taking `world` runs with the credit and
points stores on SQLite and on PostgreSQL (a schema of the test's own, tests/conftest.py).
The audit chain is kept in a SQLite people store in both cases."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.empower.domain.audit import AuditLog
from services.empower.domain.credit import CreditDesk
from services.empower.domain.points import PointsLedger
from services.empower.store.credit_postgres import PostgresCreditStore
from services.empower.store.credit_sqlite import SqliteCreditStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.empower.store.points_postgres import PostgresPointsStore
from services.empower.store.points_sqlite import SqlitePointsStore


class Apps:
    """The identity service's apps, as far as consents need them."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    async def app_exists(self, tenant: str, app_id: str) -> bool:
        return (tenant, app_id) in self.names


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 6, 1, 8, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    desk: CreditDesk
    ledger: PointsLedger
    audit: AuditLog
    apps: Apps
    clock: Clock


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    credit: Any
    points: Any
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        credit = await PostgresCreditStore.open(dsn, max_connections=4)
        points = await PostgresPointsStore.open(dsn, max_connections=4)
    else:
        credit = SqliteCreditStore(tmp_path / "credit.sqlite3")
        points = SqlitePointsStore(tmp_path / "points.sqlite3")
    people = SqlitePeopleStore(tmp_path / "people.sqlite3")
    clock = Clock()
    audit = AuditLog(people, clock=clock)
    apps = Apps()
    desk = CreditDesk(credit, points, points, apps, audit, clock=clock)
    yield World(desk, PointsLedger(points, clock=clock), audit, apps, clock)
    for store in (credit, points, people):
        closed = store.close()
        if inspect.isawaitable(closed):
            await closed

"""Command store fixtures: every store test runs on SQLite and on PostgreSQL (a schema of
the test's own in the session's database, see tests/conftest.py)."""

from __future__ import annotations

import pytest

from services.command.store.postgres import PostgresCommandStore
from services.command.store.sqlite import SqliteCommandStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    """A command store on each backend, closed after the test."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        opened: SqliteCommandStore | PostgresCommandStore = await PostgresCommandStore.open(dsn)
    else:
        opened = SqliteCommandStore(tmp_path / "command.sqlite3")
    yield opened
    closing = opened.close()
    if closing is not None:
        await closing

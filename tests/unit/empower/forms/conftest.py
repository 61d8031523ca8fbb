"""Forms and reports on both stores: tests taking `desk` run on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.empower.domain.forms import FormsDesk
from services.empower.store.forms_postgres import PostgresFormsStore
from services.empower.store.forms_sqlite import SqliteFormsStore


@pytest.fixture(params=["sqlite", "postgres"])
async def forms_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store: Any
    if request.param == "postgres":
        store = await PostgresFormsStore.open(request.getfixturevalue("postgis_test_dsn"))
    else:
        store = SqliteFormsStore(tmp_path / "forms.sqlite3")
    yield store
    closed = store.close()
    if inspect.isawaitable(closed):
        await closed


@pytest.fixture
def desk(forms_store: Any) -> FormsDesk:
    return FormsDesk(forms_store)

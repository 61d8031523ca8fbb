"""PostgreSQL row-level security under the datasets store: a village's unit of work
sees only its own rows even with a query that has no tenant filter at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.empower.domain.audit import AuditLog
from services.empower.domain.datasets.files import FileFormat
from services.empower.domain.datasets.service import DatasetDesk
from services.empower.store.datasets_postgres import PostgresDatasetStore
from services.empower.store.people_postgres import PostgresPeopleStore
from services.kit import rls
from tests.unit.empower.datasets.conftest import (
    SEALER,
    TOWN,
    XIANGYANG,
    XINGMING,
    StaticAddresses,
    caller,
    csv,
    published,
    publisher,
    resident_line,
)


@pytest.fixture
async def store(postgis_test_dsn: str) -> AsyncIterator[PostgresDatasetStore]:
    store = await PostgresDatasetStore.open(postgis_test_dsn, max_connections=4)
    people = await PostgresPeopleStore.open(postgis_test_dsn, max_connections=2)
    desk = DatasetDesk(store, StaticAddresses(), AuditLog(people), SEALER)
    dataset = await published(desk)
    lines = [
        resident_line(1, "xingming"),
        resident_line(2, "xingming"),
        resident_line(3, "xiangyang"),
    ]
    await desk.import_rows(
        publisher(), dataset.resource_name, csv(*lines), FileFormat.CSV, snapshot=True
    )
    for village in (XINGMING, XIANGYANG):
        await desk.subscribe(caller(village, "datasets:read"), village, dataset.resource_name)
    yield store
    await store.close()  # type: ignore[misc]
    await people.close()  # type: ignore[misc]


async def tenants(store: PostgresDatasetStore, scope: str, table: str) -> list[str]:
    async with rls.scoped_transaction(store.pool, scope) as conn:
        cur = await conn.execute(f"SELECT tenant FROM {table} ORDER BY tenant")  # no filter
        return [row[0] for row in await cur.fetchall()]


@pytest.mark.parametrize("table", ["dataset_rows", "dataset_subscriptions"])
async def test_a_village_scope_sees_none_of_another_villages_rows(store, table):
    assert set(await tenants(store, XINGMING, table)) == {XINGMING}
    assert set(await tenants(store, XIANGYANG, table)) == {XIANGYANG}
    assert sorted(await tenants(store, TOWN, table)) == sorted(await tenants(store, "*", table))


async def test_a_village_cannot_write_rows_into_another_village(store):
    import psycopg

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with rls.scoped_transaction(store.pool, XINGMING) as conn:
            await conn.execute("UPDATE dataset_rows SET tenant = %s", (XIANGYANG,))
    assert sorted(set(await tenants(store, "*", "dataset_rows"))) == [XIANGYANG, XINGMING]

"""PostgreSQL row-level security under the people store: the wall below the filters.

These talk to the store's own pool (connections in the app role) with raw SQL that
has no tenant filter at all, as a store method with a forgotten WHERE clause would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from services.empower.domain.audit import AuditLog
from services.empower.domain.people import PeopleRegistry
from services.empower.store.people_postgres import PostgresPeopleStore
from services.kit import rls
from services.kit.masking import SENSITIVE_SCOPE
from tests.unit.empower.people.conftest import (
    SEALER,
    TOWN,
    XIANGYANG,
    XINGMING,
    caller,
    new_person,
)


@pytest.fixture
async def store(postgis_test_dsn: str) -> AsyncIterator[PostgresPeopleStore]:
    store = await PostgresPeopleStore.open(postgis_test_dsn, max_connections=4)
    registry = PeopleRegistry(store, AuditLog(store), SEALER)
    for n, village in enumerate([XINGMING, XINGMING, XIANGYANG, XIANGYANG, XIANGYANG]):
        writer = caller(village, "people:write")
        await registry.create_person(writer, village, new_person(n))
        reader = caller(village, "people:read", SENSITIVE_SCOPE, subject=f"users/r{n}")
        await registry.list_people(reader, village, purpose="rls check")
    yield store
    await store.close()  # type: ignore[misc]


async def tenants(store: PostgresPeopleStore, scope: str, table: str) -> list[str]:
    async with rls.scoped_transaction(store.pool, scope) as conn:
        cur = await conn.execute(f"SELECT tenant FROM {table} ORDER BY tenant")  # no filter
        return [row[0] for row in await cur.fetchall()]


@pytest.mark.parametrize("table", ["people", "people_audit"])
async def test_a_village_scope_sees_none_of_another_villages_rows(store, table):
    assert set(await tenants(store, XINGMING, table)) == {XINGMING}
    assert set(await tenants(store, XIANGYANG, table)) == {XIANGYANG}
    assert sorted(await tenants(store, TOWN, table)) == sorted(await tenants(store, "*", table))
    assert len(await tenants(store, TOWN, table)) == 5
    # A prefix that is not a parent path sees nothing ("sh/jiading/anting/xing").
    assert await tenants(store, XINGMING[:-4], table) == []


async def test_without_a_scope_the_app_role_sees_nothing(store):
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT current_user, count(*) FROM people GROUP BY 1")
        assert await cur.fetchall() == []
        cur = await conn.execute("SELECT current_user")
        assert (await cur.fetchone())[0] == rls.APP_ROLE
    # The schema owner (a superuser) sees every row, so the policy is what hid them.
    async with await psycopg.AsyncConnection.connect(store.dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM people")
        assert (await cur.fetchone())[0] == 5


async def test_rows_cannot_be_written_into_another_village(store):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with rls.scoped_transaction(store.pool, XINGMING) as conn:
            await conn.execute("UPDATE people SET tenant = %s", (XIANGYANG,))
    assert sorted(set(await tenants(store, "*", "people"))) == [XIANGYANG, XINGMING]

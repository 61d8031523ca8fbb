"""Row-level security under the PostgreSQL store: the wall below the SQL filters."""

from __future__ import annotations

import psycopg
import pytest

from services.empower.domain.identity import IdentityDirectory
from services.empower.store.identity_postgres import PostgresIdentityStore
from services.kit import rls
from services.kit.tenancy import ALL_TENANTS

from .conftest import (
    T0,
    TOWN,
    XIANGYANG,
    XINGMING,
    Clock,
    add_user,
    build_tree,
    cheap_hasher,
    close_store,
    open_store,
    staff,
)

USERNAMES = "SELECT username FROM users ORDER BY username"


@pytest.fixture
async def pg(request, tmp_path):
    store = await open_store("postgres", request, tmp_path)
    directory = IdentityDirectory(store, clock=Clock(T0), hasher=cheap_hasher())
    await build_tree(directory)
    await add_user(directory, XINGMING, "xm.worker")
    await add_user(directory, XIANGYANG, "xy.worker")
    await directory.create_app(
        staff(XIANGYANG, "village_secretary"), XIANGYANG, "A", ["map:read"], 5
    )
    yield store
    await close_store(store)


async def usernames(store: PostgresIdentityStore, scope: str) -> list[str]:
    async with rls.scoped_transaction(store.pool, scope) as conn:
        cur = await conn.execute(USERNAMES)
        return [row[0] for row in await cur.fetchall()]


async def test_a_scoped_transaction_sees_only_its_subtree(pg):
    assert await usernames(pg, XINGMING) == ["xm.worker"]
    assert await usernames(pg, XIANGYANG) == ["xy.worker"]
    assert await usernames(pg, TOWN) == ["xm.worker", "xy.worker"]
    assert await usernames(pg, ALL_TENANTS) == ["xm.worker", "xy.worker"]
    async with rls.scoped_transaction(pg.pool, XINGMING) as conn:
        for table in ("apps", "api_keys"):
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            assert (await cur.fetchone())[0] == 0, table


async def test_without_a_scope_the_pool_sees_nothing(pg):
    async with pg.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM users")
        assert (await cur.fetchone())[0] == 0
        cur = await conn.execute("SELECT current_user")
        assert (await cur.fetchone())[0] == rls.APP_ROLE


async def test_a_scope_cannot_write_into_another_tenant(pg):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with rls.scoped_transaction(pg.pool, XINGMING) as conn:
            await conn.execute(
                "UPDATE users SET tenant = %s WHERE username = 'xm.worker'", (XIANGYANG,)
            )
    async with rls.scoped_transaction(pg.pool, XINGMING) as conn:
        cur = await conn.execute("UPDATE users SET disabled = true WHERE username = 'xy.worker'")
        assert cur.rowcount == 0
    assert await usernames(pg, XIANGYANG) == ["xy.worker"]

"""PostgreSQL row-level security: the second wall under every store's tenant filter.

Every store already filters by the caller's subtree in its SQL. Row-level security
makes a forgotten filter harmless: tables with a `tenant` column get a policy that
shows a row only when it lies in the subtree named by the transaction setting
`grassroots.scope`, and `FORCE` applies it to the table owner too. Connections run
as the non-superuser role `grassroots_app` (superusers bypass every policy), so a
store must open each unit of work with `scoped_transaction(pool, subtree)`:

* a tenant path ("sh/jiading/anting") shows that node and its subtree;
* `ALL_TENANTS` ("*") is for the platform's own background work (outbox relay,
  sweeps, key lookups by the gateway) that is not done on behalf of one tenant;
* no setting shows nothing: a query outside `scoped_transaction` finds no rows.

The code calls that value a subtree everywhere (`scope` names OAuth scopes only); the
setting keeps its first name, `grassroots.scope`, which existing databases' policies read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from services.kit.tenancy import ALL_TENANTS

APP_ROLE = "grassroots_app"
SCOPE_SETTING = "grassroots.scope"

# One function so every policy agrees; the range test uses the (tenant, ...) indexes.
_VISIBLE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION grassroots_visible(row_tenant text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT CASE coalesce(current_setting('{SCOPE_SETTING}', true), '')
    WHEN '' THEN false
    WHEN '{ALL_TENANTS}' THEN true
    ELSE row_tenant COLLATE "C" = current_setting('{SCOPE_SETTING}', true) COLLATE "C"
      OR (row_tenant COLLATE "C"
            >= (current_setting('{SCOPE_SETTING}', true) || '/') COLLATE "C"
          AND row_tenant COLLATE "C"
            < (current_setting('{SCOPE_SETTING}', true) || '0') COLLATE "C")
  END
$$"""

_CREATE_ROLE = f"""
DO $$ BEGIN
  CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$"""


async def install(
    conn: psycopg.AsyncConnection,
    tenant_tables: Iterable[str],
    *,
    other_tables: Iterable[str] = (),
    append_only: Iterable[str] = (),
) -> None:
    """Create the app role, the policy function and a forced policy on each table.

    Runs as the schema owner, before any connection switches to the app role.
    `append_only` tables are granted SELECT and INSERT only: not even the
    application can change or delete what it wrote there.
    """
    await conn.execute(_CREATE_ROLE)
    await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(APP_ROLE)))
    await conn.execute(_VISIBLE_FUNCTION)
    role = sql.Identifier(APP_ROLE)
    row = await (await conn.execute("SELECT current_schema()")).fetchone()
    schema = sql.Identifier(row[0] if row and row[0] else "public")
    await conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    append_only = set(append_only)
    for table in tenant_tables:
        name = sql.Identifier(table)
        await conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(name))
        await conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(name))
        await conn.execute(sql.SQL("DROP POLICY IF EXISTS tenant_subtree ON {}").format(name))
        await conn.execute(
            sql.SQL(
                "CREATE POLICY tenant_subtree ON {} USING (grassroots_visible(tenant)) "
                "WITH CHECK (grassroots_visible(tenant))"
            ).format(name)
        )
    for table in [*tenant_tables, *other_tables]:
        rights = "SELECT, INSERT" if table in append_only else "SELECT, INSERT, UPDATE, DELETE"
        await conn.execute(
            sql.SQL("GRANT " + rights + " ON {} TO {}").format(sql.Identifier(table), role)
        )
    await conn.execute(
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, role)
    )


async def use_app_role(conn: psycopg.AsyncConnection) -> None:
    """Pool `configure` hook: every pooled connection acts as the policed app role."""
    await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP_ROLE)))
    if not conn.autocommit:
        await conn.commit()


@asynccontextmanager
async def scoped_transaction(
    pool: AsyncConnectionPool, subtree: str
) -> AsyncIterator[psycopg.AsyncConnection]:
    """One transaction whose rows are limited to `subtree` (a tenant path or "*")."""
    if not subtree:
        raise ValueError("a scoped transaction needs a tenant path or the `ALL_TENANTS` subtree")
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config(%s, %s, true)", (SCOPE_SETTING, subtree))
        yield conn

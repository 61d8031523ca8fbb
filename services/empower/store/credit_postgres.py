"""Village credit's policies and consents in PostgreSQL, with row-level security under
every query. A drop-in for the SQLite store (tests/unit/empower/credit runs every test
on both); the primary key on a policy's tenant and the unique index on a consent's
(tenant, request_id) settle races between replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.credit_model import Consent, Policy
from services.empower.domain.people_model import to_us
from services.empower.store import credit_rows as rows
from services.kit import rls
from services.kit.sqldialect import POSTGRES

_SCHEMA_LOCK = 0x4352_4544  # "CRED"
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS credit_policies (
        id             text COLLATE "C" NOT NULL,
        tenant         text COLLATE "C" PRIMARY KEY,
        display_name   text NOT NULL,
        window_days    integer NOT NULL,
        base_score     integer NOT NULL,
        points_weight  integer NOT NULL,
        deed_weight    integer NOT NULL,
        bands_json     text NOT NULL,
        create_us      bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS credit_consents (
        id          text COLLATE "C" PRIMARY KEY,
        tenant      text COLLATE "C" NOT NULL,
        household   text COLLATE "C" NOT NULL,
        consumer    text COLLATE "C" NOT NULL,
        purpose     text COLLATE "C" NOT NULL,
        expire_us   bigint NOT NULL,
        granted_by  text NOT NULL,
        request_id  text COLLATE "C" NOT NULL,
        create_us   bigint NOT NULL,
        revoke_us   bigint NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS credit_consents_request "
    "ON credit_consents (tenant, request_id)",
    "CREATE INDEX IF NOT EXISTS credit_consents_tenant ON credit_consents (tenant, id)",
    "CREATE INDEX IF NOT EXISTS credit_consents_reader "
    "ON credit_consents (household, consumer, purpose)",
)


def _q(statement: str) -> str:
    return POSTGRES.render(statement)


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


class PostgresCreditStore:
    """CreditStore on PostgreSQL; build it with `await PostgresCreditStore.open(dsn)`."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 5) -> None:
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-empower-credit",
        )
        self._opened = False

    @classmethod
    async def open(
        cls, dsn: str, *, min_connections: int = 1, max_connections: int = 5
    ) -> PostgresCreditStore:
        store = cls(dsn, min_connections=min_connections, max_connections=max_connections)
        connect = psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(conn, tenant_tables=["credit_policies", "credit_consents"])
        await store.pool.open(wait=True)
        store._opened = True
        return store

    async def insert_policy(self, subtree: str, policy: Policy) -> tuple[Policy, bool]:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(_q(rows.INSERT_POLICY), rows.policy_values(policy))
            added = cur.rowcount
            found = await _fetch(conn, _q(rows.POLICY_OF_TENANT), (policy.tenant,))
        return rows.row_to_policy(found[0]), added > 0

    async def get_policy(self, subtree: str, tenant: str, policy_id: str) -> Policy | None:
        where, args = rows.in_subtree(subtree)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(
                conn, _q(f"{rows.GET_POLICY} AND {where}"), (tenant, policy_id, *args)
            )
        return rows.row_to_policy(found[0]) if found else None

    async def policies_of(self, subtree: str, tenants: Sequence[str]) -> list[Policy]:
        if not tenants:
            return []
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.POLICIES_OF.format(marks=', '.join('?' * len(tenants)))} AND {where}")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, query, (*tenants, *args))
        return [rows.row_to_policy(r) for r in found]

    async def delete_policy(self, subtree: str, tenant: str, policy_id: str) -> bool:
        where, args = rows.in_subtree(subtree)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(
                _q(f"{rows.DELETE_POLICY} AND {where}"), (tenant, policy_id, *args)
            )
            return cur.rowcount > 0

    async def insert_consent(self, subtree: str, consent: Consent) -> Consent:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            await conn.execute(_q(rows.INSERT_CONSENT), rows.consent_values(consent))
            found = await _fetch(
                conn, _q(rows.CONSENT_OF_REQUEST), (consent.tenant, consent.request_id)
            )
        return rows.row_to_consent(found[0])

    async def get_consent(self, subtree: str, consent_id: str) -> Consent | None:
        where, args = rows.in_subtree(subtree)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, _q(f"{rows.GET_CONSENT} AND {where}"), (consent_id, *args))
        return rows.row_to_consent(found[0]) if found else None

    async def list_consents(
        self, subtree: str, household: str, consumer: str, limit: int, after_id: str | None
    ) -> list[Consent]:
        query, params = rows.list_clauses(subtree, household, consumer, after_id)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, _q(query), (*params, limit))
        return [rows.row_to_consent(r) for r in found]

    async def revoke_consent(self, subtree: str, consent_id: str, at: datetime) -> Consent | None:
        where, args = rows.in_subtree(subtree)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            await conn.execute(
                _q(f"{rows.REVOKE_CONSENT} AND {where}"), (to_us(at), consent_id, *args)
            )
            found = await _fetch(conn, _q(f"{rows.GET_CONSENT} AND {where}"), (consent_id, *args))
        return rows.row_to_consent(found[0]) if found else None

    async def consent_in_force(
        self, subtree: str, household: str, consumer: str, purpose: str, now: datetime
    ) -> Consent | None:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.CONSENT_IN_FORCE} AND {where} ORDER BY expire_us DESC LIMIT 1")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, query, (household, consumer, purpose, to_us(now), *args))
        return rows.row_to_consent(found[0]) if found else None

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task inside the loop that used the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError(
                    "close the PostgreSQL credit store inside its event loop"
                ) from None
            return None
        return loop.create_task(self.pool.close())

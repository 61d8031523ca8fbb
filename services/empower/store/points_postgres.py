"""The points ledger in PostgreSQL, with row-level security under every query.

A drop-in for the SQLite store (tests/unit/empower/points runs every test on both).
A posting locks its account row (`SELECT ... FOR UPDATE`), so postings to one account
take turns across replicas while other accounts proceed; the unique index on
(tenant, idempotency_key) is the last word on "once per key" when two replicas race
with one key on two accounts. The app role may only SELECT and INSERT ledger rows
and a trigger refuses UPDATE, DELETE and TRUNCATE for everyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.facts import points_fact
from services.empower.domain.people_model import to_us
from services.empower.domain.points_model import Account, Entry, Posted, Posting, Rule
from services.empower.domain.points_ports import Settle
from services.empower.store import outbox_rows as outbox
from services.empower.store import points_rows as rows
from services.kit import rls
from services.kit.bus import BusMessage
from services.kit.clock import utcnow
from services.kit.errors import NotFound
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x454D_504F  # "EMPO"
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS points_accounts (
        id            text COLLATE "C" PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        holder_kind   text NOT NULL,
        holder        text COLLATE "C" NOT NULL,
        display_name  text NOT NULL,
        balance       bigint NOT NULL,
        create_us     bigint NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS points_accounts_holder ON points_accounts (tenant, holder)",
    "CREATE INDEX IF NOT EXISTS points_accounts_tenant ON points_accounts (tenant, id)",
    """CREATE TABLE IF NOT EXISTS points_rules (
        id            text COLLATE "C" PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        display_name  text NOT NULL,
        fact_type     text NOT NULL,
        match_json    text NOT NULL,
        points        bigint NOT NULL,
        cap           bigint NOT NULL,
        cap_period    text NOT NULL,
        create_us     bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS points_rules_tenant ON points_rules (tenant)",
    """CREATE TABLE IF NOT EXISTS points_ledger (
        sequence         bigserial PRIMARY KEY,
        tenant           text COLLATE "C" NOT NULL,
        account_id       text COLLATE "C" NOT NULL REFERENCES points_accounts (id),
        kind             text NOT NULL,
        amount           bigint NOT NULL,
        balance_after    bigint NOT NULL,
        idempotency_key  text COLLATE "C" NOT NULL,
        rule_id          text NOT NULL,
        memo             text NOT NULL,
        actor            text NOT NULL,
        create_us        bigint NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS points_ledger_key "
    "ON points_ledger (tenant, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS points_ledger_account ON points_ledger (account_id, sequence)",
    "CREATE INDEX IF NOT EXISTS points_ledger_rule "
    "ON points_ledger (account_id, rule_id, create_us)",
    """CREATE OR REPLACE FUNCTION points_ledger_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'points_ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    "CREATE OR REPLACE TRIGGER points_ledger_append_only BEFORE UPDATE OR DELETE "
    "ON points_ledger FOR EACH ROW EXECUTE FUNCTION points_ledger_append_only()",
    "CREATE OR REPLACE TRIGGER points_ledger_no_truncate BEFORE TRUNCATE "
    "ON points_ledger FOR EACH STATEMENT EXECUTE FUNCTION points_ledger_append_only()",
    *outbox.postgres_schema("points_outbox"),
)


def _q(statement: str) -> str:
    return POSTGRES.render(statement)


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


class PostgresPointsStore:
    """PointsStore on PostgreSQL; build it with `await PostgresPointsStore.open(dsn)`."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        self.dsn = dsn
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-empower-points",
        )
        self._opened = False

    @classmethod
    async def open(
        cls, dsn: str, *, min_connections: int = 1, max_connections: int = 10
    ) -> PostgresPointsStore:
        store = cls(dsn, min_connections=min_connections, max_connections=max_connections)
        connect = psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(
                conn,
                tenant_tables=["points_accounts", "points_rules", "points_ledger", "points_outbox"],
                append_only=["points_ledger"],
            )
        await store.pool.open(wait=True)
        store._opened = True
        return store

    async def open_account(self, subtree: str, account: Account) -> Account:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            await conn.execute(_q(rows.INSERT_ACCOUNT), rows.account_values(account))
            found = await _fetch(conn, _q(rows.ACCOUNT_OF_HOLDER), (account.tenant, account.holder))
        return rows.row_to_account(found[0])

    async def get_account(self, subtree: str, account_id: str) -> Account | None:
        where, args = rows.in_subtree(subtree)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, _q(f"{rows.GET_ACCOUNT} AND {where}"), (account_id, *args))
        return rows.row_to_account(found[0]) if found else None

    async def list_accounts(
        self, subtree: str, holder: str, limit: int, after_id: str | None
    ) -> list[Account]:
        where, args = rows.in_subtree(subtree)
        clauses: list[str] = [where]
        params: list[object] = [*args]
        if holder:
            clauses.append("holder = ?")
            params.append(holder)
        if after_id is not None:
            clauses.append("id > ?")
            params.append(after_id)
        query = _q(f"{rows.LIST_ACCOUNTS}{' AND '.join(clauses)} ORDER BY id LIMIT ?")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, query, (*params, limit))
        return [rows.row_to_account(r) for r in found]

    async def insert_rule(self, subtree: str, rule: Rule) -> None:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            await conn.execute(_q(rows.INSERT_RULE), rows.rule_values(rule))

    async def delete_rule(self, subtree: str, tenant: str, rule_id: str) -> bool:
        where, args = rows.in_subtree(subtree)
        query = _q(f"DELETE FROM points_rules WHERE tenant = ? AND id = ? AND {where}")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(query, (tenant, rule_id, *args))
            return cur.rowcount > 0

    async def rules_of(self, subtree: str, tenants: Sequence[str]) -> list[Rule]:
        if not tenants:
            return []
        query = _q(rows.RULES_OF.format(marks=", ".join("?" * len(tenants))))
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, query, tuple(tenants))
        return [rows.row_to_rule(r) for r in found]

    async def post(self, subtree: str, posting: Posting, settle: Settle) -> Posted:
        try:
            return await self._post(subtree, posting, settle)
        except psycopg.errors.UniqueViolation:
            # Another replica wrote this key on another account first: that is the entry.
            async with rls.scoped_transaction(self.pool, subtree) as conn:
                found = await _fetch(
                    conn, _q(rows.ENTRY_BY_KEY), (posting.tenant, posting.idempotency_key)
                )
            return Posted(rows.row_to_entry(found[0]), created=False)

    async def _post(self, subtree: str, posting: Posting, settle: Settle) -> Posted:
        where, args = rows.in_subtree(subtree)
        lock = _q(f"{rows.GET_ACCOUNT} AND {where} FOR UPDATE")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, lock, (posting.account_id, *args))
            if not found or found[0]["tenant"] != posting.tenant:
                raise NotFound(f"points account {posting.account_id!r} not found")
            before = await _fetch(
                conn, _q(rows.ENTRY_BY_KEY), (posting.tenant, posting.idempotency_key)
            )
            if before:
                return Posted(rows.row_to_entry(before[0]), created=False)
            balance = int(found[0]["balance"])
            since = rows.earned_since(posting)
            earned = 0
            if since is not None:
                cur = await conn.execute(
                    _q(rows.EARNED_SINCE), (posting.account_id, posting.rule_id, since)
                )
                earned = int((await cur.fetchone() or (0,))[0])
            amount, memo = settle(posting, balance, earned)
            after = balance + amount
            cur = await conn.execute(
                _q(rows.INSERT_ENTRY), rows.new_entry_values(posting, amount, after, memo)
            )
            sequence = (await cur.fetchone() or (0,))[0]
            await conn.execute(_q(rows.MOVE_BALANCE), (after, posting.account_id))
            entry = rows.entry_of(int(sequence), posting, amount, after, memo)
            # The fact commits with the entry, or neither does (ADR 6).
            await conn.execute(
                _q(outbox.insert("points_outbox")), outbox.values(points_fact(entry))
            )
        return Posted(entry, created=True)

    async def unpublished(self, limit: int) -> list[BusMessage]:
        """Facts not yet on the bus, oldest first."""
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            found = await _fetch(conn, _q(outbox.unpublished("points_outbox")), (limit,))
        return [outbox.to_message(r) for r in found]

    async def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            await conn.execute(
                _q(outbox.mark("points_outbox", len(seqs))), (to_us(utcnow()), *seqs)
            )

    async def list_entries(
        self, subtree: str, account_id: str, limit: int, before_sequence: int | None
    ) -> list[Entry]:
        where, args = rows.in_subtree(subtree)
        query = rows.LIST_ENTRIES + f"AND {where} "
        params: list[object] = [account_id, *args]
        if before_sequence is not None:
            query += "AND sequence < ? "
            params.append(before_sequence)
        query = _q(query + "ORDER BY sequence DESC LIMIT ?")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            found = await _fetch(conn, query, (*params, limit))
        return [rows.row_to_entry(r) for r in found]

    async def entries_total(self, subtree: str, account_id: str) -> int:
        where, args = rows.in_subtree(subtree)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(_q(f"{rows.ENTRIES_TOTAL} AND {where}"), (account_id, *args))
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def credited_since(
        self, subtree: str, account_id: str, since: datetime
    ) -> tuple[int, int]:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.CREDITED_SINCE} AND {where}")
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(query, (account_id, to_us(since), *args))
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task inside the loop that used the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError(
                    "close the PostgreSQL points store inside its event loop"
                ) from None
            return None
        return loop.create_task(self.pool.close())

"""Notices and deliveries in PostgreSQL, under row-level security.

A drop-in for the SQLite store (tests/unit/empower/notices runs every test on both).
Delivery work (due deliveries, a recipient's own list) runs in the `ALL_TENANTS` subtree: it is
the service's own work, and the domain checks the recipient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.facts import delivery_fact
from services.empower.domain.notices_model import Channel, Delivery, Notice
from services.empower.domain.people_model import to_us
from services.empower.store import notices_rows as rows
from services.empower.store import outbox_rows as outbox
from services.kit import rls
from services.kit.bus import BusMessage
from services.kit.clock import utcnow
from services.kit.sqldialect import POSTGRES, in_subtree
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x454D_4E4F  # "EMNO"
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS notices (
        id             text COLLATE "C" PRIMARY KEY,
        tenant         text COLLATE "C" NOT NULL,
        title          text NOT NULL,
        body           text NOT NULL,
        audience_json  text NOT NULL,
        channels_json  text NOT NULL,
        sender         text NOT NULL,
        request_id     text NOT NULL,
        create_us      bigint NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS notices_request ON notices (tenant, request_id)",
    "CREATE INDEX IF NOT EXISTS notices_tenant ON notices (tenant, id)",
    """CREATE TABLE IF NOT EXISTS notice_deliveries (
        id          text COLLATE "C" PRIMARY KEY,
        notice_id   text COLLATE "C" NOT NULL REFERENCES notices (id),
        tenant      text COLLATE "C" NOT NULL,
        recipient   text COLLATE "C" NOT NULL,
        channel     text NOT NULL,
        state       text NOT NULL,
        attempts    integer NOT NULL,
        last_error  text NOT NULL,
        next_us     bigint NOT NULL,
        read_us     bigint,
        create_us   bigint NOT NULL,
        update_us   bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS notice_deliveries_notice ON notice_deliveries (notice_id, id)",
    "CREATE INDEX IF NOT EXISTS notice_deliveries_due ON notice_deliveries (state, next_us)",
    "CREATE INDEX IF NOT EXISTS notice_deliveries_recipient "
    "ON notice_deliveries (recipient, channel, create_us)",
    """CREATE TABLE IF NOT EXISTS wechat_bindings (
        person         text COLLATE "C" PRIMARY KEY,
        tenant         text COLLATE "C" NOT NULL,
        openid_sealed  text NOT NULL,
        bind_us        bigint NOT NULL)""",
    *outbox.postgres_schema("notices_outbox"),
)
OUTBOX = "notices_outbox"


def _q(statement: str) -> str:
    return POSTGRES.render(statement)


class PostgresNoticesStore:
    """NoticesStore on PostgreSQL; build it with `await PostgresNoticesStore.open(dsn)`."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-empower-notices",
        )
        self._opened = False

    @classmethod
    async def open(cls, dsn: str, *, max_connections: int = 10) -> PostgresNoticesStore:
        store = cls(dsn, max_connections=max_connections)
        connect = psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(
                conn,
                tenant_tables=["notices", "notice_deliveries", "wechat_bindings", OUTBOX],
            )
        await store.pool.open(wait=True)
        store._opened = True
        return store

    async def _fetch(
        self, subtree: str, query: str, params: Sequence[object]
    ) -> list[dict[str, Any]]:
        async with (
            rls.scoped_transaction(self.pool, subtree) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(_q(query), params)
            return await cur.fetchall()

    async def insert_notice(
        self, subtree: str, notice: Notice, deliveries: Sequence[Delivery]
    ) -> Notice:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(_q(rows.INSERT_NOTICE), rows.notice_values(notice))
            if cur.rowcount:
                async with conn.cursor() as many:
                    await many.executemany(
                        _q(rows.INSERT_DELIVERY), [rows.delivery_values(d) for d in deliveries]
                    )
                return notice
            async with conn.cursor(row_factory=dict_row) as found:
                await found.execute(_q(rows.NOTICE_BY_REQUEST), (notice.tenant, notice.request_id))
                row = await found.fetchone()
        assert row is not None
        return rows.row_to_notice(row)

    async def get_notice(self, subtree: str, tenant: str, notice_id: str) -> Notice | None:
        where, args = in_subtree(subtree)
        found = await self._fetch(
            subtree, f"{rows.GET_NOTICE} AND {where}", [tenant, notice_id, *args]
        )
        if not found:
            return None
        notice = rows.row_to_notice(found[0])
        notice.counts.update(rows.counts_of(await self._fetch(subtree, rows.COUNTS, [notice_id])))
        return notice

    async def list_notices(self, subtree: str, limit: int, before_id: str | None) -> list[Notice]:
        where, args = in_subtree(subtree)
        query = rows.LIST_NOTICES + where
        params: list[object] = [*args]
        if before_id is not None:
            query += " AND id < ?"
            params.append(before_id)
        found = await self._fetch(subtree, query + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [rows.row_to_notice(r) for r in found]

    async def list_deliveries(
        self, subtree: str, notice_id: str, limit: int, after_id: str | None
    ) -> list[Delivery]:
        where, args = in_subtree(subtree)
        query = rows.LIST_DELIVERIES + where
        params: list[object] = [notice_id, *args]
        if after_id is not None:
            query += " AND id > ?"
            params.append(after_id)
        found = await self._fetch(subtree, query + " ORDER BY id LIMIT ?", [*params, limit])
        return [rows.row_to_delivery(r) for r in found]

    async def get_delivery(self, subtree: str, delivery_id: str) -> Delivery | None:
        where, args = in_subtree(subtree)
        found = await self._fetch(subtree, rows.GET_DELIVERY + where, [delivery_id, *args])
        return rows.row_to_delivery(found[0]) if found else None

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, Notice]]:
        found = await self._fetch(ALL_TENANTS, rows.DUE, [to_us(now), limit])
        return [(rows.row_to_delivery(r), rows.row_to_notice(r, "n_")) for r in found]

    async def bind_wechat(self, tenant: str, person: str, sealed: str, at: datetime) -> None:
        async with rls.scoped_transaction(self.pool, tenant) as conn:
            await conn.execute(_q(rows.BIND_WECHAT), (person, tenant, sealed, to_us(at)))

    async def wechat_of(self, person: str) -> str | None:
        found = await self._fetch(ALL_TENANTS, rows.WECHAT_OF, [person])
        return str(found[0]["openid_sealed"]) if found else None

    async def update_delivery(self, delivery: Delivery, fact: str = "") -> None:
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            await conn.execute(_q(rows.UPDATE_DELIVERY), rows.update_values(delivery))
            if fact:  # the fact commits with the change, or neither does (ADR 6)
                await conn.execute(
                    _q(outbox.insert(OUTBOX)), outbox.values(delivery_fact(fact, delivery))
                )

    async def unpublished(self, limit: int) -> list[BusMessage]:
        """Facts not yet on the bus, oldest first."""
        found = await self._fetch(ALL_TENANTS, outbox.unpublished(OUTBOX), [limit])
        return [outbox.to_message(r) for r in found]

    async def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            await conn.execute(_q(outbox.mark(OUTBOX, len(seqs))), (to_us(utcnow()), *seqs))

    async def deliveries_to(
        self, recipient: str, channel: Channel, limit: int
    ) -> list[tuple[Delivery, Notice]]:
        found = await self._fetch(ALL_TENANTS, rows.TO_RECIPIENT, [recipient, channel.value, limit])
        return [(rows.row_to_delivery(r), rows.row_to_notice(r, "n_")) for r in found]

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task inside the loop that used the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError(
                    "close the PostgreSQL notices store inside its event loop"
                ) from None
            return None
        return loop.create_task(self.pool.close())

"""The embedded notices store: notices and their deliveries in one SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from services.empower.domain.facts import delivery_fact
from services.empower.domain.notices_model import Channel, Delivery, Notice
from services.empower.domain.people_model import to_us
from services.empower.store import notices_rows as rows
from services.empower.store import outbox_rows as outbox
from services.kit.bus import BusMessage
from services.kit.clock import utcnow
from services.kit.sqldialect import in_subtree
from services.kit.sqlite import SqliteDatabase, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    audience_json  TEXT NOT NULL,
    channels_json  TEXT NOT NULL,
    sender         TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    create_us      INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS notices_request ON notices (tenant, request_id);
CREATE INDEX IF NOT EXISTS notices_tenant ON notices (tenant, id);
CREATE TABLE IF NOT EXISTS notice_deliveries (
    id          TEXT PRIMARY KEY,
    notice_id   TEXT NOT NULL REFERENCES notices (id),
    tenant      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    next_us     INTEGER NOT NULL,
    read_us     INTEGER,
    create_us   INTEGER NOT NULL,
    update_us   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notice_deliveries_notice ON notice_deliveries (notice_id, id);
CREATE INDEX IF NOT EXISTS notice_deliveries_due ON notice_deliveries (state, next_us);
CREATE INDEX IF NOT EXISTS notice_deliveries_recipient
    ON notice_deliveries (recipient, channel, create_us);
CREATE TABLE IF NOT EXISTS wechat_bindings (
    person         TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    openid_sealed  TEXT NOT NULL,
    bind_us        INTEGER NOT NULL
);
""" + outbox.sqlite_schema("notices_outbox")
OUTBOX = "notices_outbox"


class SqliteNoticesStore:
    """NoticesStore on one SQLite file (WAL, one writer thread)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))

    async def insert_notice(
        self, subtree: str, notice: Notice, deliveries: Sequence[Delivery]
    ) -> Notice:
        def work(conn: sqlite3.Connection) -> Notice:
            added = conn.execute(rows.INSERT_NOTICE, rows.notice_values(notice)).rowcount
            if added:
                conn.executemany(
                    rows.INSERT_DELIVERY, [rows.delivery_values(d) for d in deliveries]
                )
                return notice
            row = conn.execute(
                rows.NOTICE_BY_REQUEST, (notice.tenant, notice.request_id)
            ).fetchone()
            return rows.row_to_notice(row)

        return await self.db.run(lambda conn: transaction(conn, work))

    async def get_notice(self, subtree: str, tenant: str, notice_id: str) -> Notice | None:
        where, args = in_subtree(subtree)

        def run(conn: sqlite3.Connection) -> Notice | None:
            row = conn.execute(
                f"{rows.GET_NOTICE} AND {where}", (tenant, notice_id, *args)
            ).fetchone()
            if row is None:
                return None
            counts = rows.counts_of(list(conn.execute(rows.COUNTS, (notice_id,))))
            found = rows.row_to_notice(row)
            found.counts.update(counts)
            return found

        return await self.db.run(run)

    async def list_notices(self, subtree: str, limit: int, before_id: str | None) -> list[Notice]:
        where, args = in_subtree(subtree)
        query = rows.LIST_NOTICES + where
        params: list[object] = [*args]
        if before_id is not None:
            query += " AND id < ?"
            params.append(before_id)

        def run(conn: sqlite3.Connection) -> list[Notice]:
            found = conn.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit))
            return [rows.row_to_notice(r) for r in found]

        return await self.db.run(run)

    async def list_deliveries(
        self, subtree: str, notice_id: str, limit: int, after_id: str | None
    ) -> list[Delivery]:
        where, args = in_subtree(subtree)
        query = rows.LIST_DELIVERIES + where
        params: list[object] = [notice_id, *args]
        if after_id is not None:
            query += " AND id > ?"
            params.append(after_id)

        def run(conn: sqlite3.Connection) -> list[Delivery]:
            found = conn.execute(query + " ORDER BY id LIMIT ?", (*params, limit))
            return [rows.row_to_delivery(r) for r in found]

        return await self.db.run(run)

    async def get_delivery(self, subtree: str, delivery_id: str) -> Delivery | None:
        where, args = in_subtree(subtree)

        def run(conn: sqlite3.Connection) -> Delivery | None:
            row = conn.execute(rows.GET_DELIVERY + where, (delivery_id, *args)).fetchone()
            return rows.row_to_delivery(row) if row else None

        return await self.db.run(run)

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, Notice]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Delivery, Notice]]:
            found = conn.execute(rows.DUE, (to_us(now), limit))
            return [(rows.row_to_delivery(r), rows.row_to_notice(r, "n_")) for r in found]

        return await self.db.run(run)

    async def bind_wechat(self, tenant: str, person: str, sealed: str, at: datetime) -> None:
        await self.db.run(
            lambda conn: conn.execute(rows.BIND_WECHAT, (person, tenant, sealed, to_us(at)))
        )

    async def wechat_of(self, person: str) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(rows.WECHAT_OF, (person,)).fetchone()
            return str(row[0]) if row else None

        return await self.db.run(run)

    async def update_delivery(self, delivery: Delivery, fact: str = "") -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(rows.UPDATE_DELIVERY, rows.update_values(delivery))
            if fact:  # the fact commits with the change, or neither does (ADR 6)
                conn.execute(outbox.insert(OUTBOX), outbox.values(delivery_fact(fact, delivery)))

        await self.db.run(lambda conn: transaction(conn, work))

    async def unpublished(self, limit: int) -> list[BusMessage]:
        """Facts not yet on the bus, oldest first."""
        query = outbox.unpublished(OUTBOX)
        return await self.db.run(
            lambda conn: [outbox.to_message(r) for r in conn.execute(query, (limit,))]
        )

    async def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        query = outbox.mark(OUTBOX, len(seqs))
        await self.db.run(lambda conn: conn.execute(query, (to_us(utcnow()), *seqs)))

    async def deliveries_to(
        self, recipient: str, channel: Channel, limit: int
    ) -> list[tuple[Delivery, Notice]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Delivery, Notice]]:
            found = conn.execute(rows.TO_RECIPIENT, (recipient, channel.value, limit))
            return [(rows.row_to_delivery(r), rows.row_to_notice(r, "n_")) for r in found]

        return await self.db.run(run)

    def close(self) -> None:
        self.db.close()

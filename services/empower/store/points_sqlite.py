"""The embedded points ledger: accounts, rules and entries in one SQLite file.

Every posting runs inside BEGIN IMMEDIATE on the database's single writer thread, so
postings take turns: the key check, the cap sum, the entry and the new balance are
one atomic step. Triggers refuse UPDATE and DELETE on the ledger.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from services.empower.domain.facts import points_fact
from services.empower.domain.people_model import to_us
from services.empower.domain.points_model import Account, Entry, Posted, Posting, Rule
from services.empower.domain.points_ports import Settle
from services.empower.store import outbox_rows as outbox
from services.empower.store import points_rows as rows
from services.kit.bus import BusMessage
from services.kit.clock import utcnow
from services.kit.errors import NotFound
from services.kit.sqldialect import SQLITE
from services.kit.sqlite import SqliteDatabase, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS points_accounts (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    holder_kind   TEXT NOT NULL,
    holder        TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    balance       INTEGER NOT NULL,
    create_us     INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS points_accounts_holder ON points_accounts (tenant, holder);
CREATE INDEX IF NOT EXISTS points_accounts_tenant ON points_accounts (tenant, id);
CREATE TABLE IF NOT EXISTS points_rules (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    fact_type     TEXT NOT NULL,
    match_json    TEXT NOT NULL,
    points        INTEGER NOT NULL,
    cap           INTEGER NOT NULL,
    cap_period    TEXT NOT NULL,
    create_us     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS points_rules_tenant ON points_rules (tenant);
CREATE TABLE IF NOT EXISTS points_ledger (
    sequence         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES points_accounts (id),
    kind             TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    balance_after    INTEGER NOT NULL,
    idempotency_key  TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    memo             TEXT NOT NULL,
    actor            TEXT NOT NULL,
    create_us        INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS points_ledger_key ON points_ledger (tenant, idempotency_key);
CREATE INDEX IF NOT EXISTS points_ledger_account ON points_ledger (account_id, sequence);
CREATE INDEX IF NOT EXISTS points_ledger_rule ON points_ledger (account_id, rule_id, create_us);
CREATE TRIGGER IF NOT EXISTS points_ledger_no_update BEFORE UPDATE ON points_ledger
BEGIN SELECT RAISE(ABORT, 'points_ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS points_ledger_no_delete BEFORE DELETE ON points_ledger
BEGIN SELECT RAISE(ABORT, 'points_ledger is append-only'); END;
""" + outbox.sqlite_schema("points_outbox")


def _q(statement: str) -> str:
    return SQLITE.render(statement)


class SqlitePointsStore:
    """PointsStore on one SQLite file (WAL, one writer thread)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))

    async def open_account(self, subtree: str, account: Account) -> Account:
        def run(conn: sqlite3.Connection) -> Account:
            conn.execute(_q(rows.INSERT_ACCOUNT), rows.account_values(account))
            row = conn.execute(
                _q(rows.ACCOUNT_OF_HOLDER), (account.tenant, account.holder)
            ).fetchone()
            return rows.row_to_account(row)

        return await self.db.run(run)

    async def get_account(self, subtree: str, account_id: str) -> Account | None:
        where, args = rows.in_subtree(subtree)

        def run(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                _q(f"{rows.GET_ACCOUNT} AND {where}"), (account_id, *args)
            ).fetchone()
            return rows.row_to_account(row) if row else None

        return await self.db.run(run)

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

        def run(conn: sqlite3.Connection) -> list[Account]:
            return [rows.row_to_account(r) for r in conn.execute(query, (*params, limit))]

        return await self.db.run(run)

    async def insert_rule(self, subtree: str, rule: Rule) -> None:
        await self.db.run(lambda conn: conn.execute(_q(rows.INSERT_RULE), rows.rule_values(rule)))

    async def delete_rule(self, subtree: str, tenant: str, rule_id: str) -> bool:
        where, args = rows.in_subtree(subtree)
        query = _q(f"DELETE FROM points_rules WHERE tenant = ? AND id = ? AND {where}")
        return await self.db.run(
            lambda conn: conn.execute(query, (tenant, rule_id, *args)).rowcount > 0
        )

    async def rules_of(self, subtree: str, tenants: Sequence[str]) -> list[Rule]:
        if not tenants:
            return []
        query = _q(rows.RULES_OF.format(marks=SQLITE.marks(len(tenants))))

        def run(conn: sqlite3.Connection) -> list[Rule]:
            return [rows.row_to_rule(r) for r in conn.execute(query, tuple(tenants))]

        return await self.db.run(run)

    async def post(self, subtree: str, posting: Posting, settle: Settle) -> Posted:
        where, args = rows.in_subtree(subtree)
        account_query = _q(f"{rows.GET_ACCOUNT} AND {where}")

        def work(conn: sqlite3.Connection) -> Posted:
            row = conn.execute(account_query, (posting.account_id, *args)).fetchone()
            if row is None or row["tenant"] != posting.tenant:
                raise NotFound(f"points account {posting.account_id!r} not found")
            before = conn.execute(
                _q(rows.ENTRY_BY_KEY), (posting.tenant, posting.idempotency_key)
            ).fetchone()
            if before is not None:
                return Posted(rows.row_to_entry(before), created=False)
            balance = int(row["balance"])
            since = rows.earned_since(posting)
            earned = 0
            if since is not None:
                earned = int(
                    conn.execute(
                        _q(rows.EARNED_SINCE), (posting.account_id, posting.rule_id, since)
                    ).fetchone()[0]
                )
            amount, memo = settle(posting, balance, earned)
            after = balance + amount
            sequence = conn.execute(
                _q(rows.INSERT_ENTRY), rows.new_entry_values(posting, amount, after, memo)
            ).fetchone()[0]
            conn.execute(_q(rows.MOVE_BALANCE), (after, posting.account_id))
            entry = rows.entry_of(int(sequence), posting, amount, after, memo)
            # The fact commits with the entry, or neither does (ADR 6).
            conn.execute(outbox.insert("points_outbox"), outbox.values(points_fact(entry)))
            return Posted(entry, created=True)

        return await self.db.run(lambda conn: transaction(conn, work))

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

        def run(conn: sqlite3.Connection) -> list[Entry]:
            return [rows.row_to_entry(r) for r in conn.execute(query, (*params, limit))]

        return await self.db.run(run)

    async def entries_total(self, subtree: str, account_id: str) -> int:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.ENTRIES_TOTAL} AND {where}")
        return await self.db.run(
            lambda conn: int(conn.execute(query, (account_id, *args)).fetchone()[0])
        )

    async def credited_since(
        self, subtree: str, account_id: str, since: datetime
    ) -> tuple[int, int]:
        where, args = rows.in_subtree(subtree)
        query = _q(f"{rows.CREDITED_SINCE} AND {where}")

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            total, count = conn.execute(query, (account_id, to_us(since), *args)).fetchone()
            return int(total), int(count)

        return await self.db.run(run)

    async def unpublished(self, limit: int) -> list[BusMessage]:
        """Facts not yet on the bus, oldest first."""
        query = outbox.unpublished("points_outbox")
        return await self.db.run(
            lambda conn: [outbox.to_message(r) for r in conn.execute(query, (limit,))]
        )

    async def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        query = outbox.mark("points_outbox", len(seqs))
        await self.db.run(lambda conn: conn.execute(query, (to_us(utcnow()), *seqs)))

    def close(self) -> None:
        self.db.close()

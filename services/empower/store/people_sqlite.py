"""The embedded people store: the registry and its audit log in one SQLite file.

Names, ID numbers and phone numbers arrive sealed by the domain and are written as
they are; the blind-index columns serve exact lookups. The audit log is one hash
chain: an append reads the chain head, inserts the entry and moves the head inside
one BEGIN IMMEDIATE transaction on the database's single writer thread, so appends
take turns (also across processes sharing the file) and the chain cannot fork.
Triggers refuse UPDATE and DELETE on the audit table, so a bug cannot rewrite it;
someone with the file in hand can, and `AuditLog.verify` is what catches that.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from services.empower.domain.people_model import (
    GENESIS_HASH,
    AuditEntry,
    AuditFilter,
    PersonFilter,
    PersonRecord,
    from_us,
    to_us,
    unreadable_entry,
)
from services.empower.domain.people_ports import MakeEntry, PersonChange
from services.empower.store.people_rows import (
    AUDIT_CHAIN,
    DELETE_PERSON,
    GET_PERSON,
    INSERT_AUDIT,
    INSERT_PERSON,
    MOVE_HEAD,
    PERSON_COLUMN_NAMES,
    READ_HEAD,
    UPDATE_PERSON,
    UPDATED_COLUMNS,
    audit_query,
    duplicate_error,
    in_subtree,
    people_query,
)
from services.kit.errors import NotFound
from services.kit.sqlite import SqliteDatabase, transaction

SCHEMA_VERSION = 1
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS people (
    id                TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    name_sealed       TEXT NOT NULL,
    id_number_sealed  TEXT NOT NULL,
    id_number_index   TEXT NOT NULL,
    phone_sealed      TEXT NOT NULL DEFAULT '',
    phone_index       TEXT NOT NULL DEFAULT '',
    gender            TEXT NOT NULL,
    birth_date        TEXT NOT NULL,
    address           TEXT NOT NULL DEFAULT '',
    building          TEXT NOT NULL DEFAULT '',
    grid_cell         TEXT NOT NULL DEFAULT '',
    tags              TEXT NOT NULL DEFAULT '[]',
    create_us         INTEGER NOT NULL,
    update_us         INTEGER NOT NULL,
    version           INTEGER NOT NULL DEFAULT 1,
    carer             TEXT NOT NULL DEFAULT '',
    user_ref          TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS people_tenant_id_number ON people (tenant, id_number_index);
CREATE INDEX IF NOT EXISTS people_tenant_id ON people (tenant, id);
CREATE INDEX IF NOT EXISTS people_id_number ON people (id_number_index);
CREATE INDEX IF NOT EXISTS people_phone ON people (phone_index) WHERE phone_index <> '';
CREATE TABLE IF NOT EXISTS people_audit (
    sequence    INTEGER PRIMARY KEY,
    time_us     INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    app         TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    action      TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    records     TEXT NOT NULL,
    fields      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    entry_hash  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS people_audit_tenant ON people_audit (tenant, sequence);
CREATE INDEX IF NOT EXISTS people_audit_subject ON people_audit (subject, sequence);
CREATE TABLE IF NOT EXISTS people_audit_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sequence    INTEGER NOT NULL,
    entry_hash  TEXT NOT NULL
);
INSERT OR IGNORE INTO people_audit_head (id, sequence, entry_hash) VALUES (1, 0, '{GENESIS_HASH}');
CREATE TRIGGER IF NOT EXISTS people_audit_no_update BEFORE UPDATE ON people_audit
BEGIN SELECT RAISE(ABORT, 'people_audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS people_audit_no_delete BEFORE DELETE ON people_audit
BEGIN SELECT RAISE(ABORT, 'people_audit is append-only'); END;
"""


_INSERT_OR_SKIP = INSERT_PERSON.replace("INSERT", "INSERT OR IGNORE", 1)


def person_values(record: PersonRecord) -> tuple[object, ...]:
    """A record as row values in PERSON_COLUMNS order (tags as a JSON array)."""
    return (
        record.id,
        record.tenant,
        record.kind,
        record.name_sealed,
        record.id_number_sealed,
        record.id_number_index,
        record.phone_sealed,
        record.phone_index,
        record.gender,
        record.birth_date.isoformat(),
        record.address,
        record.building,
        record.grid_cell,
        json.dumps(list(record.tags)),
        to_us(record.create_time),
        to_us(record.update_time),
        record.version,
        record.carer,
        record.user,
    )


def row_to_person(row: sqlite3.Row) -> PersonRecord:
    return PersonRecord(
        id=row["id"],
        tenant=row["tenant"],
        kind=row["kind"],
        name_sealed=row["name_sealed"],
        id_number_sealed=row["id_number_sealed"],
        id_number_index=row["id_number_index"],
        phone_sealed=row["phone_sealed"],
        phone_index=row["phone_index"],
        gender=row["gender"],
        birth_date=date.fromisoformat(row["birth_date"]),
        address=row["address"],
        building=row["building"],
        grid_cell=row["grid_cell"],
        tags=tuple(json.loads(row["tags"])),
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
        version=row["version"],
        carer=row["carer"],
        user=row["user_ref"],
    )


def audit_values(entry: AuditEntry) -> tuple[object, ...]:
    return (
        entry.sequence,
        to_us(entry.time),
        entry.subject,
        entry.app,
        entry.tenant,
        entry.action,
        entry.purpose,
        json.dumps(list(entry.records), ensure_ascii=False),
        json.dumps(list(entry.fields), ensure_ascii=False),
        entry.prev_hash,
        entry.entry_hash,
    )


def _strings(raw: object) -> tuple[str, ...]:
    values = json.loads(str(raw))
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("not a JSON list of strings")
    return tuple(values)


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError("not text")
    return raw


def row_to_audit(row: sqlite3.Row) -> AuditEntry:
    """The entry, or an unreadable one when someone wrote a value of the wrong shape."""
    try:
        time_us = row["time_us"]
        if not isinstance(time_us, int):
            raise ValueError("time is not an integer")
        return AuditEntry(
            sequence=row["sequence"],
            time=from_us(time_us),
            subject=_text(row["subject"]),
            app=_text(row["app"]),
            tenant=_text(row["tenant"]),
            action=_text(row["action"]),
            purpose=_text(row["purpose"]),
            records=_strings(row["records"]),
            fields=_strings(row["fields"]),
            prev_hash=_text(row["prev_hash"]),
            entry_hash=_text(row["entry_hash"]),
        )
    except (ValueError, TypeError, OverflowError):
        return unreadable_entry(int(row["sequence"]))


class SqlitePeopleStore:
    """People and the audit chain in one SQLite file (PeopleStore and AuditStore)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(self._migrate)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # A file made before people had a carer or an account gains the columns (empty).
        columns = {r[1] for r in conn.execute("PRAGMA table_info(people)").fetchall()}
        for added in ("carer", "user_ref"):
            if columns and added not in columns:
                conn.execute(f"ALTER TABLE people ADD COLUMN {added} TEXT NOT NULL DEFAULT ''")
        conn.executescript(SCHEMA)

    # --- people ---------------------------------------------------------------

    async def insert_people(
        self, subtree: str, records: Sequence[PersonRecord], *, skip_existing: bool = False
    ) -> int:
        """One transaction for the whole batch (one fsync, however many people)."""
        sql = _INSERT_OR_SKIP if skip_existing else INSERT_PERSON
        rows = [person_values(r) for r in records]

        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            try:
                conn.executemany(sql, rows)
            except sqlite3.IntegrityError:
                raise duplicate_error(records) from None
            return conn.total_changes - before

        return await self.db.run(lambda conn: transaction(conn, write))

    async def get_person(self, subtree: str, person_id: str) -> PersonRecord | None:
        condition, args = in_subtree(subtree)
        sql = GET_PERSON.format(subtree=condition)

        def query(conn: sqlite3.Connection) -> PersonRecord | None:
            row = conn.execute(sql, (person_id, *args)).fetchone()
            return row_to_person(row) if row else None

        return await self.db.run(query)

    async def list_people(
        self, subtree: str, filters: PersonFilter, limit: int, after_id: str | None
    ) -> list[PersonRecord]:
        sql, args = people_query(subtree, filters, limit, after_id)

        def query(conn: sqlite3.Connection) -> list[PersonRecord]:
            return [row_to_person(r) for r in conn.execute(sql, args)]

        return await self.db.run(query)

    async def update_person(
        self, subtree: str, person_id: str, change: PersonChange
    ) -> PersonRecord:
        condition, args = in_subtree(subtree)
        select = GET_PERSON.format(subtree=condition)

        def write(conn: sqlite3.Connection) -> PersonRecord:
            row = conn.execute(select, (person_id, *args)).fetchone()
            if row is None:
                raise NotFound(f"person {person_id!r} not found")
            current = row_to_person(row)
            changed = change(current)
            values = dict(zip(PERSON_COLUMN_NAMES, person_values(changed), strict=True))
            try:
                conn.execute(
                    UPDATE_PERSON,
                    (*(values[c] for c in UPDATED_COLUMNS), person_id, current.version),
                )
            except sqlite3.IntegrityError:
                raise duplicate_error([changed]) from None
            return changed

        return await self.db.run(lambda conn: transaction(conn, write))

    async def delete_person(self, subtree: str, person_id: str) -> bool:
        condition, args = in_subtree(subtree)
        sql = DELETE_PERSON.format(subtree=condition)

        def write(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, (person_id, *args)).rowcount > 0

        return await self.db.run(lambda conn: transaction(conn, write))

    # --- audit ----------------------------------------------------------------

    async def append_audit(self, tenant: str, make: MakeEntry) -> AuditEntry:
        """Head read, insert and head move in one write transaction: appends take turns."""

        def write(conn: sqlite3.Connection) -> AuditEntry:
            head = conn.execute(READ_HEAD).fetchone()
            entry = make(int(head["sequence"]) + 1, str(head["entry_hash"]))
            conn.execute(INSERT_AUDIT, audit_values(entry))
            conn.execute(MOVE_HEAD, (entry.sequence, entry.entry_hash))
            return entry

        return await self.db.run(lambda conn: transaction(conn, write))

    async def list_audit(
        self, subtree: str, filters: AuditFilter, limit: int, before_sequence: int | None
    ) -> list[AuditEntry]:
        sql, args = audit_query(
            subtree,
            filters,
            limit,
            before_sequence,
            "EXISTS (SELECT 1 FROM json_each(records) WHERE value = ?)",
        )

        def query(conn: sqlite3.Connection) -> list[AuditEntry]:
            return [row_to_audit(r) for r in conn.execute(sql, args)]

        return await self.db.run(query)

    async def audit_chain(self, after: int, up_to: int, limit: int) -> list[AuditEntry]:
        def query(conn: sqlite3.Connection) -> list[AuditEntry]:
            return [row_to_audit(r) for r in conn.execute(AUDIT_CHAIN, (after, up_to, limit))]

        return await self.db.run(query)

    async def audit_head(self) -> tuple[int, str]:
        def query(conn: sqlite3.Connection) -> tuple[int, str]:
            row = conn.execute(READ_HEAD).fetchone()
            return int(row["sequence"]), str(row["entry_hash"])

        return await self.db.run(query)

    def close(self) -> None:
        self.db.close()

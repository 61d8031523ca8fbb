"""The people store in PostgreSQL, with row-level security under every query.

A drop-in for the embedded SQLite store (tests/unit/empower/people runs every test on
both): same tables, same columns, sealed values and blind indexes as the domain
made them, times as microseconds since the epoch. What differs:

* Pooled connections act as the policed app role (`rls.use_app_role`) and every unit
  of work runs in `rls.scoped_transaction` with the caller's tenant path, so a query
  that forgot its tenant filter still sees only that subtree. Seeding and the chain
  check use the `ALL_TENANTS` subtree.
* Several replicas append to the audit chain at once, so an append locks the chain
  head row (`SELECT ... FOR UPDATE`) and reads it, inserts the entry and moves the
  head in the same transaction: the next append waits and links to this one.
* The audit table is append-only in the database itself: the app role is granted
  only SELECT and INSERT on it, and a trigger refuses UPDATE, DELETE and TRUNCATE
  for everyone, the owner included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.people_model import (
    GENESIS_HASH,
    AuditEntry,
    AuditFilter,
    PersonFilter,
    PersonRecord,
    from_us,
    to_us,
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
from services.kit import rls
from services.kit.errors import NotFound
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

PEOPLE_TABLE = "people"
AUDIT_TABLE = "people_audit"
HEAD_TABLE = "people_audit_head"
_SCHEMA_LOCK = 0x454D_5045  # "EMPE": concurrent schema set-up from several replicas

# Tenant paths and ids compare byte-wise (COLLATE "C") as in SQLite: the subtree range
# [subtree || '/', subtree || '0') relies on '/' sorting just before '0', and keyset paging
# on ids must order the same way on both stores.
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS people (
        id                text COLLATE "C" PRIMARY KEY,
        tenant            text COLLATE "C" NOT NULL,
        kind              text NOT NULL,
        name_sealed       text NOT NULL,
        id_number_sealed  text NOT NULL,
        id_number_index   text COLLATE "C" NOT NULL,
        phone_sealed      text NOT NULL DEFAULT '',
        phone_index       text COLLATE "C" NOT NULL DEFAULT '',
        gender            text NOT NULL,
        birth_date        date NOT NULL,
        address           text NOT NULL DEFAULT '',
        building          text NOT NULL DEFAULT '',
        grid_cell         text NOT NULL DEFAULT '',
        tags              text[] NOT NULL DEFAULT '{}',
        create_us         bigint NOT NULL,
        update_us         bigint NOT NULL,
        version           integer NOT NULL DEFAULT 1,
        carer             text NOT NULL DEFAULT '',
        user_ref          text NOT NULL DEFAULT '')""",
    # Tables made before people had a carer or an account gain the columns (empty).
    "ALTER TABLE people ADD COLUMN IF NOT EXISTS carer text NOT NULL DEFAULT ''",
    "ALTER TABLE people ADD COLUMN IF NOT EXISTS user_ref text NOT NULL DEFAULT ''",
    "CREATE UNIQUE INDEX IF NOT EXISTS people_tenant_id_number ON people (tenant, id_number_index)",
    "CREATE INDEX IF NOT EXISTS people_tenant_id ON people (tenant, id)",
    "CREATE INDEX IF NOT EXISTS people_id_number ON people (id_number_index)",
    "CREATE INDEX IF NOT EXISTS people_phone ON people (phone_index) WHERE phone_index <> ''",
    """CREATE TABLE IF NOT EXISTS people_audit (
        sequence    bigint PRIMARY KEY,
        time_us     bigint NOT NULL,
        subject     text NOT NULL,
        app         text NOT NULL,
        tenant      text COLLATE "C" NOT NULL,
        action      text NOT NULL,
        purpose     text NOT NULL,
        records     text[] NOT NULL,
        fields      text[] NOT NULL,
        prev_hash   text NOT NULL,
        entry_hash  text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS people_audit_tenant ON people_audit (tenant, sequence)",
    "CREATE INDEX IF NOT EXISTS people_audit_subject ON people_audit (subject, sequence)",
    "CREATE INDEX IF NOT EXISTS people_audit_records ON people_audit USING gin (records)",
    """CREATE TABLE IF NOT EXISTS people_audit_head (
        id          integer PRIMARY KEY CHECK (id = 1),
        sequence    bigint NOT NULL,
        entry_hash  text NOT NULL)""",
    f"INSERT INTO people_audit_head (id, sequence, entry_hash) VALUES (1, 0, '{GENESIS_HASH}') "
    "ON CONFLICT (id) DO NOTHING",
    """CREATE OR REPLACE FUNCTION people_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'people_audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    "CREATE OR REPLACE TRIGGER people_audit_append_only BEFORE UPDATE OR DELETE "
    "ON people_audit FOR EACH ROW EXECUTE FUNCTION people_audit_append_only()",
    "CREATE OR REPLACE TRIGGER people_audit_no_truncate BEFORE TRUNCATE "
    "ON people_audit FOR EACH STATEMENT EXECUTE FUNCTION people_audit_append_only()",
)

_INSERT = POSTGRES.render(INSERT_PERSON)
_INSERT_SKIP = _INSERT + " ON CONFLICT DO NOTHING"
_UPDATE = POSTGRES.render(UPDATE_PERSON)
_INSERT_AUDIT = POSTGRES.render(INSERT_AUDIT)
_LOCK_HEAD = READ_HEAD + " FOR UPDATE"
_MOVE_HEAD = POSTGRES.render(MOVE_HEAD)
_CHAIN = POSTGRES.render(AUDIT_CHAIN)
# The one test the stores write differently: `records` is a text array here.
_NAMES_RECORD = "records @> ARRAY[?::text]"

Row = dict[str, Any]


def _person_values(record: PersonRecord) -> tuple[object, ...]:
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
        record.birth_date,
        record.address,
        record.building,
        record.grid_cell,
        list(record.tags),
        to_us(record.create_time),
        to_us(record.update_time),
        record.version,
        record.carer,
        record.user,
    )


def _row_to_person(row: Row) -> PersonRecord:
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
        birth_date=row["birth_date"],
        address=row["address"],
        building=row["building"],
        grid_cell=row["grid_cell"],
        tags=tuple(row["tags"]),
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
        version=row["version"],
        carer=row["carer"],
        user=row["user_ref"],
    )


def _audit_values(entry: AuditEntry) -> tuple[object, ...]:
    return (
        entry.sequence,
        to_us(entry.time),
        entry.subject,
        entry.app,
        entry.tenant,
        entry.action,
        entry.purpose,
        list(entry.records),
        list(entry.fields),
        entry.prev_hash,
        entry.entry_hash,
    )


def _row_to_audit(row: Row) -> AuditEntry:
    return AuditEntry(
        sequence=row["sequence"],
        time=from_us(row["time_us"]),
        subject=row["subject"],
        app=row["app"],
        tenant=row["tenant"],
        action=row["action"],
        purpose=row["purpose"],
        records=tuple(row["records"]),
        fields=tuple(row["fields"]),
        prev_hash=row["prev_hash"],
        entry_hash=row["entry_hash"],
    )


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


class PostgresPeopleStore:
    """People and the audit chain in one PostgreSQL schema (PeopleStore and AuditStore).

    Tables live on the DSN's search_path. Build it with `await PostgresPeopleStore.open(dsn)`:
    the schema and its policies are installed as the DSN's user, then the pool's
    connections switch to the app role. `pool` is exposed for checks of the policies.
    """

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
            name="grassroots-empower-people",
        )
        self._opened = False

    @classmethod
    async def open(
        cls, dsn: str, *, min_connections: int = 1, max_connections: int = 10
    ) -> PostgresPeopleStore:
        """A store with its schema and policies in place and its pool connected."""
        store = cls(dsn, min_connections=min_connections, max_connections=max_connections)
        await store._install()
        await store.pool.open(wait=True)
        store._opened = True
        return store

    async def _install(self) -> None:
        # A plain connection as the schema owner: the app role may not create tables.
        connect = psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(
                conn,
                tenant_tables=[PEOPLE_TABLE, AUDIT_TABLE],
                other_tables=[HEAD_TABLE],
                append_only=[AUDIT_TABLE],
            )
            # rls.install opens the public schema; tables may live in another one.
            cur = await conn.execute("SELECT current_schema()")
            row = await cur.fetchone()
            if row and row[0]:
                await conn.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                        sql.Identifier(row[0]), sql.Identifier(rls.APP_ROLE)
                    )
                )

    # --- people ---------------------------------------------------------------

    async def insert_people(
        self, subtree: str, records: Sequence[PersonRecord], *, skip_existing: bool = False
    ) -> int:
        """One transaction for the whole batch, sent as one pipelined executemany."""
        if not records:
            return 0
        rows = [_person_values(r) for r in records]
        try:
            async with rls.scoped_transaction(self.pool, subtree) as conn, conn.cursor() as cur:
                await cur.executemany(_INSERT_SKIP if skip_existing else _INSERT, rows)
                return max(cur.rowcount, 0)
        except psycopg.errors.UniqueViolation:
            raise duplicate_error(records) from None

    async def get_person(self, subtree: str, person_id: str) -> PersonRecord | None:
        condition, args = in_subtree(subtree)
        query = POSTGRES.render(GET_PERSON.format(subtree=condition))
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, query, [person_id, *args])
        return _row_to_person(rows[0]) if rows else None

    async def list_people(
        self, subtree: str, filters: PersonFilter, limit: int, after_id: str | None
    ) -> list[PersonRecord]:
        query, args = people_query(subtree, filters, limit, after_id)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, POSTGRES.render(query), args)
        return [_row_to_person(r) for r in rows]

    async def update_person(
        self, subtree: str, person_id: str, change: PersonChange
    ) -> PersonRecord:
        """The row lock makes a second writer wait and then see the new version."""
        condition, args = in_subtree(subtree)
        select = POSTGRES.render(GET_PERSON.format(subtree=condition)) + " FOR UPDATE"
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, select, [person_id, *args])
            if not rows:
                raise NotFound(f"person {person_id!r} not found")
            current = _row_to_person(rows[0])
            changed = change(current)
            values = dict(zip(PERSON_COLUMN_NAMES, _person_values(changed), strict=True))
            try:
                await conn.execute(
                    _UPDATE, (*(values[c] for c in UPDATED_COLUMNS), person_id, current.version)
                )
            except psycopg.errors.UniqueViolation:
                # Leaving the block with an error rolls the transaction back.
                raise duplicate_error([changed]) from None
        return changed

    async def delete_person(self, subtree: str, person_id: str) -> bool:
        condition, args = in_subtree(subtree)
        query = POSTGRES.render(DELETE_PERSON.format(subtree=condition))
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(query, [person_id, *args])
            return cur.rowcount > 0

    # --- audit ----------------------------------------------------------------

    async def append_audit(self, tenant: str, make: MakeEntry) -> AuditEntry:
        """Lock the head row, link, insert, move the head; all in one transaction."""
        async with rls.scoped_transaction(self.pool, tenant) as conn:
            cur = await conn.execute(_LOCK_HEAD)
            head = await cur.fetchone()
            if head is None:
                raise RuntimeError("the audit chain head row is missing")
            entry = make(int(head[0]) + 1, str(head[1]))
            await conn.execute(_INSERT_AUDIT, _audit_values(entry))
            await conn.execute(_MOVE_HEAD, (entry.sequence, entry.entry_hash))
        return entry

    async def list_audit(
        self, subtree: str, filters: AuditFilter, limit: int, before_sequence: int | None
    ) -> list[AuditEntry]:
        query, args = audit_query(subtree, filters, limit, before_sequence, _NAMES_RECORD)
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, POSTGRES.render(query), args)
        return [_row_to_audit(r) for r in rows]

    async def audit_chain(self, after: int, up_to: int, limit: int) -> list[AuditEntry]:
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            rows = await _fetch(conn, _CHAIN, (after, up_to, limit))
        return [_row_to_audit(r) for r in rows]

    async def audit_head(self) -> tuple[int, str]:
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            cur = await conn.execute(READ_HEAD)
            row = await cur.fetchone()
        if row is None:
            raise RuntimeError("the audit chain head row is missing")
        return int(row[0]), str(row[1])

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task inside the loop that used the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError(
                    "close the PostgreSQL people store inside the event loop that used it"
                ) from None
            return None
        return loop.create_task(self.pool.close())

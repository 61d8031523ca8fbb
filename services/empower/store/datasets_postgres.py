"""The datasets store in PostgreSQL, with row-level security under every query.

Same tables and columns as the SQLite store (tests/unit/empower/datasets runs every
test on both). Every unit of work runs in `rls.scoped_transaction`: an import in the
publisher's subtree, a village's slice in the village's, so a slice query that lost
its tenant filter would still return only that village's rows. Dataset descriptions
are read in the `ALL_TENANTS` subtree, because a village reads those published above it; the
domain filters them by the caller's line of ancestors. Imports stream rows with COPY
into a temporary table and merge them with INSERT ... ON CONFLICT, chunk by chunk:
each chunk goes over as one block of COPY text, and while the server merges it a
worker thread makes (seals) the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.catalog import Installation
from services.empower.domain.datasets.model import Dataset, StoredRow, Subscription
from services.empower.domain.datasets.ports import LiveRows, RowChunk, RowWrite
from services.empower.store.datasets_rows import (
    DATASET_COLUMNS,
    GET_DATASET,
    INSERT_DATASET,
    INSERT_INSTALLATION,
    INSERT_SUBSCRIPTION,
    INSTALLATION_COLUMNS,
    LIVE_ROWS,
    MOVE_SEQ,
    ON_KEY_CONFLICT,
    ROW_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    TOMBSTONE_ROW,
    UPDATE_INSTALLATION,
    dataset_values,
    installation_values,
    row_to_dataset,
    row_to_installation,
    row_to_stored,
    row_to_subscription,
    subscription_values,
    update_values,
)
from services.kit import rls
from services.kit.errors import AlreadyExists
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

TABLES = ("datasets", "dataset_rows", "dataset_subscriptions", "catalog_installations")
_SCHEMA_LOCK = 0x454D_4453  # "EMDS"
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS datasets (
        tenant          text COLLATE "C" NOT NULL,
        dataset_id      text COLLATE "C" NOT NULL,
        name            text COLLATE "C" NOT NULL UNIQUE,
        display_name    text NOT NULL,
        description     text NOT NULL,
        classification  text NOT NULL,
        fields          text NOT NULL,
        key_field       text NOT NULL,
        area            text NOT NULL,
        row_count       bigint NOT NULL,
        last_seq        bigint NOT NULL,
        create_us       bigint NOT NULL,
        update_us       bigint NOT NULL,
        PRIMARY KEY (tenant, dataset_id))""",
    """CREATE TABLE IF NOT EXISTS dataset_rows (
        dataset    text COLLATE "C" NOT NULL,
        tenant     text COLLATE "C" NOT NULL,
        key_index  text COLLATE "C" NOT NULL,
        building   text NOT NULL,
        plain      text NOT NULL,
        sealed     text NOT NULL,
        digest     bigint NOT NULL,
        seq        bigint NOT NULL,
        deleted    integer NOT NULL DEFAULT 0,
        PRIMARY KEY (dataset, tenant, key_index))""",
    "CREATE INDEX IF NOT EXISTS dataset_rows_slice ON dataset_rows (dataset, tenant, seq)",
    """CREATE TABLE IF NOT EXISTS dataset_subscriptions (
        id          text COLLATE "C" PRIMARY KEY,
        tenant      text COLLATE "C" NOT NULL,
        dataset     text COLLATE "C" NOT NULL,
        subscriber  text NOT NULL,
        create_us   bigint NOT NULL,
        UNIQUE (tenant, dataset))""",
    """CREATE TABLE IF NOT EXISTS catalog_installations (
        id            text COLLATE "C" PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        catalog_item  text NOT NULL,
        installer     text NOT NULL,
        create_us     bigint NOT NULL,
        detail        text NOT NULL DEFAULT '{}',
        update_us     bigint,
        UNIQUE (tenant, catalog_item))""",
    # Records made before the composer kept details: the columns are added in place.
    "ALTER TABLE catalog_installations ADD COLUMN IF NOT EXISTS detail text NOT NULL DEFAULT '{}'",
    "ALTER TABLE catalog_installations ADD COLUMN IF NOT EXISTS update_us bigint",
)
_SUBTREE = "(tenant = %s::text OR (tenant >= %s::text || '/' AND tenant < %s::text || '0'))"
_STAGE = (
    "CREATE TEMPORARY TABLE dataset_rows_stage (tenant text, key_index text, building text, "
    "plain text, sealed text, digest bigint, seq bigint) ON COMMIT DROP"
)
_COPY = (
    "COPY dataset_rows_stage (tenant, key_index, building, plain, sealed, digest, seq) FROM STDIN"
)
_INSERT = (
    "INSERT INTO dataset_rows (dataset, tenant, key_index, building, plain, sealed, digest, seq, "
    "deleted) SELECT %s, tenant, key_index, building, plain, sealed, digest, seq, 0 "
    "FROM dataset_rows_stage"
)
_MERGE = _INSERT + ON_KEY_CONFLICT
# What COPY's text format escapes in a value (it ends fields with tabs, rows with newlines).
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))

Row = dict[str, Any]


def _escaped(value: str) -> str:
    for plain, escaped in _COPY_ESCAPES:  # the backslash first
        value = value.replace(plain, escaped)
    return value


def copy_text(chunk: RowChunk) -> bytes:
    """The chunk in COPY's text format (the stage table's column order), one block.

    Values hold no tab, newline, carriage return or backslash almost always (keys,
    paths, base64, JSON without escapes): each row is joined as it is, and the block is
    checked by counting separators in C; any other block is escaped value by value."""
    columns = (chunk.tenant, chunk.key_index, chunk.building, chunk.plain, chunk.sealed)
    numbers = (map(str, chunk.digest), map(str, chunk.seq))
    text = "\n".join(map("\t".join, zip(*columns, *numbers, strict=True)))
    rows = len(chunk)
    if (
        text.count("\t") != 6 * rows
        or text.count("\n") != max(rows - 1, 0)
        or "\\" in text
        or "\r" in text
    ):
        safe = [list(map(_escaped, column)) for column in columns]
        numbers = (map(str, chunk.digest), map(str, chunk.seq))
        text = "\n".join(map("\t".join, zip(*safe, *numbers, strict=True)))
    return (text + "\n").encode() if rows else b""


def _subtree(subtree: str) -> tuple[str, list[object]]:
    if subtree == ALL_TENANTS:
        return "TRUE", []
    return _SUBTREE, [subtree, subtree, subtree]


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _next_text(chunks: Iterator[RowChunk]) -> bytes | None:
    """The next chunk made and formatted for COPY (on a worker thread), None at the end."""
    chunk = next(chunks, None)
    return None if chunk is None else copy_text(chunk)


class PostgresDatasetStore:
    """DatasetStore in PostgreSQL. Build it with `await PostgresDatasetStore.open(dsn)`."""

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
            name="grassroots-empower-datasets",
        )
        self._opened = False

    @classmethod
    async def open(cls, dsn: str, *, max_connections: int = 10) -> PostgresDatasetStore:
        store = cls(dsn, max_connections=max_connections)
        connect = psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(conn, tenant_tables=list(TABLES))
            cur = await conn.execute("SELECT current_schema()")
            row = await cur.fetchone()
            if row and row[0]:
                await conn.execute(
                    sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                        sql.Identifier(row[0]), sql.Identifier(rls.APP_ROLE)
                    )
                )
        await store.pool.open(wait=True)
        store._opened = True
        return store

    async def create_dataset(self, dataset: Dataset) -> None:
        try:
            async with rls.scoped_transaction(self.pool, dataset.tenant) as conn:
                await conn.execute(POSTGRES.render(INSERT_DATASET), dataset_values(dataset))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"dataset {dataset.resource_name} already exists") from None

    async def get_dataset(self, tenant: str, dataset_id: str) -> Dataset | None:
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            rows = await _fetch(conn, POSTGRES.render(GET_DATASET), (tenant, dataset_id))
        return row_to_dataset(rows[0]) if rows else None

    async def list_datasets(
        self, tenants: Sequence[str], limit: int, after: str | None
    ) -> list[Dataset]:
        query = (
            f"SELECT {DATASET_COLUMNS} FROM datasets WHERE tenant = ANY(%s) AND name > %s "
            "ORDER BY name LIMIT %s"
        )
        async with rls.scoped_transaction(self.pool, ALL_TENANTS) as conn:
            rows = await _fetch(conn, query, (list(tenants), after or "", limit))
        return [row_to_dataset(r) for r in rows]

    async def live_rows(self, subtree: str, dataset: str) -> LiveRows:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(POSTGRES.render(LIVE_ROWS), (dataset,))
            rows = await cur.fetchall()
        if not rows:
            return LiveRows([], [], [])
        keys, tenants, digests = zip(*rows, strict=True)
        return LiveRows(list(keys), list(tenants), [int(d) for d in digests])

    async def write_rows(self, subtree: str, dataset: Dataset, write: RowWrite) -> bool:
        name = dataset.resource_name
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(
                POSTGRES.render(MOVE_SEQ),
                (write.last_seq, write.row_count, write.update_us, name, write.expected_seq),
            )
            if cur.rowcount != 1:
                return False
            if write.tombstones:
                async with conn.cursor() as tomb:
                    await tomb.executemany(
                        POSTGRES.render(TOMBSTONE_ROW),
                        [(seq, name, t, k) for t, k, seq in write.tombstones],
                    )
            await conn.execute(_STAGE)
            # A first import finds no row to merge with (see INSERT_ROW).
            merge = _INSERT if write.expected_seq == 0 else _MERGE
            chunks = iter(write.upserts)
            following = asyncio.ensure_future(asyncio.to_thread(_next_text, chunks))
            try:
                while (data := await following) is not None:
                    following = asyncio.ensure_future(asyncio.to_thread(_next_text, chunks))
                    async with conn.cursor() as stage, stage.copy(_COPY) as copy:
                        await copy.write(data)
                    await conn.execute(merge, (name,))
                    await conn.execute("TRUNCATE dataset_rows_stage")
            finally:
                if not following.done():  # a failed merge: let the maker finish first
                    await asyncio.wait([following])
            await conn.execute("DROP TABLE dataset_rows_stage")
        return True

    async def slice_rows(
        self, subtree: str, dataset: str, after_seq: int, limit: int
    ) -> list[StoredRow]:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {ROW_COLUMNS} FROM dataset_rows WHERE dataset = %s AND {where} AND seq > %s "
            "ORDER BY seq LIMIT %s"
        )
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, query, (dataset, *args, after_seq, limit))
        return [row_to_stored(r) for r in rows]

    async def create_subscription(self, subscription: Subscription) -> None:
        try:
            async with rls.scoped_transaction(self.pool, subscription.tenant) as conn:
                await conn.execute(
                    POSTGRES.render(INSERT_SUBSCRIPTION), subscription_values(subscription)
                )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(
                f"{subscription.tenant} already subscribes to {subscription.dataset}"
            ) from None

    async def get_subscription(self, subtree: str, subscription_id: str) -> Subscription | None:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM dataset_subscriptions WHERE id = %s AND {where}"
        )
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, query, (subscription_id, *args))
        return row_to_subscription(rows[0]) if rows else None

    async def list_subscriptions(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Subscription]:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM dataset_subscriptions WHERE {where} AND id > %s "
            "ORDER BY id LIMIT %s"
        )
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, query, (*args, after or "", limit))
        return [row_to_subscription(r) for r in rows]

    async def delete_subscription(self, subtree: str, subscription_id: str) -> bool:
        where, args = _subtree(subtree)
        query = f"DELETE FROM dataset_subscriptions WHERE id = %s AND {where}"
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(query, (subscription_id, *args))
            return cur.rowcount > 0

    async def create_installation(self, installation: Installation) -> None:
        try:
            async with rls.scoped_transaction(self.pool, installation.tenant) as conn:
                await conn.execute(
                    POSTGRES.render(INSERT_INSTALLATION), installation_values(installation)
                )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"{installation.catalog_item} is already installed") from None

    async def list_installations(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Installation]:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {INSTALLATION_COLUMNS} FROM catalog_installations WHERE {where} "
            "AND id > %s ORDER BY id LIMIT %s"
        )
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, query, (*args, after or "", limit))
        return [row_to_installation(r) for r in rows]

    async def get_installation(self, subtree: str, installation_id: str) -> Installation | None:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {INSTALLATION_COLUMNS} FROM catalog_installations WHERE {where} AND id = %s"
        )
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            rows = await _fetch(conn, query, (*args, installation_id))
        return row_to_installation(rows[0]) if rows else None

    async def update_installation(self, installation: Installation) -> bool:
        async with rls.scoped_transaction(self.pool, installation.tenant) as conn:
            cur = await conn.execute(
                POSTGRES.render(UPDATE_INSTALLATION), update_values(installation)
            )
            return cur.rowcount > 0

    async def delete_installation(self, subtree: str, installation_id: str) -> bool:
        where, args = _subtree(subtree)
        query = f"DELETE FROM catalog_installations WHERE id = %s AND {where}"
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            cur = await conn.execute(query, (installation_id, *args))
            return cur.rowcount > 0

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task inside the loop that used the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError("close the PostgreSQL datasets store inside its loop") from None
            return None
        return loop.create_task(self.pool.close())

"""The embedded datasets store: descriptions, rows, subscriptions and the catalog's
installations in one SQLite file.

Rows arrive with their personal values sealed by the domain. An import is one
BEGIN IMMEDIATE transaction that first moves the dataset's sequence from the value
the import planned against (or writes nothing when another import moved it), then
writes tombstones and rows with `executemany`.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from itertools import repeat
from pathlib import Path

from services.empower.domain.catalog import Installation
from services.empower.domain.datasets.model import Dataset, StoredRow, Subscription
from services.empower.domain.datasets.ports import LiveRows, RowChunk, RowWrite
from services.empower.store.datasets_rows import (
    DATASET_COLUMNS,
    GET_DATASET,
    INSERT_DATASET,
    INSERT_INSTALLATION,
    INSERT_ROW,
    INSERT_SUBSCRIPTION,
    INSTALLATION_COLUMNS,
    INSTALLATION_MIGRATIONS,
    LIVE_ROWS,
    MOVE_SEQ,
    ROW_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    TOMBSTONE_ROW,
    UPDATE_INSTALLATION,
    UPSERT_ROW,
    dataset_values,
    installation_values,
    row_to_dataset,
    row_to_installation,
    row_to_stored,
    row_to_subscription,
    subscription_values,
    update_values,
)
from services.kit.errors import AlreadyExists
from services.kit.sqlite import SqliteDatabase, transaction
from services.kit.tenancy import ALL_TENANTS

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    tenant          TEXT NOT NULL,
    dataset_id      TEXT NOT NULL,
    name            TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    description     TEXT NOT NULL,
    classification  TEXT NOT NULL,
    fields          TEXT NOT NULL,
    key_field       TEXT NOT NULL,
    area            TEXT NOT NULL,
    row_count       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    create_us       INTEGER NOT NULL,
    update_us       INTEGER NOT NULL,
    PRIMARY KEY (tenant, dataset_id)
);
CREATE TABLE IF NOT EXISTS dataset_rows (
    dataset    TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    key_index  TEXT NOT NULL,
    building   TEXT NOT NULL,
    plain      TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    digest     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS dataset_rows_key ON dataset_rows (dataset, tenant, key_index);
CREATE INDEX IF NOT EXISTS dataset_rows_slice ON dataset_rows (dataset, tenant, seq);
CREATE TABLE IF NOT EXISTS dataset_subscriptions (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    create_us   INTEGER NOT NULL,
    UNIQUE (tenant, dataset)
);
CREATE TABLE IF NOT EXISTS catalog_installations (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    catalog_item  TEXT NOT NULL,
    installer     TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    detail        TEXT NOT NULL DEFAULT '{}',
    update_us     INTEGER,
    UNIQUE (tenant, catalog_item)
);
"""
_DONE = object()


def _offer(chunks: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Hand `item` to the writer unless it has stopped (done, refused or failed)."""
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _named_rows(name: str, chunk: RowChunk) -> Iterator[tuple[object, ...]]:
    """The statement's parameters per row, zipped in C: no Python frame per row."""
    return zip(
        repeat(name),
        chunk.tenant,
        chunk.key_index,
        chunk.building,
        chunk.plain,
        chunk.sealed,
        chunk.digest,
        chunk.seq,
        strict=False,
    )


_SUBTREE = "(tenant = ? OR (tenant >= ? || '/' AND tenant < ? || '0'))"


def _subtree(subtree: str) -> tuple[str, list[object]]:
    if subtree == ALL_TENANTS:
        return "1 = 1", []
    return _SUBTREE, [subtree, subtree, subtree]


def _migrate_installations(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(catalog_installations)")}
    for column, statement in INSTALLATION_MIGRATIONS:
        if column not in have:
            conn.execute(statement)


class SqliteDatasetStore:
    """DatasetStore on one SQLite file (WAL, one writer thread)."""

    def __init__(self, path: Path | str) -> None:
        self.db = SqliteDatabase(path, synchronous="NORMAL")
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))
        self.db.run_sync(_migrate_installations)
        # Imports touch a million index entries; the default 2 MB page cache thrashes.
        self.db.run_sync(lambda conn: conn.execute("PRAGMA cache_size = -65536"))

    async def create_dataset(self, dataset: Dataset) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(INSERT_DATASET, dataset_values(dataset))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"dataset {dataset.resource_name} already exists") from None

        await self.db.run(insert)

    async def get_dataset(self, tenant: str, dataset_id: str) -> Dataset | None:
        def get(conn: sqlite3.Connection) -> Dataset | None:
            row = conn.execute(GET_DATASET, (tenant, dataset_id)).fetchone()
            return row_to_dataset(row) if row else None

        return await self.db.run(get)

    async def list_datasets(
        self, tenants: Sequence[str], limit: int, after: str | None
    ) -> list[Dataset]:
        marks = ", ".join("?" * len(tenants))
        query = f"SELECT {DATASET_COLUMNS} FROM datasets WHERE tenant IN ({marks}) AND name > ? "
        query += "ORDER BY name LIMIT ?"

        def select(conn: sqlite3.Connection) -> list[Dataset]:
            rows = conn.execute(query, (*tenants, after or "", limit)).fetchall()
            return [row_to_dataset(r) for r in rows]

        return await self.db.run(select)

    async def live_rows(self, subtree: str, dataset: str) -> LiveRows:
        def select(conn: sqlite3.Connection) -> LiveRows:
            cur = conn.execute(LIVE_ROWS, (dataset,))
            cur.row_factory = None  # plain tuples: a million rows read fast
            rows = cur.fetchall()
            if not rows:
                return LiveRows([], [], [])
            keys, tenants, digests = zip(*rows, strict=True)
            return LiveRows(list(keys), list(tenants), list(digests))

        return await self.db.run(select)

    async def write_rows(self, subtree: str, dataset: Dataset, write: RowWrite) -> bool:
        """One transaction on the database thread, fed chunk by chunk from a worker thread
        that makes the next chunk meanwhile (SQLite releases the GIL while it writes)."""
        name = dataset.resource_name
        statement = INSERT_ROW if write.expected_seq == 0 else UPSERT_ROW
        chunks: queue.Queue[object] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def apply(conn: sqlite3.Connection) -> bool:
            try:
                moved = conn.execute(
                    MOVE_SEQ,
                    (write.last_seq, write.row_count, write.update_us, name, write.expected_seq),
                ).rowcount
                if moved != 1:
                    return False
                conn.executemany(
                    TOMBSTONE_ROW, ((seq, name, t, k) for t, k, seq in write.tombstones)
                )
                while (chunk := chunks.get()) is not _DONE:
                    if isinstance(chunk, BaseException):
                        raise chunk
                    conn.executemany(statement, _named_rows(name, chunk))  # type: ignore[arg-type]
                return True
            finally:
                stop.set()

        def produce() -> None:
            try:
                for chunk in write.upserts:
                    if not _offer(chunks, chunk, stop):
                        return
                _offer(chunks, _DONE, stop)
            except BaseException as exc:  # the transaction rolls back and raises it
                _offer(chunks, exc, stop)

        writing = asyncio.ensure_future(self.db.run(lambda conn: transaction(conn, apply)))
        await asyncio.to_thread(produce)
        return await writing

    async def slice_rows(
        self, subtree: str, dataset: str, after_seq: int, limit: int
    ) -> list[StoredRow]:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {ROW_COLUMNS} FROM dataset_rows WHERE dataset = ? AND {where} AND seq > ? "
            "ORDER BY seq LIMIT ?"
        )

        def select(conn: sqlite3.Connection) -> list[StoredRow]:
            rows = conn.execute(query, (dataset, *args, after_seq, limit)).fetchall()
            return [row_to_stored(r) for r in rows]

        return await self.db.run(select)

    async def create_subscription(self, subscription: Subscription) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(INSERT_SUBSCRIPTION, subscription_values(subscription))
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"{subscription.tenant} already subscribes to {subscription.dataset}"
                ) from None

        await self.db.run(insert)

    async def get_subscription(self, subtree: str, subscription_id: str) -> Subscription | None:
        where, args = _subtree(subtree)
        query = f"SELECT {SUBSCRIPTION_COLUMNS} FROM dataset_subscriptions WHERE id = ? AND {where}"

        def get(conn: sqlite3.Connection) -> Subscription | None:
            row = conn.execute(query, (subscription_id, *args)).fetchone()
            return row_to_subscription(row) if row else None

        return await self.db.run(get)

    async def list_subscriptions(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Subscription]:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM dataset_subscriptions WHERE {where} AND id > ? "
            "ORDER BY id LIMIT ?"
        )

        def select(conn: sqlite3.Connection) -> list[Subscription]:
            rows = conn.execute(query, (*args, after or "", limit)).fetchall()
            return [row_to_subscription(r) for r in rows]

        return await self.db.run(select)

    async def delete_subscription(self, subtree: str, subscription_id: str) -> bool:
        where, args = _subtree(subtree)
        query = f"DELETE FROM dataset_subscriptions WHERE id = ? AND {where}"
        return await self.db.run(
            lambda conn: conn.execute(query, (subscription_id, *args)).rowcount > 0
        )

    async def create_installation(self, installation: Installation) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(INSERT_INSTALLATION, installation_values(installation))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"{installation.catalog_item} is already installed") from None

        await self.db.run(insert)

    async def list_installations(
        self, subtree: str, limit: int, after: str | None
    ) -> list[Installation]:
        where, args = _subtree(subtree)
        query = (
            f"SELECT {INSTALLATION_COLUMNS} FROM catalog_installations WHERE {where} AND id > ? "
            "ORDER BY id LIMIT ?"
        )

        def select(conn: sqlite3.Connection) -> list[Installation]:
            rows = conn.execute(query, (*args, after or "", limit)).fetchall()
            return [row_to_installation(r) for r in rows]

        return await self.db.run(select)

    async def get_installation(self, subtree: str, installation_id: str) -> Installation | None:
        where, args = _subtree(subtree)
        query = f"SELECT {INSTALLATION_COLUMNS} FROM catalog_installations WHERE {where} AND id = ?"

        def select(conn: sqlite3.Connection) -> Installation | None:
            row = conn.execute(query, (*args, installation_id)).fetchone()
            return row_to_installation(row) if row else None

        return await self.db.run(select)

    async def update_installation(self, installation: Installation) -> bool:
        values = update_values(installation)
        return await self.db.run(
            lambda conn: conn.execute(UPDATE_INSTALLATION, values).rowcount > 0
        )

    async def delete_installation(self, subtree: str, installation_id: str) -> bool:
        where, args = _subtree(subtree)
        query = f"DELETE FROM catalog_installations WHERE id = ? AND {where}"
        return await self.db.run(
            lambda conn: conn.execute(query, (installation_id, *args)).rowcount > 0
        )

    def close(self) -> None:
        self.db.close()

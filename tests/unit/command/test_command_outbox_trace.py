"""Command stores from before traces gain the outbox's trace column in place, keeping
their unpublished rows (which read as untraced)."""

from __future__ import annotations

import sqlite3

import psycopg

from services.command.store.postgres import PostgresCommandStore
from services.command.store.sqlite import SqliteCommandStore

OLD_OUTBOX = """CREATE TABLE outbox (
    seq {serial}, tenant TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,
    payload {blob} NOT NULL, create_us {int} NOT NULL, published_us {int})"""
ROW = (
    "INSERT INTO outbox (tenant, type, key, payload, create_us) "
    "VALUES ('sh', 'task.created', 't1:created:1', {payload}, 1)"
)


async def test_an_old_sqlite_outbox_gains_the_column(tmp_path):
    path = tmp_path / "command.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            OLD_OUTBOX.format(
                serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB", int="INTEGER"
            )
        )
        conn.execute(ROW.format(payload="x'00'"))
    store = SqliteCommandStore(path)
    try:
        (entry,) = await store.unpublished(10)
        assert (entry.key, entry.trace_context) == ("t1:created:1", "")
    finally:
        closing = store.close()
        if closing is not None:
            await closing


async def test_an_old_postgres_outbox_gains_the_column(postgis_test_dsn):
    with psycopg.connect(postgis_test_dsn, autocommit=True) as conn:
        conn.execute(OLD_OUTBOX.format(serial="bigserial PRIMARY KEY", blob="bytea", int="bigint"))
        conn.execute(ROW.format(payload="'\\x00'"))
    store = await PostgresCommandStore.open(postgis_test_dsn)
    try:
        (entry,) = await store.unpublished(10)
        assert (entry.key, entry.trace_context) == ("t1:created:1", "")
    finally:
        closing = store.close()
        if closing is not None:
            await closing

"""The trace of the request that made a report travels in its outbox row to the bus
message, on both stores; stores from before the column gain it in place, keeping rows."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import psycopg
import pytest

from services.events.feed import ChangeFeed
from services.events.relay import events_relay
from services.events.store.postgres import PostgresEventStore
from services.events.store.sqlite import SqliteEventStore
from services.kit.bus import open_bus
from services.kit.tracing import TRACEPARENT
from tests.conftest import XINGMING
from tests.unit.events.conftest import serialize
from tests.unit.events.test_row_level_security import keep, new_item, refuse_taken

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OLD_OUTBOX = """CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, type TEXT NOT NULL,
    event_id TEXT NOT NULL, payload BLOB NOT NULL, create_us INTEGER NOT NULL,
    published_us INTEGER)"""


async def _open(backend: str, request, tmp_path):
    if backend == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        return await PostgresEventStore.open(dsn, serialize=serialize, max_connections=2)
    return SqliteEventStore(tmp_path / "events.sqlite3", serialize=serialize)


async def _close(store) -> None:
    closing = store.close()
    if closing is not None:
        await closing


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_reports_trace_reaches_the_bus_message(backend, request, tmp_path):
    store = await _open(backend, request, tmp_path)
    bus = open_bus(str(tmp_path / "bus.sqlite3"))
    try:
        traced_report, traced = new_item(XINGMING, 1)
        plain_report, plain = new_item(XINGMING, 2)
        items = [
            (replace(traced_report, trace_context=PARENT), replace(traced, trace_context=PARENT)),
            (plain_report, plain),
        ]
        await store.create_many(items, keep, refuse_taken)
        relay = events_relay(store, bus, ChangeFeed(), batch=10)
        messages = await relay.fetch(10)
        headers = {m.headers["event_id"]: m.headers for m in messages}
        assert headers[traced.id][TRACEPARENT] == PARENT
        assert TRACEPARENT not in headers[plain.id], "no trace, no header"
    finally:
        await bus.close()
        await _close(store)


async def test_an_old_sqlite_outbox_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "events.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_OUTBOX)
        conn.execute(
            "INSERT INTO outbox (tenant, type, event_id, payload, create_us) "
            "VALUES ('sh', 'event.reported', 'ev1', x'00', 1)"
        )
    store = SqliteEventStore(path, serialize=serialize)
    try:
        (entry,) = await store.unpublished(10)
        assert (entry.event_id, entry.trace_context) == ("ev1", "")
    finally:
        await _close(store)


async def test_an_old_postgres_outbox_gains_the_column_and_keeps_its_rows(postgis_test_dsn):
    with psycopg.connect(postgis_test_dsn, autocommit=True) as conn:
        conn.execute(
            OLD_OUTBOX.replace(
                "INTEGER PRIMARY KEY AUTOINCREMENT", "bigserial PRIMARY KEY"
            ).replace("BLOB", "bytea")
        )
        conn.execute(
            "INSERT INTO outbox (tenant, type, event_id, payload, create_us) "
            "VALUES ('sh', 'event.reported', 'ev1', '\\x00', 1)"
        )
    store = await PostgresEventStore.open(postgis_test_dsn, serialize=serialize, max_connections=2)
    try:
        (entry,) = await store.unpublished(10)
        assert (entry.event_id, entry.trace_context) == ("ev1", "")
    finally:
        await _close(store)

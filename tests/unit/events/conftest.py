"""The events service in-process over real gRPC, locating through a real map service.

Every events test runs on both stores: the embedded SQLite file and PostgreSQL (a
schema of the test's own in the session's database, see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import inspect

import psycopg
import pytest

from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from services.events.api import build_component as build_events
from services.events.api import event_to_proto
from services.events.domain.service import EventHub
from services.events.feed import ChangeFeed
from services.events.locator import MapLocator
from services.events.relay import OutboxRelay
from services.events.store.postgres import PostgresEventStore
from services.events.store.sqlite import SqliteEventStore
from services.kit.bus import LocalLogBus
from tests.conftest import serve_in_process

COUNT_EVENTS = "SELECT count(*) FROM events"


def serialize(event):
    return event_to_proto(event).SerializeToString()


@pytest.fixture(params=["sqlite", "postgres"])
async def events(request, map_server, tmp_path):
    """An events server with its store, a local-log bus and the outbox relay running.

    `events.count_rows()` counts stored events on either store; `events.database` is
    the SQLite file for sqlite and None for postgres.
    """
    backend = request.param
    if backend == "postgres":
        # Only PostgreSQL runs need the server: look the DSN fixture up lazily.
        dsn = request.getfixturevalue("postgis_test_dsn")
        database = None
        store = await PostgresEventStore.open(dsn, serialize=serialize)

        async def count_rows() -> int:
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                cur = await conn.execute(COUNT_EVENTS)
                row = await cur.fetchone()
            return row[0]

    else:
        database = tmp_path / "events.sqlite3"
        store = SqliteEventStore(database, serialize=serialize)

        async def count_rows() -> int:
            return await store.db.run(lambda conn: conn.execute(COUNT_EVENTS).fetchone()[0])

    bus = LocalLogBus(tmp_path / "bus.sqlite3")
    feed = ChangeFeed()
    locator = MapLocator(map_server.address, timeout=2.0)
    relay = OutboxRelay(store, bus, feed)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    hub = EventHub(store, locator, on_change=feed.notify)
    server = await serve_in_process("events", build_events(hub, feed, []))
    server.backend = backend
    server.database = database
    server.count_rows = count_rows
    server.bus = bus
    server.store = store
    server.stub = pb_grpc.EventsServiceStub(server.channel)
    yield server
    await server.channel.close()
    await server.running.stop()
    stop.set()
    feed.notify()
    await relay_task
    await locator.close()
    await bus.close()
    closed = store.close()
    if inspect.isawaitable(closed):
        await closed

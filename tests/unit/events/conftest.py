"""The events service in-process over real gRPC, locating through a real map service.

Every events test runs on both stores: the embedded SQLite file and PostgreSQL (a
schema of the test's own in the session's database, see tests/conftest.py).
"""

from __future__ import annotations

import psycopg
import pytest

from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from services.events.config import EventsSettings
from services.events.wiring import assemble, serialize
from services.kit import signing
from tests.conftest import serve_in_process

COUNT_EVENTS = "SELECT count(*) FROM events"


SEAL_KEYS = signing.generate_keys_value("test")


@pytest.fixture(params=["sqlite", "postgres"])
async def events(request, map_server, tmp_path):
    """An events server started as `python -m services.events` starts it (`wiring.assemble`).

    `events.count_rows()` counts stored events on either store; `events.database` is
    the SQLite file for sqlite and None for postgres.
    """
    backend = request.param
    database = tmp_path / "events.sqlite3"
    dsn = ""
    if backend == "postgres":
        # Only PostgreSQL runs need the server: look the DSN fixture up lazily.
        dsn = request.getfixturevalue("postgis_test_dsn")
    settings = EventsSettings(
        grpc_port=0,
        host="127.0.0.1",
        map_address=map_server.address,
        backend=backend,
        database=database,
        postgres_dsn=dsn,
        bus_url=str(tmp_path / "bus.sqlite3"),
        call_timeout_seconds=2.0,
        seal_keys=SEAL_KEYS,
    )
    parts = await assemble(settings)

    async def count_rows() -> int:
        if backend == "postgres":
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                cur = await conn.execute(COUNT_EVENTS)
                row = await cur.fetchone()
            return row[0]
        return await parts.store.db.run(lambda conn: conn.execute(COUNT_EVENTS).fetchone()[0])

    server = await serve_in_process("events", parts.component)
    server.backend = backend
    server.database = database if backend == "sqlite" else None
    server.count_rows = count_rows
    server.bus = parts.bus
    server.store = parts.store
    server.feed = parts.feed
    server.stub = pb_grpc.EventsServiceStub(server.channel)
    yield server
    await server.channel.close()
    await server.running.stop()
    await parts.component.close()  # relay and sweeper, locator, bus, store


__all__ = ["serialize"]

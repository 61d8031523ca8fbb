"""Command store fixtures: every store test runs on SQLite and on PostgreSQL (a schema of
the test's own in the session's database, see tests/conftest.py)."""

from __future__ import annotations

import pytest

from services.command.store.postgres import PostgresCommandStore
from services.command.store.sqlite import SqliteCommandStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    """A command store on each backend, closed after the test."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        opened: SqliteCommandStore | PostgresCommandStore = await PostgresCommandStore.open(dsn)
    else:
        opened = SqliteCommandStore(tmp_path / "command.sqlite3")
    yield opened
    closing = opened.close()
    if closing is not None:
        await closing


@pytest.fixture
async def events_server(map_server, tmp_path):
    """The events service (SQLite) publishing on the test's local bus file."""
    from services.events.config import EventsSettings
    from services.events.wiring import assemble as assemble_events
    from services.kit import signing
    from tests.conftest import serve_in_process

    settings = EventsSettings(
        grpc_port=0,
        host="127.0.0.1",
        map_address=map_server.address,
        database=tmp_path / "events.sqlite3",
        bus_url=str(tmp_path / "bus.sqlite3"),
        call_timeout_seconds=2.0,
        seal_keys=signing.generate_keys_value("test"),
    )
    parts = await assemble_events(settings)
    server = await serve_in_process("events", parts.component)
    server.parts = parts
    yield server
    await server.channel.close()
    await server.running.stop()
    await parts.component.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def command(request, events_server, map_server, tmp_path):
    """The command service as `python -m services.command` starts it, on each store, reading
    the events service's stream from the same bus file."""
    from grassroots.command.v1 import command_service_pb2_grpc as pb_grpc
    from services.command.config import CommandSettings
    from services.command.wiring import assemble
    from tests.conftest import serve_in_process

    dsn = request.getfixturevalue("postgis_test_dsn") if request.param == "postgres" else ""
    settings = CommandSettings(
        grpc_port=0,
        host="127.0.0.1",
        events_address=events_server.address,
        map_address=map_server.address,
        backend=request.param,
        database=tmp_path / "command.sqlite3",
        postgres_dsn=dsn,
        bus_url=str(tmp_path / "bus.sqlite3"),
        timer_poll_seconds=0.1,
        redelivery_idle_ms=1000,
        call_timeout_seconds=2.0,
    )
    parts = await assemble(settings)
    server = await serve_in_process("command", parts.component)
    server.parts = parts
    server.stub = pb_grpc.CommandServiceStub(server.channel)
    server.events = events_server
    server.map = map_server
    yield server
    await server.channel.close()
    await server.running.stop()
    await parts.component.close()

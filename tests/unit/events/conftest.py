"""The events service in-process over real gRPC, locating through a real map service."""

from __future__ import annotations

import asyncio

import pytest

from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from services.events.api import build_component as build_events
from services.events.api import event_to_proto
from services.events.domain.service import EventHub
from services.events.feed import ChangeFeed
from services.events.locator import MapLocator
from services.events.relay import OutboxRelay
from services.events.store.sqlite import SqliteEventStore
from services.kit.bus import LocalLogBus
from tests.conftest import serve_in_process


@pytest.fixture
async def events(map_server, tmp_path):
    """An events server with its store, a local-log bus and the outbox relay running."""
    database = tmp_path / "events.sqlite3"
    store = SqliteEventStore(
        database, serialize=lambda event: event_to_proto(event).SerializeToString()
    )
    bus = LocalLogBus(tmp_path / "bus.sqlite3")
    feed = ChangeFeed()
    locator = MapLocator(map_server.address, timeout=2.0)
    relay = OutboxRelay(store, bus, feed)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    hub = EventHub(store, locator, on_change=feed.notify)
    server = await serve_in_process("events", build_events(hub, feed, []))
    server.database = database
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
    store.close()

"""The events service in-process over real gRPC, locating through a real map service."""

from __future__ import annotations

import pytest

from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from services.events.api import build_component as build_events
from services.events.domain.service import EventHub
from services.events.locator import MapLocator
from services.events.store.sqlite import SqliteEventStore
from tests.conftest import serve_in_process


@pytest.fixture
async def events(map_server, tmp_path):
    database = tmp_path / "events.sqlite3"
    store = SqliteEventStore(database)
    locator = MapLocator(map_server.address, timeout=2.0)
    server = await serve_in_process(
        "events", build_events(EventHub(store, locator), [locator.close, store.close])
    )
    server.database = database
    server.stub = pb_grpc.EventsServiceStub(server.channel)
    yield server
    await server.channel.close()
    await server.running.stop()
    await locator.close()
    store.close()

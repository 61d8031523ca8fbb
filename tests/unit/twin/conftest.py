"""The twin service in-process over real gRPC, raising events in a real events service
(which locates through a real map service).

Every twin test runs on both backends: SQLite with the latest state in memory, and
PostgreSQL history with the latest state in Redis (database 15 of the local server,
flushed per test).
"""

from __future__ import annotations

import pytest

from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc
from services.events.config import EventsSettings
from services.events.wiring import assemble as assemble_events
from services.kit import signing
from services.twin.config import TwinSettings
from services.twin.wiring import assemble
from tests.conftest import serve_in_process

SEAL_KEYS = signing.generate_keys_value("test")
REDIS_URL = "redis://127.0.0.1:6379/15"
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
async def events_server(map_server, tmp_path):
    settings = EventsSettings(
        grpc_port=0,
        host="127.0.0.1",
        map_address=map_server.address,
        database=tmp_path / "events.sqlite3",
        bus_url=str(tmp_path / "events-bus.sqlite3"),
        call_timeout_seconds=2.0,
        seal_keys=SEAL_KEYS,
    )
    parts = await assemble_events(settings)
    server = await serve_in_process("events", parts.component)
    server.stub = events_grpc.EventsServiceStub(server.channel)
    server.store = parts.store
    yield server
    await server.channel.close()
    await server.running.stop()
    await parts.component.close()


async def _flush_redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    await client.flushdb()
    await client.aclose()


def twin_settings(
    backend: str, tmp_path, events_address: str, dsn: str = "", map_address: str = ""
) -> TwinSettings:
    return TwinSettings(
        grpc_port=0,
        host="127.0.0.1",
        backend=backend,
        database=tmp_path / "twin.sqlite3",
        postgres_dsn=dsn,
        redis_url=REDIS_URL if backend == "postgres" else "",
        events_address=events_address,
        map_address=map_address,
        bus_url=str(tmp_path / "twin-bus.sqlite3"),
        call_timeout_seconds=2.0,
    )


class TwinUnderTest:
    """A started twin: its gRPC stub, its parts, and a way to restart it on the same data."""

    def __init__(self, backend: str, settings: TwinSettings) -> None:
        self.backend = backend
        self.settings = settings

    async def start(self) -> TwinUnderTest:
        self.parts = await assemble(self.settings)
        self.hub = self.parts.hub
        self.server = await serve_in_process("twin", self.parts.component)
        self.stub = pb_grpc.TwinServiceStub(self.server.channel)
        return self

    async def stop(self) -> None:
        await self.server.channel.close()
        await self.server.running.stop()
        await self.parts.component.close()


@pytest.fixture(params=BACKENDS)
async def twin(request, events_server, map_server, tmp_path):
    backend = request.param
    dsn = ""
    if backend == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        await _flush_redis()
    under_test = TwinUnderTest(
        backend, twin_settings(backend, tmp_path, events_server.address, dsn, map_server.address)
    )
    await under_test.start()
    under_test.events = events_server
    under_test.map = map_server
    yield under_test
    await under_test.stop()

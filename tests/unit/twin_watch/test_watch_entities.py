"""WatchEntities over real gRPC on the twin as `python -m services.twin` assembles it:
100 entities x 50 updates x 3 watchers, each seeing every change in order, or told it
missed some and resuming consistently (Orion-LD's issue 1650 is exactly this shape)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from devstack.stack import free_port
from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit.principal import Principal
from services.twin.config import TwinSettings
from services.twin.wiring import assemble
from tests.conftest import serve_in_process

XINGMING_ID = "sh-jiading-anting-xingming"
PARENT = f"tenants/{XINGMING_ID}"
ENTITIES = 100
UPDATES = 50
CAPACITY = 1000
READER = Principal(
    subject="users/watcher",
    tenant="sh/jiading/anting/xingming",
    kind="user",
    scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}),
)
STRANGER = Principal(
    subject="users/stranger",
    tenant="sh/jiading/anting/xiangyang",
    kind="user",
    scopes=frozenset({"twin:read"}),
)


@pytest.fixture
async def twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[pb_grpc.TwinServiceStub]:
    monkeypatch.setenv("GRASSROOTS_TWIN_WATCH_LOG_CAPACITY", str(CAPACITY))
    settings = TwinSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "twin.sqlite3",
        bus_url=str(tmp_path / "twin-bus.sqlite3"),
        events_address=f"127.0.0.1:{free_port()}",  # no rules fire here
    )
    parts = await assemble(settings)
    server = await serve_in_process("twin", parts.component)
    yield pb_grpc.TwinServiceStub(server.channel)
    await server.channel.close()
    await server.running.stop()
    await parts.component.close()


class Watcher:
    """Follows a watch; checks order per entity; after `missed` re-reads the entities."""

    def __init__(self, stub: pb_grpc.TwinServiceStub, request: pb.WatchEntitiesRequest) -> None:
        self.stub = stub
        self.request = request
        self.state: dict[str, float] = {}  # entity -> the round its value says
        self.sequence: dict[str, int] = {}
        self.missed = 0
        self.changes = 0
        self.ready = asyncio.Event()
        self.caught_up = asyncio.Event()

    async def reached(self, round_: int) -> None:
        """Until every entity's state is at `round_` (the watcher keeps up)."""
        while not (len(self.state) == ENTITIES and all(v >= round_ for v in self.state.values())):
            self.caught_up.clear()
            await self.caught_up.wait()

    def done(self) -> bool:
        return len(self.state) == ENTITIES and all(v == UPDATES for v in self.state.values())

    async def run(self, token: str = "", leave_after: int | None = None) -> str:
        """Watch until done (or until `leave_after` changes: a watcher that goes away);
        the last resume token."""
        request = pb.WatchEntitiesRequest()
        request.CopyFrom(self.request)
        request.resume_token = token
        call = self.stub.WatchEntities(request, metadata=READER.to_metadata())
        await call.initial_metadata()
        self.ready.set()
        try:
            async for item in call:
                token = item.resume_token
                kind = item.WhichOneof("item")
                if kind == "missed":
                    self.missed += 1
                    await self.reread()
                    self.caught_up.set()
                elif kind == "change" and item.change.kind == pb.EntityChange.KIND_UPDATED:
                    self.take(item.change)
                    self.caught_up.set()
                if self.done() or (leave_after is not None and self.changes >= leave_after):
                    return token
        finally:
            call.cancel()
        return token

    def take(self, change: pb.EntityChange) -> None:
        self.changes += 1
        name = change.entity
        value = next(p.value for p in change.properties if p.property == "level_cm")
        # Created is change 1, round r's update is change r + 1.
        assert change.sequence == value + 1, (name, change.sequence, value)
        known = self.sequence.get(name)
        if known is not None and change.sequence <= known:
            assert self.missed, f"{name}: sequence {change.sequence} after {known} without a gap"
            return  # older than the state re-read after the gap
        if known is not None:
            assert change.sequence == known + 1, f"{name}: {known} -> {change.sequence}"
        else:
            assert change.sequence == 2 or self.missed, (name, change.sequence)
        self.sequence[name] = change.sequence
        self.state[name] = value

    async def reread(self) -> None:
        """What a watcher told of a gap does: read the entities again, then go on."""
        token = ""
        while True:
            page = await self.stub.ListEntities(
                pb.ListEntitiesRequest(parent=PARENT, page_size=1000, page_token=token),
                metadata=READER.to_metadata(),
            )
            for entity in page.entities:
                value = next((p.value for p in entity.properties if p.property == "level_cm"), 0)
                self.state[entity.name] = value
                # The re-read value is the round; sequences go on from round + 1 (created = 1).
                self.sequence[entity.name] = int(value) + 1
            token = page.next_page_token
            if not token:
                return


async def test_a_hundred_entities_fifty_updates_three_watchers(
    twin: pb_grpc.TwinServiceStub,
) -> None:
    names = [f"{PARENT}/entities/gauge-{i:03d}" for i in range(ENTITIES)]
    for i in range(ENTITIES):
        await twin.CreateEntity(
            pb.CreateEntityRequest(
                parent=PARENT,
                entity_id=f"gauge-{i:03d}",
                entity=pb.Entity(
                    entity_type="WaterLevelGauge",
                    location=geo_pb2.GeoPoint(longitude=121.15 + i * 1e-4, latitude=31.29),
                ),
            ),
            metadata=READER.to_metadata(),
        )
    everything = Watcher(twin, pb.WatchEntitiesRequest(parent=PARENT))
    model_in_area = Watcher(
        twin,
        pb.WatchEntitiesRequest(
            parent=PARENT,
            entity_type="WaterLevelGauge",
            area=pb.LonLatBox(
                min_longitude=121.1, min_latitude=31.2, max_longitude=121.2, max_latitude=31.4
            ),
        ),
    )
    # The third watcher goes away after a few changes and comes back with its resume token
    # when the log no longer holds what it missed.
    slow = Watcher(twin, pb.WatchEntitiesRequest(parent=PARENT))
    watchers = [everything, model_in_area, slow]
    tasks = [asyncio.create_task(w.run()) for w in watchers[:2]]
    left = asyncio.create_task(slow.run(leave_after=ENTITIES // 2))
    for watcher in watchers:
        await asyncio.wait_for(watcher.ready.wait(), 10)
    start = datetime.now(UTC) - timedelta(hours=1)
    for round_ in range(1, UPDATES + 1):
        observed = int((start + timedelta(seconds=round_)).timestamp() * 1000)
        answer = await twin.IngestTelemetry(
            pb.IngestTelemetryRequest(
                parent=PARENT,
                columns=pb.TelemetryColumns(
                    entities=names,
                    properties=["level_cm"] * ENTITIES,
                    values=[float(round_)] * ENTITIES,
                    observe_times_ms=[observed] * ENTITIES,
                ),
            ),
            metadata=READER.to_metadata(),
        )
        assert answer.accepted_count == ENTITIES
        # The prompt watchers keep up (one round at a time); the slow one reads nothing.
        async with asyncio.timeout(60):
            await everything.reached(round_)
            await model_in_area.reached(round_)
        if round_ == UPDATES // 2:
            token = await asyncio.wait_for(left, 30)
            tasks.append(asyncio.create_task(slow.run(token)))
    async with asyncio.timeout(120):
        await asyncio.gather(*tasks)
    for watcher in (everything, model_in_area):
        assert watcher.missed == 0 and watcher.changes == ENTITIES * UPDATES
        assert watcher.done()
    # The slow one was told, re-read and ended with the same truth.
    assert slow.missed >= 1 and slow.done()
    assert slow.changes < ENTITIES * UPDATES


async def test_watch_bounds_and_resume(twin: pb_grpc.TwinServiceStub) -> None:
    # Another village's caller: NOT_FOUND, as for anything outside its subtree.
    call = twin.WatchEntities(
        pb.WatchEntitiesRequest(parent=PARENT), metadata=STRANGER.to_metadata()
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.initial_metadata()
        await call.read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in (
        pb.WatchEntitiesRequest(parent=PARENT, resume_token="nonsense"),
        pb.WatchEntitiesRequest(parent=PARENT, entity="tenants/sh-jiading/entities/x"),
        pb.WatchEntitiesRequest(
            parent=PARENT, area=pb.LonLatBox(min_longitude=10, max_longitude=5, max_latitude=1)
        ),
    ):
        call = twin.WatchEntities(bad, metadata=READER.to_metadata())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A token from an earlier run of the service: told it missed, not silently resumed.
    call = twin.WatchEntities(
        pb.WatchEntitiesRequest(parent=PARENT, resume_token="0badc0de.5"),
        metadata=READER.to_metadata(),
    )
    first = await asyncio.wait_for(call.read(), 10)
    assert first.WhichOneof("item") == "missed"
    call.cancel()
    # Resuming with a token of this run gives exactly the changes after it.
    await twin.CreateEntity(
        pb.CreateEntityRequest(
            parent=PARENT, entity_id="g1", entity=pb.Entity(entity_type="WaterLevelGauge")
        ),
        metadata=READER.to_metadata(),
    )
    watch = twin.WatchEntities(
        pb.WatchEntitiesRequest(parent=PARENT, entity=f"{PARENT}/entities/g1"),
        metadata=READER.to_metadata(),
    )
    await watch.initial_metadata()

    async def ingest(value: float) -> None:
        await twin.IngestTelemetry(
            pb.IngestTelemetryRequest(
                parent=PARENT,
                columns=pb.TelemetryColumns(
                    entities=["g1"], properties=["level_cm"], values=[value]
                ),
            ),
            metadata=READER.to_metadata(),
        )

    await ingest(1.0)
    first = await asyncio.wait_for(watch.read(), 10)
    watch.cancel()
    await ingest(2.0)
    await ingest(3.0)
    resumed = twin.WatchEntities(
        pb.WatchEntitiesRequest(
            parent=PARENT, entity=f"{PARENT}/entities/g1", resume_token=first.resume_token
        ),
        metadata=READER.to_metadata(),
    )
    seen = []
    with contextlib.suppress(TimeoutError):
        while len(seen) < 2:
            item = await asyncio.wait_for(resumed.read(), 10)
            if item.WhichOneof("item") == "change":
                seen.append(item.change)
    resumed.cancel()
    assert [c.sequence for c in seen] == [first.change.sequence + 1, first.change.sequence + 2]
    assert [c.properties[0].value for c in seen] == [2.0, 3.0]

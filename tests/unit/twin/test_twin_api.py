"""Models inherited down the tree, the entity graph both ways, level changes on the bus,
inactivity, change sequence numbers, and the latest state while Redis is down."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import datetime

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from devstack.stack import free_port
from grassroots.twin.v1 import twin_service_pb2 as pb
from services.kit import tenancy
from services.twin.domain.ingest import Columns
from services.twin.store.latest_redis import RedisLatest
from tests.conftest import TOWN, XINGMING, SignedAtCall, principal_of
from tests.unit.twin.conftest import TwinUnderTest, twin_settings
from tests.unit.twin.test_alarm_loop import MD, PARENT, make_gauge, twin_events, wait_for

TOWN_MD = SignedAtCall(
    principal_of(TOWN, scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}))
)
WRITER = principal_of(XINGMING, scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}))


async def test_a_towns_model_is_inherited_by_its_villages(twin):
    await twin.stub.CreateModel(
        pb.CreateModelRequest(
            parent=tenancy.tenant_name(TOWN),
            model=pb.Model(
                model_id="SoilMoistureProbe",
                smart_data_model="AgriSoilState",
                properties=[pb.PropertySpec(name="moisture", unit="%", minimum=0, maximum=100)],
            ),
        ),
        metadata=TOWN_MD,
    )
    listed = await twin.stub.ListModels(pb.ListModelsRequest(parent=PARENT), metadata=MD)
    ids = {m.model_id: m.name for m in listed.models}
    assert ids["SoilMoistureProbe"] == "tenants/sh-jiading-anting/models/SoilMoistureProbe"
    assert ids["WaterLevelGauge"] == "tenants/-/models/WaterLevelGauge"
    await twin.stub.CreateEntity(
        pb.CreateEntityRequest(
            parent=PARENT, entity_id="probe-1", entity=pb.Entity(entity_type="SoilMoistureProbe")
        ),
        metadata=MD,
    )
    got = await twin.stub.IngestTelemetry(
        pb.IngestTelemetryRequest(
            parent=PARENT,
            columns=pb.TelemetryColumns(
                entities=["probe-1", "probe-1"], properties=["moisture"] * 2, values=[40, 140]
            ),
        ),
        metadata=MD,
    )
    assert (got.accepted_count, got.rejections[0].reason) == (1, "OUT_OF_RANGE")
    # Another town does not see it.
    other = principal_of("sh/minhang", scopes=frozenset({"twin:read"}))
    theirs = await twin.stub.ListModels(
        pb.ListModelsRequest(parent="tenants/sh-minhang"), metadata=SignedAtCall(other)
    )
    assert "SoilMoistureProbe" not in {m.model_id for m in theirs.models}


async def test_the_graph_answers_both_ways(twin, grid_index):
    async def create(entity_id, entity_type, links=()):
        await twin.stub.CreateEntity(
            pb.CreateEntityRequest(
                parent=PARENT,
                entity_id=entity_id,
                entity=pb.Entity(
                    entity_type=entity_type,
                    relationships=[
                        pb.Relationship(type=t, target=f"{PARENT}/entities/{x}") for t, x in links
                    ],
                ),
            ),
            metadata=MD,
        )

    await create("b-12", "Building")
    await create("h-301", "Household", [("livesIn", "b-12")])
    await create("p-1", "Person", [("memberOf", "h-301")])
    await create("smoke-1", "SmokeDetector", [("locatedIn", "b-12")])
    name = f"{PARENT}/entities/b-12"
    inside = await twin.stub.ListRelatedEntities(
        pb.ListRelatedEntitiesRequest(
            name=name, direction=pb.ListRelatedEntitiesRequest.DIRECTION_INCOMING
        ),
        metadata=MD,
    )
    assert {(r.relationship_type, r.entity.name.rsplit("/", 1)[1]) for r in inside.related} == {
        ("livesIn", "h-301"),
        ("locatedIn", "smoke-1"),
    }
    out = await twin.stub.ListRelatedEntities(
        pb.ListRelatedEntitiesRequest(name=f"{PARENT}/entities/p-1"), metadata=MD
    )
    assert [r.entity.entity_type for r in out.related] == ["Household"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create("ghost", "Person", [("memberOf", "nobody")])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_levels_are_published_on_the_bus_and_the_top_level_raises_one_event(twin, grid_index):
    gauge = await make_gauge(twin, grid_index)  # a place inside the village
    await twin.stub.CreateEntity(
        pb.CreateEntityRequest(
            parent=PARENT,
            entity_id="crowd-1",
            entity=pb.Entity(entity_type="CrowdCounter", location=gauge.location),
        ),
        metadata=MD,
    )
    await twin.stub.CreateRule(
        pb.CreateRuleRequest(
            parent=PARENT,
            rule_id="crowd",
            rule=pb.Rule(
                entity_type="CrowdCounter",
                property="count",
                levels=pb.Levels(bounds=[300, 600, 900], hysteresis=50, event_from_level=3),
                event_category="safety.fire_hazard",
            ),
        ),
        metadata=MD,
    )
    now = int(time.time() * 1000) - 60_000
    await twin.stub.IngestTelemetry(
        pb.IngestTelemetryRequest(
            parent=PARENT,
            columns=pb.TelemetryColumns(
                entities=["crowd-1"] * 4,
                properties=["count"] * 4,
                values=[350, 700, 950, 500],
                # Steps within one second stay ordered by their observed times.
                observe_times_ms=[now, now + 200, now + 400, now + 600],
            ),
        ),
        metadata=MD,
    )

    async def published():
        return await twin.parts.bus.length("twin.level_changed") == 4

    await wait_for(published)
    await twin.parts.bus.ensure_group("twin.level_changed", "test")
    got = await twin.parts.bus.read("twin.level_changed", "test", "t", count=10)
    steps = [
        (json.loads(d.message.payload)["previous_level"], json.loads(d.message.payload)["level"])
        for d in got
    ]
    assert steps == [(0, 1), (1, 2), (2, 3), (3, 1)]
    observed = [datetime.fromisoformat(json.loads(d.message.payload)["observe_time"]) for d in got]
    assert [round(t.timestamp() * 1000) - now for t in observed] == [0, 200, 400, 600]
    events = await wait_for(lambda: twin_events(twin))
    assert len(events) == 1 and events[0].category == "safety.fire_hazard"


async def test_silence_raises_a_welfare_event(twin, grid_index):
    gauge = await make_gauge(twin, grid_index)
    await twin.stub.CreateEntity(
        pb.CreateEntityRequest(
            parent=PARENT,
            entity_id="meter-1",
            entity=pb.Entity(entity_type="WaterMeter", location=gauge.location),
        ),
        metadata=MD,
    )
    await twin.stub.CreateRule(
        pb.CreateRuleRequest(
            parent=PARENT,
            rule_id="no-water",
            rule=pb.Rule(
                entity_type="WaterMeter",
                property="flow_l_min",
                inactivity=pb.Inactivity(silence=Duration(seconds=24 * 3600)),
                event_category="care.elderly_welfare",
            ),
        ),
        metadata=MD,
    )
    assert await twin.hub.check_silence(int(time.time() * 1000) + 3_600_000) == 0
    assert await twin.hub.check_silence(int(time.time() * 1000) + 25 * 3_600_000) == 1
    assert await twin.hub.check_silence(int(time.time() * 1000) + 26 * 3_600_000) == 0
    events = await wait_for(lambda: twin_events(twin))
    assert [e.category for e in events] == ["care.elderly_welfare"]


async def test_a_clock_moved_forward_runs_silence_and_bounds_readings_by_it(
    events_server, map_server, grid_index, tmp_path
):
    """Drills and loop tests move the twin's time with a file (as command's): a day of
    silence passes in a moment, and readings stamped by the moved clock are accepted."""
    clock_file = tmp_path / "clock-offset"
    settings = twin_settings("sqlite", tmp_path, events_server.address, "", map_server.address)
    moved = TwinUnderTest("sqlite", settings.model_copy(update={"clock_offset_file": clock_file}))
    await moved.start()
    moved.events = events_server
    try:
        gauge = await make_gauge(moved, grid_index)
        await moved.stub.CreateEntity(
            pb.CreateEntityRequest(
                parent=PARENT,
                entity_id="meter-1",
                entity=pb.Entity(entity_type="WaterMeter", location=gauge.location),
            ),
            metadata=MD,
        )
        await moved.stub.CreateRule(
            pb.CreateRuleRequest(
                parent=PARENT,
                rule_id="no-water",
                rule=pb.Rule(
                    entity_type="WaterMeter",
                    property="flow_l_min",
                    inactivity=pb.Inactivity(silence=Duration(seconds=24 * 3600)),
                    event_category="care.elderly_welfare",
                ),
            ),
            metadata=MD,
        )
        ahead = int(time.time() * 1000) + 23 * 3_600_000
        refused = await moved.hub.ingest(
            WRITER, XINGMING, Columns.of(["meter-1"], ["flow_l_min"], [1.0], [ahead])
        )
        assert refused.rejected_count == 1  # 23 hours ahead of the wall clock
        assert await moved.hub.check_silence() == 0
        clock_file.write_text(str(23 * 3600))
        taken = await moved.hub.ingest(
            WRITER, XINGMING, Columns.of(["meter-1"], ["flow_l_min"], [1.0], [ahead])
        )
        assert taken.accepted_count == 1  # now by the twin's clock
        clock_file.write_text(str(46 * 3600))
        assert await moved.hub.check_silence() == 0  # 23 hours since that reading
        clock_file.write_text(str(47 * 3600 + 60))
        assert await moved.hub.check_silence() == 1
        events = await wait_for(lambda: twin_events(moved))
        assert [e.category for e in events] == ["care.elderly_welfare"]
    finally:
        await moved.stop()


async def test_every_change_carries_the_next_sequence_number(twin, grid_index):
    await make_gauge(twin, grid_index)
    seen = []
    twin.hub.subscribe_changes(seen.extend)
    now = int(time.time() * 1000) - 60_000
    for i in range(3):
        await twin.hub.ingest(
            WRITER, XINGMING, Columns.of(["gauge-1"], ["level_cm"], [float(i)], [now + i])
        )
    seqs = [c.seq for c in seen]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    assert seen[-1].properties["level_cm"].value == 2.0
    await twin.stop()
    await twin.start()  # a restart starts a new range: later than everything before
    after = []
    twin.hub.subscribe_changes(after.extend)
    await twin.hub.ingest(WRITER, XINGMING, Columns.of(["gauge-1"], ["level_cm"], [9.0], [now + 9]))
    assert after[0].seq > seqs[-1]


async def test_latest_state_falls_back_to_the_store_while_redis_is_down_and_catches_up(
    twin, grid_index, tmp_path
):
    await make_gauge(twin, grid_index)
    port = free_port()
    latest = RedisLatest(f"redis://127.0.0.1:{port}/0", twin.parts.store, timeout=0.2)
    hub = twin.hub
    hub.latest = latest  # this hub now keeps its latest state on a Redis that is not there
    now = int(time.time() * 1000) - 60_000
    outcome = await hub.ingest(
        WRITER, XINGMING, Columns.of(["gauge-1"], ["level_cm"], [17.0], [now])
    )
    assert outcome.accepted_count == 1 and latest.degraded
    entity = await hub.get_entity(WRITER, f"{PARENT}/entities/gauge-1")
    assert entity.latest["level_cm"].value == 17.0  # from the store's history
    server = await asyncio.create_subprocess_exec(
        "redis-server",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(1.5)  # the server starts; the retry pause passes
        got = await latest.get_many([twin.hub._series[(XINGMING, "gauge-1", "level_cm")]])
        assert got[0] is not None and got[0].value == 17.0  # written on recovery
        assert not latest.degraded
    finally:
        server.terminate()
        await server.wait()
        await latest.close()

"""The loop that matters most: a reading crosses a threshold -> one event in events."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
import shapely
from google.protobuf.duration_pb2 import Duration

from grassroots.events.v1 import events_service_pb2 as ev_pb
from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from tests.conftest import XINGMING, SignedAtCall, principal_of

PARENT = tenancy.tenant_name(XINGMING)
WRITER = principal_of(
    XINGMING,
    scopes=frozenset({"twin:read", "twin:write", "twin:ingest", "events:read", "events:manage"}),
)
MD = SignedAtCall(WRITER)


def village_point(grid_index) -> tuple[float, float]:
    index = next(i for i, c in enumerate(grid_index.cells) if c.village == XINGMING)
    point = shapely.point_on_surface(grid_index.polygons[index])
    return point.x, point.y


async def make_gauge(twin, grid_index, entity_id="gauge-1"):
    lon, lat = village_point(grid_index)
    return await twin.stub.CreateEntity(
        pb.CreateEntityRequest(
            parent=PARENT,
            entity_id=entity_id,
            entity=pb.Entity(
                entity_type="WaterLevelGauge",
                display_name="Gauge at the east underpass",
                location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
            ),
        ),
        metadata=MD,
    )


async def make_flood_rule(twin, min_duration_s=0, rule_id="flood"):
    return await twin.stub.CreateRule(
        pb.CreateRuleRequest(
            parent=PARENT,
            rule_id=rule_id,
            rule=pb.Rule(
                display_name="Underpass flooding",
                entity_type="WaterLevelGauge",
                property="level_cm",
                threshold=pb.Threshold(
                    trigger=30, clear=25, min_duration=Duration(seconds=min_duration_s)
                ),
                event_category="safety.flooding",
                severity=4,
            ),
        ),
        metadata=MD,
    )


async def ingest(twin, values, times_ms, entity="gauge-1"):
    return await twin.stub.IngestTelemetry(
        pb.IngestTelemetryRequest(
            parent=PARENT,
            columns=pb.TelemetryColumns(
                entities=[entity] * len(values),
                properties=["level_cm"] * len(values),
                values=values,
                observe_times_ms=times_ms,
            ),
        ),
        metadata=MD,
    )


async def twin_events(twin) -> list[ev_pb.Event]:
    listed = await twin.events.stub.ListEvents(
        ev_pb.ListEventsRequest(parent=PARENT, page_size=100), metadata=MD
    )
    return [e for e in listed.events if e.source == ev_pb.Event.SOURCE_TWIN_RULE]


async def wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_crossing_raises_one_event_per_episode_and_clearing_comments(twin, grid_index):
    await make_gauge(twin, grid_index)
    await make_flood_rule(twin)
    now = int(time.time() * 1000) - 60_000
    # Rises past 30, flaps above the clear level (25) and crosses 30 again: one episode.
    await ingest(twin, [10, 31, 28, 33, 26, 35], [now + i * 1000 for i in range(6)])
    events = await wait_for(lambda: twin_events(twin))
    await asyncio.sleep(0.3)
    events = await twin_events(twin)
    assert len(events) == 1
    event = events[0]
    assert event.category == "safety.flooding"
    assert event.severity == 4
    assert "level_cm 31" in event.description
    # Falls below 25: the episode clears and the same event says so.
    await ingest(twin, [20], [now + 10_000])

    async def commented():
        got = await twin.events.stub.GetEvent(ev_pb.GetEventRequest(name=event.name), metadata=MD)
        return [c for c in got.comments if c.text.startswith("Cleared")]

    assert len(await wait_for(commented)) == 1
    # A second rise is a second episode, a second event.
    await ingest(twin, [40], [now + 20_000])
    await wait_for(lambda: _count_is(twin, 2))


async def _count_is(twin, n):
    return len(await twin_events(twin)) == n


async def test_minimum_duration_waits_before_firing(twin, grid_index):
    await make_gauge(twin, grid_index)
    await make_flood_rule(twin, min_duration_s=300)
    now = int(time.time() * 1000) - 3_600_000
    # Above for 4 minutes, then back under the trigger: nothing.
    await ingest(twin, [35, 36, 29], [now, now + 240_000, now + 250_000])
    # Above again for 5 minutes: fires.
    await ingest(twin, [31, 32, 33], [now + 400_000, now + 600_000, now + 700_000])
    events = await wait_for(lambda: twin_events(twin))
    assert len(events) == 1
    assert "level_cm 33" in events[0].description


async def test_episode_survives_a_restart(twin, grid_index):
    await make_gauge(twin, grid_index)
    await make_flood_rule(twin)
    now = int(time.time() * 1000) - 60_000
    await ingest(twin, [40], [now])
    await wait_for(lambda: twin_events(twin))
    await twin.stop()
    await twin.start()
    # Still above after the restart: the same episode, no second event.
    await ingest(twin, [45, 50], [now + 1000, now + 2000])
    await asyncio.sleep(0.5)
    assert await twin.parts.relay.deliver_pending() == 0
    assert len(await twin_events(twin)) == 1


async def test_a_pending_duration_survives_a_restart(twin, grid_index):
    """Half of "above 30 for 5 min" before a restart and half after: one event, raised
    when the stretch (measured by the readings' times) reaches 5 minutes."""
    await make_gauge(twin, grid_index)
    await make_flood_rule(twin, min_duration_s=300)
    start = int(time.time() * 1000) - 3_600_000
    await ingest(twin, [33, 34], [start, start + 150_000])
    await twin.stop()
    await twin.start()
    await ingest(twin, [35], [start + 290_000])
    await asyncio.sleep(0.3)
    assert await twin_events(twin) == []
    await ingest(twin, [36, 37], [start + 300_000, start + 360_000])
    events = await wait_for(lambda: twin_events(twin))
    assert len(events) == 1
    assert "level_cm 36" in events[0].description
    # Its clearing after another restart comments on the same event.
    await twin.stop()
    await twin.start()
    await ingest(twin, [20], [start + 400_000])

    async def commented():
        got = await twin.events.stub.GetEvent(
            ev_pb.GetEventRequest(name=events[0].name), metadata=MD
        )
        return [c for c in got.comments if c.text.startswith("Cleared")]

    assert len(await wait_for(commented)) == 1
    assert len(await twin_events(twin)) == 1


async def test_a_deleted_rule_raises_nothing_more_and_can_be_made_again(twin, grid_index):
    await make_gauge(twin, grid_index)
    rule = await make_flood_rule(twin)
    now = int(time.time() * 1000) - 60_000
    await ingest(twin, [10, 35], [now, now + 1000])
    await wait_for(lambda: _count_is(twin, 1))
    await ingest(twin, [10], [now + 2000])

    await twin.stub.DeleteRule(pb.DeleteRuleRequest(name=rule.name), metadata=MD)

    listed = await twin.stub.ListRules(pb.ListRulesRequest(parent=PARENT), metadata=MD)
    assert [r.name for r in listed.rules] == []
    await ingest(twin, [50], [now + 3000])
    await asyncio.sleep(0.5)
    assert len(await twin_events(twin)) == 1
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await twin.stub.DeleteRule(pb.DeleteRuleRequest(name=rule.name), metadata=MD)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    # The same id again is a new rule that starts from idle: the next rise fires.
    await make_flood_rule(twin)
    await ingest(twin, [10, 60], [now + 4000, now + 5000])
    await wait_for(lambda: _count_is(twin, 2))


async def test_an_entity_says_which_of_its_rules_are_pending_or_alarming(twin, grid_index):
    """The board's alarm state: each entity's rules that are not idle, and since when."""
    gauge = await make_gauge(twin, grid_index)
    await make_flood_rule(twin, min_duration_s=300)
    assert list(gauge.rule_statuses) == []
    start = int(time.time() * 1000) - 3_600_000
    await ingest(twin, [35], [start])  # above, waiting out the five minutes
    read = await twin.stub.GetEntity(pb.GetEntityRequest(name=gauge.name), metadata=MD)
    (pending,) = read.rule_statuses
    assert pending.phase == pb.RuleStatus.PHASE_PENDING
    assert pending.rule == f"{PARENT}/rules/flood"
    assert pending.start_time.ToMilliseconds() == start
    await ingest(twin, [36], [start + 400_000])  # held for more than five minutes: alarm
    listed = await twin.stub.ListEntities(pb.ListEntitiesRequest(parent=PARENT), metadata=MD)
    (entity,) = [e for e in listed.entities if e.name == gauge.name]
    assert [s.phase for s in entity.rule_statuses] == [pb.RuleStatus.PHASE_ACTIVE]
    await ingest(twin, [20], [start + 500_000])  # under the clear level: quiet again
    read = await twin.stub.GetEntity(pb.GetEntityRequest(name=gauge.name), metadata=MD)
    assert list(read.rule_statuses) == []

"""`make run`'s twin: installed once, its gauge raises the flooding event the README shows."""

from __future__ import annotations

from devstack import demo_twin
from grassroots.twin.v1 import twin_service_pb2 as pb
from tests.unit.twin.test_alarm_loop import MD, PARENT, twin_events, wait_for


async def test_the_demo_twin_installs_once_and_its_gauge_raises_an_event(twin, demo_gpkg):
    assert await demo_twin.install(twin.server.channel, demo_gpkg) == len(demo_twin.ENTITIES)
    assert await demo_twin.install(twin.server.channel, demo_gpkg) == 0
    listed = await twin.stub.ListEntities(
        pb.ListEntitiesRequest(parent=PARENT, page_size=100), metadata=MD
    )
    assert len(listed.entities) == len(demo_twin.ENTITIES)
    gauge = next(e for e in listed.entities if e.name.endswith("/gauge-east-underpass"))
    assert gauge.state["level_cm"] < 30  # a calm day of history
    truck = next(e for e in listed.entities if e.name.endswith("/truck-muck-07"))
    assert next(p for p in truck.properties if p.property == "position").point.longitude
    answer = await twin.stub.IngestTelemetry(
        pb.IngestTelemetryRequest(
            parent=PARENT,
            columns=pb.TelemetryColumns(
                entities=["gauge-east-underpass"], properties=["level_cm"], values=[42.5]
            ),
        ),
        metadata=MD,
    )
    assert answer.accepted_count == 1
    events = await wait_for(lambda: twin_events(twin))
    assert [e.category for e in events] == ["safety.flooding"]

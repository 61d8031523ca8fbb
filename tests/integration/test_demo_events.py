"""The demo town's history: a few hundred reports over weeks, in every state, installed
through the events API and the same after a second start."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from devstack import demo_events
from devstack.stack import Stack, StackConfig
from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit.principal import Principal

XINGMING = "tenants/sh-jiading-anting-xingming"


@pytest.fixture(scope="module")
def events_stack(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("history")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    stack = Stack(config)
    stack.start("map")
    stack.start("events")
    try:
        stack.wait_ready(60, services=("map", "events"))
        yield stack
    finally:
        stack.stop_all()


async def _all_events(stack: Stack) -> list[pb.Event]:
    found: list[pb.Event] = []
    token = ""
    async with grpc.aio.insecure_channel(stack.config.address("events")) as channel:
        stub = pb_grpc.EventsServiceStub(channel)
        while True:
            page = await stub.ListEvents(
                pb.ListEventsRequest(
                    parent="tenants/sh-jiading-anting", page_size=200, page_token=token
                ),
                metadata=demo_events.IMPORTER.to_metadata(),
            )
            found += page.events
            token = page.next_page_token
            if not token:
                return found


def test_history_has_hundreds_of_reports_over_weeks_in_every_state(events_stack: Stack) -> None:
    counts = events_stack.install_demo_events()

    events = asyncio.run(_all_events(events_stack))
    assert len(events) == sum(counts.values()) == demo_events.COUNT
    states = Counter(pb.Event.State.Name(e.state) for e in events)
    every = set(pb.Event.State.keys()) - {"STATE_UNSPECIFIED"}
    assert set(states) == every, states
    assert states["STATE_CLOSED"] > states["STATE_REOPENED"]
    now = datetime.now(UTC)
    ages = sorted(now - e.create_time.ToDatetime(tzinfo=UTC) for e in events)
    assert ages[0] < timedelta(days=2) and ages[-1] > timedelta(days=20)
    assert len({e.village for e in events}) == 2
    assert len({e.grid_cell for e in events}) > 20

    again = events_stack.install_demo_events()

    assert again == counts
    assert len(asyncio.run(_all_events(events_stack))) == demo_events.COUNT


def test_a_report_left_part_way_is_moved_on_from_where_it_stopped(events_stack: Stack) -> None:
    async def scenario() -> pb.Event:
        event = await _create(events_stack, demo_events.IMPORTER, datetime.now(UTC))
        async with grpc.aio.insecure_channel(events_stack.config.address("events")) as channel:
            stub = pb_grpc.EventsServiceStub(channel)
            metadata = demo_events.IMPORTER.to_metadata()
            # An earlier start got as far as accepting it before it was stopped.
            accepted = await stub.TransitionEvent(
                pb.TransitionEventRequest(name=event.name, state=pb.Event.STATE_ACCEPTED),
                metadata=metadata,
            )
            await demo_events._finish(stub, metadata, accepted, pb.Event.STATE_CLOSED)
            return await stub.GetEvent(pb.GetEventRequest(name=event.name), metadata=metadata)

    done = asyncio.run(scenario())

    assert done.state == pb.Event.STATE_CLOSED
    moves = [pb.Event.State.Name(t.to_state) for t in done.timeline]
    assert moves == [
        "STATE_REPORTED",
        "STATE_ACCEPTED",
        "STATE_DISPATCHED",
        "STATE_IN_PROGRESS",
        "STATE_RESOLVED",
        "STATE_CLOSED",
    ]


async def _create(stack: Stack, principal: Principal, when: datetime) -> pb.Event:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    async with grpc.aio.insecure_channel(stack.config.address("events")) as channel:
        return await pb_grpc.EventsServiceStub(channel).CreateEvent(
            pb.CreateEventRequest(
                parent=XINGMING,
                request_id=f"dated-{principal.kind}-{when.timestamp()}-{id(when)}",
                event=pb.Event(
                    category="public.facility",
                    description="Bench broken",
                    location=geo_pb2.GeoPoint(longitude=121.1601, latitude=31.2902),
                    create_time=stamp,
                ),
            ),
            metadata=principal.to_metadata(),
        )


def test_only_a_platform_service_may_date_a_report_in_the_past(events_stack: Stack) -> None:
    last_week = datetime.now(UTC) - timedelta(days=7)
    user = Principal(
        "users/someone", "sh/jiading/anting/xingming", scopes=demo_events.IMPORTER.scopes
    )

    imported = asyncio.run(_create(events_stack, demo_events.IMPORTER, last_week))
    reported = asyncio.run(_create(events_stack, user, last_week))

    assert abs(imported.create_time.ToDatetime(tzinfo=UTC) - last_week) < timedelta(seconds=1)
    assert datetime.now(UTC) - reported.create_time.ToDatetime(tzinfo=UTC) < timedelta(minutes=1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(
            _create(events_stack, demo_events.IMPORTER, datetime.now(UTC) + timedelta(days=1))
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event.create_time" in str(refused.value.details())

"""Domain events: the outbox reaches the bus, and watchers resume from an offset."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.kit import tenancy
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.events.test_events_api import cell_point, md, report


async def read_all(bus, group="test", expected=1, seconds=5.0):
    await bus.ensure_group("events", group, start="0")
    seen = []
    deadline = asyncio.get_running_loop().time() + seconds
    while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
        seen += await bus.read("events", group, "c1", count=100, block_ms=200)
    return seen


async def test_every_change_is_published_once_in_order(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING, 2)
    created = await events.stub.CreateEvent(report(lon, lat, "o1"), metadata=md())
    await events.stub.TransitionEvent(
        pb.TransitionEventRequest(name=created.name, state=pb.Event.STATE_ACCEPTED),
        metadata=md(),
    )
    deliveries = await read_all(events.bus, expected=2)
    messages = [d.message for d in deliveries]
    assert [m.type for m in messages] == ["event.reported", "event.state_changed"]
    assert {m.tenant for m in messages} == {XINGMING}
    assert messages[0].offset < messages[1].offset
    first = pb.Event.FromString(messages[0].payload)
    assert first.name == created.name and first.state == pb.Event.STATE_REPORTED
    second = pb.Event.FromString(messages[1].payload)
    assert second.state == pb.Event.STATE_ACCEPTED
    assert len({m.key for m in messages}) == 2
    # The relay marks entries published after the bus has them: wait for the mark.
    remaining = await events.store.unpublished(10)
    for _ in range(100):
        if not remaining:
            break
        await asyncio.sleep(0.05)
        remaining = await events.store.unpublished(10)
    assert remaining == []


async def watch(events, parent, after, count, metadata, seconds=5.0):
    call = events.stub.WatchEvents(
        pb.WatchEventsRequest(parent=tenancy.tenant_name(parent), after_offset=after),
        metadata=metadata,
    )
    got = []
    try:
        async with asyncio.timeout(seconds):
            async for item in call:
                got.append(item)
                if len(got) == count:
                    break
    finally:
        call.cancel()
    return got


async def test_watch_replays_resumes_and_follows_live(events, grid_index):
    names = []
    for i in range(3):
        _, lon, lat = cell_point(grid_index, XINGMING, i + 5)
        names.append((await events.stub.CreateEvent(report(lon, lat, f"w{i}"), metadata=md())).name)
    replay = await watch(events, TOWN, 0, 3, md())
    assert [r.event.name for r in replay] == names
    offsets = [r.offset for r in replay]
    assert offsets == sorted(offsets)
    resumed = await watch(events, TOWN, offsets[0], 2, md())
    assert [r.event.name for r in resumed] == names[1:]

    async def later():
        await asyncio.sleep(0.3)
        _, lon, lat = cell_point(grid_index, XINGMING, 9)
        return await events.stub.CreateEvent(report(lon, lat, "live"), metadata=md())

    task = asyncio.create_task(later())
    live = await watch(events, TOWN, offsets[-1], 1, md())
    assert live[0].event.name == (await task).name
    assert live[0].type == "event.reported"


async def test_a_village_watches_only_its_own_subtree(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    _, lon2, lat2 = cell_point(grid_index, XIANGYANG)
    await events.stub.CreateEvent(report(lon, lat, "a"), metadata=md())
    theirs = await events.stub.CreateEvent(report(lon2, lat2, "b"), metadata=md())
    seen = await watch(events, XIANGYANG, 0, 1, md(XIANGYANG))
    assert [s.event.name for s in seen] == [theirs.name]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await watch(events, TOWN, 0, 1, md(XIANGYANG))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_update_writes_every_changed_field_and_publishes_the_fact_it_names(
    events, grid_index
):
    """A change that moves the grid worker is stored whole and published as what it is."""
    from dataclasses import replace

    _, lon, lat = cell_point(grid_index, XINGMING, 3)
    created = await events.stub.CreateEvent(report(lon, lat, "o-reassign"), metadata=md())
    event_id = created.name.rsplit("/", 1)[-1]

    def reassign(event):
        place = replace(event.place, grid_worker="gw-someone-else")
        return replace(event, place=place, severity=4), None, None

    await events.store.update(event_id, reassign, "event.reassigned")
    stored = await events.store.get(event_id)
    assert stored.place.grid_worker == "gw-someone-else" and stored.severity == 4
    assert stored.version == 2 and stored.tenant == XINGMING
    deliveries = await read_all(events.bus, expected=2)
    assert [d.message.type for d in deliveries] == ["event.reported", "event.reassigned"]

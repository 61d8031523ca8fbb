"""BatchGetEvents: GetEvent for many names in one call, failing whole as GetEvent would."""

from __future__ import annotations

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.kit import tenancy
from services.kit.status import failure_of
from tests.conftest import XIANGYANG, XINGMING
from tests.unit.events.test_events_api import cell_point, md, report


async def stored(events, grid_index, village: str, n: int, prefix: str) -> list[pb.Event]:
    found = []
    for i in range(n):
        item = report(*cell_point(grid_index, village, i)[1:], f"{prefix}{i}")
        found.append(await events.stub.CreateEvent(item, metadata=md()))
    return found


async def test_events_come_back_in_the_order_asked(events, grid_index):
    created = await stored(events, grid_index, XINGMING, 4, "o")
    names = [created[2].name, created[0].name, created[3].name, created[2].name]
    wildcard = "tenants/-/events/" + created[1].name.rsplit("/", 1)[-1]
    answer = await events.stub.BatchGetEvents(
        pb.BatchGetEventsRequest(names=[*names, wildcard]), metadata=md()
    )
    assert [e.name for e in answer.events] == [*names, created[1].name]
    alone = await events.stub.GetEvent(pb.GetEventRequest(name=created[0].name), metadata=md())
    assert answer.events[1] == alone


async def test_each_event_comes_with_its_own_timeline_and_comments(events, grid_index):
    """Read together, every event still carries exactly its own history."""
    created = await stored(events, grid_index, XINGMING, 3, "h")
    for event, notes in ((created[0], ["first", "second"]), (created[2], ["third"])):
        for text in notes:
            await events.stub.AddComment(
                pb.AddCommentRequest(name=event.name, text=text), metadata=md()
            )
    await events.stub.TransitionEvent(
        pb.TransitionEventRequest(name=created[2].name, state=pb.Event.STATE_WITHDRAWN),
        metadata=md(),
    )
    names = [created[2].name, created[1].name, created[0].name]
    answer = await events.stub.BatchGetEvents(pb.BatchGetEventsRequest(names=names), metadata=md())
    alone = [
        await events.stub.GetEvent(pb.GetEventRequest(name=name), metadata=md()) for name in names
    ]
    assert list(answer.events) == alone
    assert [[c.text for c in e.comments] for e in answer.events] == [
        ["third"],
        [],
        ["first", "second"],
    ]
    assert [len(e.timeline) for e in answer.events] == [2, 1, 1]


async def test_one_missing_or_hidden_event_fails_the_call_as_get_would(events, grid_index):
    mine = await stored(events, grid_index, XINGMING, 2, "m")
    neighbour = md(XIANGYANG)
    item = report(*cell_point(grid_index, XIANGYANG, 0)[1:], "t0")
    item.parent = tenancy.tenant_name(XIANGYANG)
    theirs = await events.stub.CreateEvent(item, metadata=neighbour)
    village = tenancy.tenant_name(XIANGYANG) + "/events/"
    for names in (
        [mine[0].name, mine[0].name.rsplit("/", 1)[0] + "/nosuch"],
        [theirs.name, mine[1].name],  # another village's event, asked by its name
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await events.stub.BatchGetEvents(
                pb.BatchGetEventsRequest(names=names), metadata=md(XINGMING)
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    ok = await events.stub.BatchGetEvents(
        pb.BatchGetEventsRequest(names=[theirs.name]), metadata=neighbour
    )
    assert ok.events[0].name.startswith(village)


@pytest.mark.parametrize(
    ("names", "field"),
    [
        ([], "names"),
        (["tenants/sh/events/x", "events/x"], "names[1]"),
        (["tenants/sh/events/x"] * 1001, "names"),
    ],
)
async def test_bad_names_are_refused_naming_the_field(events, names, field):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.BatchGetEvents(pb.BatchGetEventsRequest(names=names), metadata=md())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in failure_of(info.value).violations]

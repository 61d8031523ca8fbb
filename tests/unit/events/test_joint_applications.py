"""Joint handling ("one thing"): one application records one event per department's
part in the same transaction, and is resolved with every answer once the last part is
answered; on both stores, over real gRPC."""

from __future__ import annotations

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.kit.status import failure_of
from tests.conftest import TOWN, XINGMING
from tests.unit.events.test_categories import category, define
from tests.unit.events.test_events_api import cell_point, md, report
from tests.unit.events.test_lifecycle import move

S = pb.Event
PARTS = ("onething.birth.household", "onething.birth.insurance", "onething.birth.allowance")


async def define_birth(events) -> None:
    for code in PARTS:
        await define(events, TOWN, category(code, duplicate_radius_meters=0))
    await define(
        events,
        TOWN,
        category("onething.birth", duplicate_radius_meters=0, joint_categories=list(PARTS)),
    )


async def parts_of(events, application) -> list[pb.Event]:
    listed = await events.stub.ListEvents(
        pb.ListEventsRequest(
            parent="tenants/sh-jiading-anting",
            filter=f'parent = "{application.name.rsplit("/", 1)[-1]}"',
        ),
        metadata=md(),
    )
    return sorted(listed.events, key=lambda e: e.category)


async def answer(events, part, state=S.STATE_RESOLVED):
    path = {
        S.STATE_RESOLVED: (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS),
        S.STATE_REJECTED: (),
    }[state]
    for step in (*path, state):
        part = await move(events, part.name, step)
    return part


async def test_one_application_records_each_departments_part_and_one_answer(events, grid_index):
    await define_birth(events)
    cell_id, lon, lat = cell_point(grid_index, XINGMING)
    application = await events.stub.CreateEvent(
        report(lon, lat, "birth-1", category="onething.birth", text="Birth of Li Xiaoming"),
        metadata=md(),
    )
    assert application.state == S.STATE_REPORTED and not application.parent
    parts = await parts_of(events, application)
    assert [p.category for p in parts] == sorted(PARTS)
    assert {(p.parent, p.grid_cell, p.description) for p in parts} == {
        (application.name, cell_id, "Birth of Li Xiaoming")
    }
    got = await events.stub.GetEvent(pb.GetEventRequest(name=parts[0].name), metadata=md())
    assert got.timeline[0].actor == "users/test"  # the applicant's own
    # A retry is the same application, with no new parts.
    again = await events.stub.CreateEvent(
        report(lon, lat, "birth-1", category="onething.birth", text="Birth of Li Xiaoming"),
        metadata=md(),
    )
    assert again.name == application.name
    assert len(await parts_of(events, application)) == 3
    assert await events.count_rows() == 4

    first, second, third = parts
    await answer(events, first)
    await answer(events, second, S.STATE_REJECTED)
    pending = await events.stub.GetEvent(pb.GetEventRequest(name=application.name), metadata=md())
    assert pending.state == S.STATE_REPORTED  # one part still open
    await answer(events, third)
    answered = await events.stub.GetEvent(pb.GetEventRequest(name=application.name), metadata=md())
    assert answered.state == S.STATE_RESOLVED
    last = answered.timeline[-1]
    assert last.actor == "services/events/joint"
    assert last.note == (
        "onething.birth.allowance: resolved (to 5); "
        "onething.birth.household: rejected (to 7); "
        "onething.birth.insurance: resolved (to 5)"
    )
    # The applicant rates the one answer, which closes the application.
    closed = await events.stub.EvaluateEvent(
        pb.EvaluateEventRequest(name=application.name, score=5, text="one visit"),
        metadata=md(),
    )
    assert closed.state == S.STATE_CLOSED


async def test_a_part_that_is_not_a_category_refuses_the_application_and_stores_nothing(
    events, grid_index
):
    await define(
        events,
        TOWN,
        category("onething.move", duplicate_radius_meters=0, joint_categories=["onething.move.x"]),
    )
    _, lon, lat = cell_point(grid_index, XINGMING)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(
            report(lon, lat, "move-1", category="onething.move"), metadata=md()
        )
    failure = failure_of(info.value)
    assert [v.field for v in failure.violations] == ["event.category"]
    assert "onething.move.x" in failure.violations[0].description
    assert await events.count_rows() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"joint_categories": ["a.b", "a.b"]}, "category.joint_categories"),
        ({"code": "a.b", "joint_categories": ["a.b"]}, "category.joint_categories"),
        ({"duplicate_radius_meters": 50, "joint_categories": ["a.c"]}, "duplicate_radius_meters"),
    ],
)
async def test_a_bad_joint_definition_names_the_field(events, overrides, field):
    values = {"duplicate_radius_meters": 0, **overrides}
    code = values.pop("code", "a.app")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await define(events, TOWN, category(code, **values))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure_of(info.value).violations] == [
        field if field.startswith("category.") else f"category.{field}"
    ]

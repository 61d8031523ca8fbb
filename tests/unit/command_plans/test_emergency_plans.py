"""Emergency plans over real gRPC on both stores: levels, items, the log and the facts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from grassroots.command.v1 import plans_service_pb2 as pb
from services.command.domain.plan_facts import (
    EMERGENCY_LEVEL_CHANGED,
    STREAM,
    TWIN_LEVEL_CHANGED,
    TWIN_STREAM,
)
from services.kit.bus import BusMessage
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.command_plans.conftest import CARER, who

PARENT = "tenants/sh-jiading-anting-xingming"
RULE = "tenants/sh-jiading-anting-xingming/rules/fountain-crowd"
Item = pb.EmergencyItem


def crowd_plan(levels=(3, 2, 1), signal=RULE) -> pb.EmergencyPlan:
    specs = {
        3: pb.EmergencyLevel(
            level=3,
            summary="more than 1,000 people",
            dispatches=[pb.Dispatch(role="grid_worker", count=2)],
            notices=[pb.Notice(audience="town_office", text="Crowd building at the fountain")],
        ),
        2: pb.EmergencyLevel(
            level=2,
            summary="more than 5,000 people",
            dispatches=[pb.Dispatch(role="volunteer", team="crowd_control", count=6)],
            checklist=["Open the east exit", "Fence the lakeside path"],
            notices=[pb.Notice(audience="residents", text="Avoid the lakeside fountain")],
        ),
        1: pb.EmergencyLevel(
            level=1,
            summary="more than 10,000 people",
            dispatches=[pb.Dispatch(role="police", count=10)],
            checklist=["Close the square"],
        ),
    }
    return pb.EmergencyPlan(
        display_name="Crowd surge at the lakeside fountain",
        signal=signal,
        levels=[specs[level] for level in levels],
    )


async def create(command, plan=None, request_id="", tenant=XINGMING):
    return await command.stub.CreateEmergencyPlan(
        pb.CreateEmergencyPlanRequest(
            parent="tenants/" + tenant.replace("/", "-"),
            emergency_plan=plan or crowd_plan(),
            request_id=request_id,
        ),
        metadata=who(tenant),
    )


async def change(command, name, level, reason="headcount seen on camera", metadata=None, etag=""):
    return await command.stub.ChangeEmergencyLevel(
        pb.ChangeEmergencyLevelRequest(name=name, level=level, reason=reason, etag=etag),
        metadata=metadata or who(XINGMING),
    )


async def log_of(command, resource="", tenant=XINGMING):
    response = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(
            parent="tenants/" + tenant.replace("/", "-"), resource=resource
        ),
        metadata=who(tenant),
    )
    return list(response.command_log_entries)


def opened(plan):
    return sorted(i.description for i in plan.items if i.state == Item.STATE_OPEN)


async def test_a_plan_is_stored_with_its_levels_and_stands_down(command):
    plan = await create(command)
    assert plan.name.startswith(PARENT + "/emergencyPlans/ep_")
    assert [level.level for level in plan.levels] == [3, 2, 1]
    assert plan.current_level == 0 and not plan.items
    got = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(TOWN)
    )
    assert got == plan
    listed = await command.stub.ListEmergencyPlans(
        pb.ListEmergencyPlansRequest(parent="tenants/sh-jiading-anting"), metadata=who(TOWN)
    )
    assert [p.name for p in listed.emergency_plans] == [plan.name]
    entries = await log_of(command, plan.name)
    assert [(e.action, e.actor) for e in entries] == [("emergency_plan.created", "users/commander")]


async def test_raising_opens_every_crossed_level_and_lowering_closes_what_it_opened(command):
    plan = await create(command)
    at_two = await change(command, plan.name, 2, "5,412 people counted at 14:05")
    assert at_two.current_level == 2
    assert at_two.level_reason == "5,412 people counted at 14:05"
    assert at_two.level_actor == "users/commander"
    assert opened(at_two) == sorted(
        [
            "dispatch 2 x grid_worker",
            "notify town_office: Crowd building at the fountain",
            "dispatch 6 x volunteer (crowd_control)",
            "Open the east exit",
            "Fence the lakeside path",
            "notify residents: Avoid the lakeside fountain",
        ]
    )
    assert {i.level for i in at_two.items} == {3, 2}

    at_three = await change(command, plan.name, 3, "crowd thinning: 2,100")
    closed = [i for i in at_three.items if i.state == Item.STATE_CLOSED]
    assert {i.level for i in closed} == {2} and len(closed) == 4
    assert all(i.HasField("close_time") for i in closed)
    assert opened(at_three) == sorted(
        ["dispatch 2 x grid_worker", "notify town_office: Crowd building at the fountain"]
    )

    down = await change(command, plan.name, 0, "square empty")
    assert down.current_level == 0
    assert all(i.state == Item.STATE_CLOSED for i in down.items)

    entries = await log_of(command, plan.name)
    assert [e.action for e in entries] == [
        "emergency.level_lowered",
        "emergency.level_lowered",
        "emergency.level_raised",
        "emergency_plan.created",
    ]
    assert entries[2].reason == "5,412 people counted at 14:05"
    assert "level 0 -> 2" in entries[2].detail and "opened 6" in entries[2].detail
    assert "level 2 -> 3" in entries[1].detail and "closed 4" in entries[1].detail


async def test_each_change_publishes_a_level_changed_fact_with_the_opened_notices(command):
    plan = await create(command)
    await change(command, plan.name, 2)
    await change(command, plan.name, 0, "all clear")
    facts = await _read_facts(command, 2)
    assert [f.type for f in facts] == [EMERGENCY_LEVEL_CHANGED] * 2
    raised = pb.EmergencyLevelChange.FromString(facts[0].payload)
    assert (raised.plan, raised.from_level, raised.to_level) == (plan.name, 0, 2)
    assert [n.audience for n in raised.notices] == ["town_office", "residents"]
    cleared = pb.EmergencyLevelChange.FromString(facts[1].payload)
    assert (cleared.to_level, cleared.reason, list(cleared.notices)) == (0, "all clear", [])
    assert facts[0].tenant == XINGMING and facts[0].key != facts[1].key


async def _read_facts(command, count, within=10.0, kind=EMERGENCY_LEVEL_CHANGED):
    """The first `count` facts of `kind` on the command stream (the tasks a level opens
    publish `task.*` facts there too)."""
    await command.bus.ensure_group(STREAM, "test-empower", "0")
    seen = []
    deadline = asyncio.get_running_loop().time() + within
    while len(seen) < count and asyncio.get_running_loop().time() < deadline:
        for delivery in await command.bus.read(STREAM, "test-empower", "t", 10, 200):
            if delivery.message.type == kind:
                seen.append(delivery.message)
    return seen


async def test_the_same_level_again_changes_nothing(command):
    plan = await create(command)
    first = await change(command, plan.name, 2)
    again = await change(command, plan.name, 2, "still crowded")
    assert again.etag == first.etag and again.items == first.items
    assert len(await log_of(command, plan.name)) == 2


@pytest.mark.parametrize(
    ("levels", "field", "words"),
    [
        ((3, 1), "emergency_plan.levels", "level 2 is missing"),
        ((3, 2, 2, 1), "emergency_plan.levels[2].level", "appears twice"),
        # The contract bounds a level to 1..3: level 4 is refused before the domain sees it.
        ((3, 2, 1, 4), "emergency_plan.levels[3].level", "4 is not in [1, 3]"),
    ],
)
async def test_a_plan_without_levels_three_two_and_one_is_refused_naming_the_field(
    command, levels, field, words
):
    plan = crowd_plan()
    del plan.levels[:]
    for level in levels:
        plan.levels.append(pb.EmergencyLevel(level=level, checklist=["x"]))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, plan)
    failure = failure_of(info.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert any(v.field == field and words in v.description for v in failure.violations)
    listed = await command.stub.ListEmergencyPlans(
        pb.ListEmergencyPlansRequest(parent=PARENT), metadata=who(XINGMING)
    )
    assert not listed.emergency_plans
    assert not await log_of(command)


async def test_bad_dispatches_and_notices_are_named_all_at_once(command):
    plan = crowd_plan()
    plan.levels[0].dispatches.append(pb.Dispatch(role="", count=0))
    plan.levels[1].notices.append(pb.Notice(audience="residents", text=""))
    plan.display_name = ""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, plan)
    fields = {v.field for v in failure_of(info.value).violations}
    assert fields == {
        "emergency_plan.display_name",
        "emergency_plan.levels[0].dispatches[1].role",
        "emergency_plan.levels[0].dispatches[1].count",
        "emergency_plan.levels[1].notices[1].text",
    }


async def test_a_dispatch_names_a_role_and_team_a_handler_could_hold(command):
    # Handlers' teams are names like crowd_control: a plan sending to "crowd-control"
    # would open tasks nobody is ever offered.
    plan = crowd_plan()
    plan.levels[0].dispatches.append(pb.Dispatch(role="Volunteer", team="crowd-control", count=2))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, plan)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    says = {v.field: v.description for v in failure_of(info.value).violations}
    assert set(says) == {
        "emergency_plan.levels[0].dispatches[1].role",
        "emergency_plan.levels[0].dispatches[1].team",
    }
    assert "[a-z][a-z0-9_]{0,62}" in says["emergency_plan.levels[0].dispatches[1].team"]


@pytest.mark.parametrize(
    ("level", "reason", "field"),
    [(None, "why", "level"), (4, "why", "level"), (-1, "why", "level"), (2, "  ", "reason")],
)
async def test_a_bad_level_change_names_the_field_and_changes_nothing(
    command, level, reason, field
):
    plan = await create(command)
    request = pb.ChangeEmergencyLevelRequest(name=plan.name, reason=reason)
    if level is not None:
        request.level = level
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await command.stub.ChangeEmergencyLevel(request, metadata=who(XINGMING))
    failure = failure_of(info.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure.violations] == [field]
    after = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert after == plan


async def test_a_stale_etag_is_refused(command):
    plan = await create(command)
    await change(command, plan.name, 3)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await change(command, plan.name, 2, etag=plan.etag)
    assert info.value.code() == grpc.StatusCode.ABORTED


async def test_a_carer_may_not_change_a_level(command):
    plan = await create(command)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await change(command, plan.name, 1, metadata=who(XINGMING, "users/carer", CARER))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_another_village_gets_not_found_for_everything(command):
    plan = await create(command)
    other = who(XIANGYANG, "users/xiangyang-commander")
    own_id = plan.name.replace("xingming", "xiangyang")
    for name in (plan.name, own_id):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await command.stub.GetEmergencyPlan(
                pb.GetEmergencyPlanRequest(name=name), metadata=other
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await change(command, name, 1, metadata=other)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    for method, request in (
        (command.stub.ListEmergencyPlans, pb.ListEmergencyPlansRequest(parent=PARENT)),
        (command.stub.ListCommandLogEntries, pb.ListCommandLogEntriesRequest(parent=PARENT)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await method(request, metadata=other)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    unchanged = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert unchanged.current_level == 0


async def test_a_retried_create_returns_the_first_plan(command):
    first = await create(command, request_id="plan-1")
    again = await create(command, request_id="plan-1")
    assert again.name == first.name
    changed = crowd_plan()
    changed.display_name = "Something else"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, changed, request_id="plan-1")
    assert [v.field for v in failure_of(info.value).violations] == ["request_id"]


def _signal(twin_level, when, rule=RULE, tenant=XINGMING, value=0.0) -> BusMessage:
    """A `twin.level_changed` fact as the twin service publishes it (JSON)."""
    body = {
        "rule": rule,
        "entity": f"tenants/{tenant.replace('/', '-')}/entities/fountain-counter",
        "tenant": tenant,
        "level": twin_level,
        "previous_level": 0,
        "value": value,
        "observe_time": when.isoformat(timespec="seconds"),
    }
    return BusMessage(
        type=TWIN_LEVEL_CHANGED,
        key=f"twin-level:{when.timestamp()}",
        tenant=tenant,
        offset=0,
        payload=json.dumps(body).encode(),
    )


async def _wait_for_level(command, name, level, within=10.0):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        plan = await command.stub.GetEmergencyPlan(
            pb.GetEmergencyPlanRequest(name=name), metadata=who(XINGMING)
        )
        if plan.current_level == level or asyncio.get_running_loop().time() > deadline:
            return plan
        await asyncio.sleep(0.05)


async def test_a_twin_signal_moves_the_plan_and_a_late_older_one_is_ignored(command):
    plan = await create(command)
    other = await create(command, crowd_plan(signal=RULE.replace("fountain", "bridge")))
    now = datetime.now(UTC).replace(microsecond=0)
    # Twin counts up (level 3 of its rule is the worst); the plan counts down to 1.
    await command.bus.publish(TWIN_STREAM, _signal(3, now, value=10250))
    moved = await _wait_for_level(command, plan.name, 1)
    assert moved.current_level == 1
    assert moved.level_actor == f"signal:{RULE}"
    assert "twin level 3 (value 10250)" in moved.level_reason
    # A duplicate of an older reading arrives late, then a newer one lowers the level.
    await command.bus.publish(TWIN_STREAM, _signal(1, now - timedelta(minutes=1)))
    await command.bus.publish(TWIN_STREAM, _signal(2, now + timedelta(minutes=1)))
    lowered = await _wait_for_level(command, plan.name, 2)
    assert lowered.current_level == 2
    entries = await log_of(command, plan.name)
    assert [(e.action, e.actor) for e in entries[:2]] == [
        ("emergency.level_lowered", f"signal:{RULE}"),
        ("emergency.level_raised", f"signal:{RULE}"),
    ]
    untouched = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=other.name), metadata=who(XINGMING)
    )
    assert untouched.current_level == 0


async def test_a_signal_from_outside_the_plans_subtree_is_ignored(command):
    plan = await create(command)
    now = datetime.now(UTC).replace(microsecond=0)
    await command.bus.publish(TWIN_STREAM, _signal(3, now, tenant=XIANGYANG))
    await command.bus.publish(TWIN_STREAM, _signal(1, now + timedelta(seconds=1)))
    # The second signal is handled after the first, so once it shows the first was seen.
    moved = await _wait_for_level(command, plan.name, 3)
    assert moved.current_level == 3


def test_twin_levels_count_up_and_plan_levels_count_down():
    from services.command.domain.plan_facts import plan_level

    assert [plan_level(n) for n in (0, 1, 2, 3, 4, 9)] == [0, 3, 2, 1, 1, 1]

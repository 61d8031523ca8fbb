"""Service plans and their orders over real gRPC on both stores: RRULEs, the scheduler's
occurrences, nearest-carer assignment, check-in and check-out by position."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from grassroots.command.v1 import plans_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.command.domain import service_orders
from services.command.domain.service_orders import Place, ServicePlanDefinition, Target
from services.command.store.plans_rows import us
from services.kit import crs
from services.kit.principal import Principal
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.command_plans.conftest import CARER, COMMANDER, who

PARENT = "tenants/sh-jiading-anting-xingming"
# Three homes in Xingming, a few hundred metres apart (WGS84).
HOMES = [
    ("r-01", "Flat 3-201", 121.1610, 31.2890),
    ("r-02", "Flat 5-102", 121.1650, 31.2905),
    ("r-03", "House 17", 121.1700, 31.2870),
]
# Monday 1 December 2031, 09:00 in Shanghai: far enough ahead that nothing is due now.
START = datetime(2031, 12, 1, 1, 0, tzinfo=UTC)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def weekly_plan(recurrence="FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", start=START, carers=None):
    return pb.ServicePlan(
        display_name="Weekly visit to residents living alone",
        recurrence=recurrence,
        start_time=stamp(start),
        visit_minutes=90,
        handler_role="carer",
        carers=carers if carers is not None else ["users/carer-wang", "users/carer-li"],
        max_check_in_distance_meters=100,
        targets=[
            pb.ServiceTarget(
                id=i, display_name=n, location=geo_pb2.GeoPoint(longitude=x, latitude=y)
            )
            for i, n, x, y in HOMES
        ],
    )


async def create(command, plan=None, request_id=""):
    return await command.stub.CreateServicePlan(
        pb.CreateServicePlanRequest(
            parent=PARENT, service_plan=plan or weekly_plan(), request_id=request_id
        ),
        metadata=who(XINGMING),
    )


async def orders(command, **filters):
    response = await command.stub.ListServiceOrders(
        pb.ListServiceOrdersRequest(parent=PARENT, **filters), metadata=who(XINGMING)
    )
    return list(response.service_orders)


async def catch_up(command) -> int:
    """Step the scheduler until nothing is due, as its loop does; returns occurrences made."""
    made = 0
    while step := await command.desk.generate_due(timedelta(0)):
        made += step
    return made


def at(command, moment):
    command.desk.clock = lambda: moment


async def test_a_plan_names_its_first_occurrence_in_shanghai_time(command):
    plan = await create(command)
    assert plan.name.startswith(PARENT + "/servicePlans/sp_")
    assert plan.next_occurrence_time.ToDatetime(tzinfo=UTC) == START
    # It waits as one of command's durable timers, due when its orders should be made.
    plan_id = plan.name.rsplit("/", 1)[-1]
    timer = await command.timers.get_timer(f"plans.occurrence/{plan_id}/{us(START)}")
    assert timer is not None and timer.due == START and timer.tenant == XINGMING
    got = await command.stub.GetServicePlan(
        pb.GetServicePlanRequest(name=plan.name), metadata=who(TOWN)
    )
    assert got == plan


@pytest.mark.parametrize(
    ("recurrence", "words"),
    [
        ("FREQ=WEEKLY;UNTIL=20300101T000000Z", "never fires"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never fires"),
        ("FREQ=FORTNIGHTLY", "is not an iCalendar RRULE"),
        ("FREQ=HOURLY", "FREQ must be DAILY"),
        ("DTSTART:20311201T010000Z\nRRULE:FREQ=DAILY", "one line without control characters"),
        ("FREQ=DAILY\n", "one line without control characters"),
        ("", "is required"),
        # No day satisfies these: found from the pattern, not by searching to the year 9999.
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "never fires"),
        ("FREQ=DAILY;COUNT=3;BYMONTH=2;BYMONTHDAY=30", "never fires"),
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTH=3", "never fires"),  # the start is in December
        # DAILY or coarser means at most one visit a day.
        ("FREQ=DAILY;BYHOUR=0,6,12,18;BYMINUTE=0", "at most one visit a day"),
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=0,15,30,45", "at most one visit a day"),
        ("FREQ=WEEKLY;INTERVAL=100000", "INTERVAL must be at most"),
        # Parts visits do not need, which made each searched period slow, are refused.
        (
            "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;BYDAY=MO,TU;BYSETPOS="
            + ",".join(str(i) for j in range(1, 60) for i in (j, -j)),
            "BYSETPOS is not used for visits",
        ),
        ("FREQ=YEARLY;BYEASTER=0", "BYEASTER is not used for visits"),
        ("FREQ=DAILY;;BYHOUR=9", "part 2 ('') is not NAME=VALUE"),
        ("FREQ=YEARLY;INTERVAL=1000;BYMONTH=1;BYMONTHDAY=1", "more than ten years away"),
    ],
)
async def test_an_rrule_that_never_fires_or_does_not_parse_is_refused_on_recurrence(
    command, recurrence, words
):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, weekly_plan(recurrence))
    failure = failure_of(info.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure.violations] == ["service_plan.recurrence"]
    assert words in failure.violations[0].description
    listed = await command.stub.ListServicePlans(
        pb.ListServicePlansRequest(parent=PARENT), metadata=who(XINGMING)
    )
    assert not listed.service_plans


async def test_a_rule_no_day_satisfies_is_refused_at_once_while_other_calls_go_on(command):
    """dateutil alone searched such a rule to the year 9999: 8.7 s of the service's loop,
    in which every other call waited."""
    refused = asyncio.ensure_future(
        create(command, weekly_plan("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"))
    )
    started = asyncio.get_running_loop().time()
    listed = await command.stub.ListServicePlans(
        pb.ListServicePlansRequest(parent=PARENT), metadata=who(XINGMING)
    )
    assert not listed.service_plans
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await refused
    assert "never fires" in failure_of(info.value).violations[0].description
    assert asyncio.get_running_loop().time() - started < 5.0


@pytest.mark.parametrize(
    "start",
    [
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, tzinfo=UTC),
        datetime(9999, 1, 1, tzinfo=UTC),
    ],
)
async def test_a_start_before_2000_or_more_than_ten_years_ahead_is_refused(command, start):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, weekly_plan(start=start))
    failure = failure_of(info.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure.violations] == ["service_plan.start_time"]


async def test_other_bad_fields_are_named_together(command):
    plan = weekly_plan()
    plan.max_check_in_distance_meters = 0
    plan.targets.append(pb.ServiceTarget(id="r-01", location=plan.targets[0].location))
    plan.visit_minutes = 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, plan)
    assert {v.field for v in failure_of(info.value).violations} == {
        "service_plan.max_check_in_distance_meters",
        "service_plan.targets[3].id",
        "service_plan.visit_minutes",
    }
    # A target id outside the contract's pattern is refused before the plan is read.
    plan = weekly_plan()
    plan.targets.append(pb.ServiceTarget(id="bad id!", location=plan.targets[0].location))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, plan)
    assert [v.field for v in failure_of(info.value).violations] == ["service_plan.targets[3].id"]


async def test_each_occurrence_makes_one_order_per_target_once(command):
    plan = await create(command)
    at(command, START - timedelta(hours=1))
    assert await command.desk.generate_due(timedelta(0)) == 0
    at(command, START)
    assert await command.desk.generate_due(timedelta(0)) == 1
    assert await command.desk.generate_due(timedelta(0)) == 0
    made = await orders(command)
    assert sorted(o.target for o in made) == ["r-01", "r-02", "r-03"]
    assert {o.scheduled_time.ToDatetime(tzinfo=UTC) for o in made} == {START}
    assert {o.due_time.ToDatetime(tzinfo=UTC) for o in made} == {START + timedelta(minutes=90)}
    assert all(o.state == pb.ServiceOrder.STATE_ASSIGNED for o in made)
    assert {o.handler for o in made} == {"users/carer-wang", "users/carer-li"}
    moved = await command.stub.GetServicePlan(
        pb.GetServicePlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert moved.next_occurrence_time.ToDatetime(tzinfo=UTC) == START + timedelta(days=7)
    # A service that was down for two weeks makes each missed occurrence once on return.
    at(command, START + timedelta(days=14, minutes=5))
    assert await catch_up(command) == 2
    assert len(await orders(command)) == 9
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=PARENT, resource=made[0].name),
        metadata=who(XINGMING),
    )
    assert [e.action for e in log.command_log_entries] == ["service_order.assigned"]
    assert log.command_log_entries[0].actor == "command/scheduler"


async def test_the_nearest_carer_gets_the_order_once_their_position_is_known(command):
    await create(command, weekly_plan(carers=["users/carer-wang", "users/carer-li"]))
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    first = {o.target: o for o in await orders(command)}
    # r-01 and r-02 went to different carers; each visits theirs, so positions are known.
    assert first["r-01"].handler != first["r-02"].handler
    for target in ("r-01", "r-02"):
        order = first[target]
        _, _, x, y = next(h for h in HOMES if h[0] == target)
        await visit(command, order, x, y, order.handler)
        await visit(command, order, x, y, order.handler, note="all well")
    at(command, START + timedelta(days=7))
    await command.desk.generate_due(timedelta(0))
    second = {
        o.target: o.handler
        for o in await orders(command)
        if o.scheduled_time.ToDatetime(tzinfo=UTC) > START
    }
    assert second["r-01"] == first["r-01"].handler
    assert second["r-02"] == first["r-02"].handler
    # House 17 is about 560 m from Flat 5-102 and 860 m from Flat 3-201.
    assert second["r-03"] == first["r-02"].handler
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=PARENT), metadata=who(XINGMING)
    )
    reasons = [e.reason for e in log.command_log_entries if e.action == "service_order.assigned"]
    assert any("nearest with room" in r for r in reasons)


async def visit(command, order, lon, lat, subject, note=None, crs_name="EPSG:4326"):
    location = geo_pb2.GeoPoint(longitude=lon, latitude=lat, crs=crs_name)
    metadata = who(XINGMING, subject, CARER)
    if note is None:
        return await command.stub.CheckInServiceOrder(
            pb.CheckInServiceOrderRequest(name=order.name, location=location), metadata=metadata
        )
    return await command.stub.CheckOutServiceOrder(
        pb.CheckOutServiceOrderRequest(name=order.name, location=location, note=note),
        metadata=metadata,
    )


async def test_check_in_and_out_at_the_target_from_a_phones_gcj02_position(command):
    await create(command)
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    order = next(o for o in await orders(command) if o.target == "r-02")
    gx, gy = crs.from_storage(np.array([121.1650]), np.array([31.2905]), "GCJ-02")
    checked_in = await visit(
        command, order, float(gx[0]), float(gy[0]), order.handler, crs_name="GCJ-02"
    )
    assert checked_in.state == pb.ServiceOrder.STATE_CHECKED_IN
    assert abs(checked_in.check_in_location.longitude - 121.1650) < 1e-5
    done = await visit(command, order, 121.1651, 31.2905, order.handler, note="Blood pressure fine")
    assert done.state == pb.ServiceOrder.STATE_DONE and done.note == "Blood pressure fine"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await visit(command, order, 121.1650, 31.2905, order.handler, note="again")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=PARENT, resource=order.name),
        metadata=who(XINGMING),
    )
    assert [e.action for e in log.command_log_entries] == [
        "service_order.checked_out",
        "service_order.checked_in",
        "service_order.assigned",
    ]


async def test_a_check_in_too_far_away_is_refused_naming_location_and_logged(command):
    await create(command)
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    order = next(o for o in await orders(command) if o.target == "r-01")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        # About 500 m east of Flat 3-201; the plan allows 100 m.
        await visit(command, order, 121.1663, 31.2890, order.handler)
    failure = failure_of(info.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure.violations] == ["location"]
    assert "the plan allows 100 m" in failure.violations[0].description
    unchanged = await command.stub.GetServiceOrder(
        pb.GetServiceOrderRequest(name=order.name), metadata=who(XINGMING)
    )
    assert unchanged.state == pb.ServiceOrder.STATE_ASSIGNED and unchanged.etag == order.etag
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=PARENT, resource=order.name),
        metadata=who(XINGMING),
    )
    assert log.command_log_entries[0].action == "service_order.check_in_refused"


async def test_only_the_assigned_carer_checks_in_and_other_villages_see_nothing(command):
    plan = await create(command)
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    order = (await orders(command))[0]
    someone_else = next(c for c in ("users/carer-wang", "users/carer-li") if c != order.handler)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await visit(
            command,
            order,
            order.target_location.longitude,
            order.target_location.latitude,
            someone_else,
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    other = who(XIANGYANG, "users/xiangyang-commander")
    for call, request in (
        (command.stub.GetServicePlan, pb.GetServicePlanRequest(name=plan.name)),
        (command.stub.GetServiceOrder, pb.GetServiceOrderRequest(name=order.name)),
        (command.stub.ListServiceOrders, pb.ListServiceOrdersRequest(parent=PARENT)),
        (command.stub.ListServicePlans, pb.ListServicePlansRequest(parent=PARENT)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request, metadata=other)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # Even the carer it is assigned to, signed in for another village, cannot check in.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await command.stub.CheckInServiceOrder(
            pb.CheckInServiceOrderRequest(name=order.name, location=order.target_location),
            metadata=who(XIANGYANG, order.handler, CARER),
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_orders_page_soonest_first_and_filter_by_carer(command):
    await create(command)
    at(command, START + timedelta(days=7))
    await catch_up(command)
    everything = await orders(command)
    assert len(everything) == 6
    pages, token = [], ""
    while True:
        response = await command.stub.ListServiceOrders(
            pb.ListServiceOrdersRequest(parent=PARENT, page_size=4, page_token=token),
            metadata=who(XINGMING),
        )
        pages.extend(response.service_orders)
        token = response.next_page_token
        if not token:
            break
    assert [o.name for o in pages] == [o.name for o in everything]
    times = [o.scheduled_time.ToDatetime(tzinfo=UTC) for o in pages]
    assert times == sorted(times)
    mine = await orders(command, handler="users/carer-li")
    assert mine and all(o.handler == "users/carer-li" for o in mine)


def test_assignment_spreads_a_round_over_carers_nearest_first():
    targets = [Target(f"t{i}", "", Place(121.16 + i * 0.001, 31.29)) for i in range(4)]
    positions = {"a": Place(121.16, 31.29), "b": Place(121.163, 31.29)}
    chosen = service_orders.assign(targets, ["a", "b"], positions, {})
    assert chosen == {"t0": "a", "t1": "a", "t2": "b", "t3": "b"}
    # Without positions, fewer open orders first.
    chosen = service_orders.assign(targets[:1], ["a", "b"], {}, {"a": 5, "b": 1})
    assert chosen == {"t0": "b"}
    assert service_orders.assign(targets, [], positions, {}) == {}


async def test_the_schedulers_own_loop_makes_due_orders_after_a_restart(tmp_path):
    """An occurrence that came due while the service was down is made once at start, by
    the timer its plan scheduled when it was created."""
    from services.command.config import CommandSettings
    from services.command.wiring import assemble

    settings = CommandSettings(
        grpc_port=0,
        events_address="127.0.0.1:9",
        database=tmp_path / "command.sqlite3",
        bus_url=str(tmp_path / "bus.sqlite3"),
        service_order_lead_hours=0,
        timer_poll_seconds=0.1,
    )
    first = await assemble(settings)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    plan = await first.plans.desk.create_service_plan(
        Principal("users/secretary", XINGMING, scopes=COMMANDER),
        XINGMING,
        ServicePlanDefinition(
            "Daily call",
            "FREQ=DAILY",
            start,
            30,
            "carer",
            ("users/carer-wang",),
            100.0,
            (Target("r-01", "Flat 3-201", Place(121.161, 31.289)),),
        ),
        "",
    )
    await first.component.close()
    await asyncio.sleep(1.5)
    second = await assemble(settings)
    try:
        for _ in range(100):
            made = await second.plans.store.list_orders(XINGMING, {}, 10, None)
            if made:
                break
            await asyncio.sleep(0.05)
        assert [(o.plan_id, o.target.id) for o in made] == [(plan.id, "r-01")]
        assert made[0].handler == "users/carer-wang"
        # The next day's occurrence waits as a timer of its own.
        following = start + timedelta(days=1)
        timer = await second.store.get_timer(f"plans.occurrence/{plan.id}/{us(following)}")
        assert timer is not None and timer.due == following and timer.fired is None
    finally:
        await second.component.close()


async def profile(command, handler_id, roles, lon, lat, on_duty=True):
    """A handler profile in Xingming, as the village's secretary makes one."""
    from grassroots.command.v1 import command_service_pb2 as command_pb
    from grassroots.command.v1 import command_service_pb2_grpc as command_grpc

    stub = command_grpc.CommandServiceStub(command.channel)
    await stub.CreateHandlerProfile(
        command_pb.CreateHandlerProfileRequest(
            parent=PARENT,
            handler_id=handler_id,
            handler_profile=command_pb.HandlerProfile(
                user=f"users/{handler_id}",
                roles=roles,
                on_duty=on_duty,
                position=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
            ),
        ),
        metadata=who(XINGMING),
    )


async def test_a_plan_naming_no_carers_sends_the_villages_nearest_carer_on_duty(command):
    # Near House 17, near Flat 3-201, and one right at Flat 5-102 who is off duty.
    await profile(command, "carer-east", ["carer"], 121.1698, 31.2871)
    await profile(command, "carer-west", ["carer"], 121.1611, 31.2891)
    await profile(command, "carer-off", ["carer"], 121.1650, 31.2905, on_duty=False)
    await profile(command, "gw-01", ["grid_worker"], 121.1650, 31.2905)
    plan = await create(command, weekly_plan(carers=[]))
    assert list(plan.carers) == []
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    handlers = {o.target: o.handler for o in await orders(command)}
    assert handlers["r-01"] == "users/carer-west"
    assert handlers["r-03"] == "users/carer-east"
    assert handlers["r-02"] in {"users/carer-west", "users/carer-east"}


async def test_a_plan_with_no_carer_on_duty_leaves_its_orders_unassigned_saying_why(command):
    await profile(command, "carer-off", ["carer"], 121.1650, 31.2905, on_duty=False)
    await create(command, weekly_plan(carers=[]))
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    made = await orders(command)
    assert {o.state for o in made} == {pb.ServiceOrder.STATE_UNASSIGNED}
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=PARENT, resource=made[0].name),
        metadata=who(XINGMING),
    )
    assert log.command_log_entries[0].reason == "no carer with the role is on duty"


async def test_a_missed_order_escalates_to_the_nearest_handler_of_the_escalation_role(command):
    await profile(command, "doctor-east", ["village_doctor"], 121.1699, 31.2870)
    await profile(command, "doctor-west", ["village_doctor"], 121.1609, 31.2890)
    message = weekly_plan()
    message.escalation_role = "village_doctor"
    plan = await create(command, message)
    assert plan.escalation_role == "village_doctor"
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    made = {o.target: o for o in await orders(command)}
    # The check waits as a durable timer at the occurrence's due time.
    plan_id = plan.name.rsplit("/", 1)[-1]
    timer = await command.timers.get_timer(f"plans.missed/{plan_id}/{us(START)}")
    assert timer is not None and timer.due == START + timedelta(minutes=90)
    # r-02's carer checks in in time; r-01 and r-03 are missed.
    await visit(command, made["r-02"], 121.1650, 31.2905, made["r-02"].handler)
    at(command, START + timedelta(minutes=89))
    assert await command.desk.escalate_missed(plan_id, START) == 0
    at(command, START + timedelta(minutes=90))
    assert await command.desk.escalate_missed(plan_id, START) == 2
    assert await command.desk.escalate_missed(plan_id, START) == 0
    after = {o.target: o for o in await orders(command)}
    assert after["r-01"].handler == "users/doctor-west"
    assert after["r-03"].handler == "users/doctor-east"
    assert after["r-01"].escalated_from == made["r-01"].handler
    assert after["r-01"].escalate_time.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=90)
    assert after["r-01"].state == pb.ServiceOrder.STATE_ASSIGNED
    assert after["r-02"].state == pb.ServiceOrder.STATE_CHECKED_IN
    assert not after["r-02"].escalated_from and not after["r-02"].HasField("escalate_time")
    # The doctor's list has it (the handler column moved too), and the doctor visits.
    assert [o.target for o in await orders(command, handler="users/doctor-west")] == ["r-01"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await visit(command, after["r-01"], 121.1610, 31.2890, made["r-01"].handler)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await visit(command, after["r-01"], 121.1610, 31.2890, "users/doctor-west")
    done = await visit(command, after["r-01"], 121.1610, 31.2890, "users/doctor-west", note="ok")
    assert done.state == pb.ServiceOrder.STATE_DONE
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=PARENT, resource=after["r-03"].name),
        metadata=who(XINGMING),
    )
    escalated = log.command_log_entries[0]
    assert escalated.action == "service_order.escalated"
    assert escalated.detail == f"{made['r-03'].handler} -> users/doctor-east"


async def test_an_escalation_role_longer_than_the_contract_allows_is_refused(command):
    message = weekly_plan()
    message.escalation_role = "x" * 65
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(command, message)
    failure = failure_of(info.value)
    assert [v.field for v in failure.violations] == ["service_plan.escalation_role"]

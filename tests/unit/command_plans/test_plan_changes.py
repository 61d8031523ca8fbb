"""Changing and deleting emergency and service plans over real gRPC, on both stores:
what an active level refuses, what a delete keeps readable, and the timers and orders
a deleted service plan leaves behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from grassroots.command.v1 import command_service_pb2 as cpb
from grassroots.command.v1 import plans_service_pb2 as pb
from services.command.store.plans_rows import us
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.command_plans import test_emergency_plans as ep
from tests.unit.command_plans import test_service_orders as so
from tests.unit.command_plans.conftest import who
from tests.unit.command_plans.test_plan_tasks import people, square_plan, tasks_of


async def update_plan(command, plan, paths, reason="", metadata=None):
    return await command.stub.UpdateEmergencyPlan(
        pb.UpdateEmergencyPlanRequest(
            emergency_plan=plan, update_mask=FieldMask(paths=paths), reason=reason
        ),
        metadata=metadata or who(XINGMING),
    )


async def delete_plan(command, name, reason="", etag="", metadata=None):
    return await command.stub.DeleteEmergencyPlan(
        pb.DeleteEmergencyPlanRequest(name=name, reason=reason, etag=etag),
        metadata=metadata or who(XINGMING),
    )


async def update_service(command, plan, paths, reason="", metadata=None):
    return await command.stub.UpdateServicePlan(
        pb.UpdateServicePlanRequest(
            service_plan=plan, update_mask=FieldMask(paths=paths), reason=reason
        ),
        metadata=metadata or who(XINGMING),
    )


async def delete_service(command, name, reason="", metadata=None):
    return await command.stub.DeleteServicePlan(
        pb.DeleteServicePlanRequest(name=name, reason=reason), metadata=metadata or who(XINGMING)
    )


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# Emergency plans -----------------------------------------------------------------------


async def test_an_update_changes_the_masked_fields_bumps_the_etag_and_is_logged(command):
    plan = await ep.create(command)
    given = pb.EmergencyPlan(name=plan.name, display_name="Crowd at the fountain (new)")
    given.levels.extend(plan.levels)
    given.levels[1].checklist.append("Call the town office")
    changed = await update_plan(
        command, given, ["display_name", "levels"], "the square got a new exit"
    )
    assert changed.display_name == "Crowd at the fountain (new)"
    assert list(changed.levels[1].checklist)[-1] == "Call the town office"
    assert changed.signal == plan.signal  # not in the mask: kept
    assert changed.etag != plan.etag
    got = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert got == changed
    entries = await ep.log_of(command, plan.name)
    assert (entries[0].action, entries[0].actor, entries[0].reason) == (
        "emergency_plan.updated",
        "users/commander",
        "the square got a new exit",
    )
    assert entries[0].detail == "changed display_name, levels"
    # Raising it now opens the new checklist line.
    raised = await ep.change(command, plan.name, 2)
    assert "Call the town office" in ep.opened(raised)


async def test_an_update_is_validated_as_a_create_and_refuses_what_cannot_change(command):
    plan = await ep.create(command)
    two_levels = ep.crowd_plan(levels=(3, 2))
    two_levels.name = plan.name
    error = await refused(update_plan(command, two_levels, ["levels"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(error).violations[0].field == "emergency_plan.levels"
    bad_role = pb.EmergencyPlan(name=plan.name)
    bad_role.levels.extend(plan.levels)
    bad_role.levels[0].dispatches[0].role = "Grid Worker"
    error = await refused(update_plan(command, bad_role, ["levels"]))
    assert failure_of(error).violations[0].field == "emergency_plan.levels[0].dispatches[0].role"
    error = await refused(
        update_plan(command, pb.EmergencyPlan(name=plan.name, current_level=2), ["current_level"])
    )
    assert failure_of(error).violations[0].field == "update_mask"
    stale = pb.EmergencyPlan(name=plan.name, display_name="x", etag='W/"99"')
    error = await refused(update_plan(command, stale, ["display_name"]))
    assert error.code() == grpc.StatusCode.ABORTED
    assert [e.action for e in await ep.log_of(command, plan.name)] == ["emergency_plan.created"]


async def test_an_active_level_refuses_new_levels_and_a_delete_with_nothing_half_applied(command):
    plan = await ep.create(command)
    raised = await ep.change(command, plan.name, 2)
    fewer = pb.EmergencyPlan(name=plan.name, display_name="Renamed while raised")
    fewer.levels.extend(plan.levels)
    fewer.levels[0].summary = "more than 800 people"
    error = await refused(update_plan(command, fewer, ["display_name", "levels"]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "level 2" in error.details() and "stand it down first" in error.details()
    error = await refused(delete_plan(command, plan.name, "retired"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "level 2" in error.details() and "stand it down first" in error.details()
    got = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert got == raised  # neither the title nor anything else moved
    # A title alone may change under an active level.
    renamed = await update_plan(
        command, pb.EmergencyPlan(name=plan.name, display_name="Crowd (raised)"), ["display_name"]
    )
    assert renamed.current_level == 2 and renamed.display_name == "Crowd (raised)"


async def test_a_deleted_plan_is_gone_but_its_tasks_and_log_stay_and_it_cannot_be_raised(
    command,
):
    stub = await people(command)
    plan = await ep.create(command, square_plan())
    await ep.change(command, plan.name, 2)
    await ep.change(command, plan.name, 0, "all clear")
    tasks = await tasks_of(stub, plan.name)
    assert tasks and all(t.state == cpb.Task.STATE_CANCELLED for t in tasks)
    stood_down = await command.stub.GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    error = await refused(delete_plan(command, plan.name, etag='W/"1"'))
    assert error.code() == grpc.StatusCode.ABORTED
    await delete_plan(command, plan.name, "the square was rebuilt", etag=stood_down.etag)
    error = await refused(
        command.stub.GetEmergencyPlan(
            pb.GetEmergencyPlanRequest(name=plan.name), metadata=who(XINGMING)
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    listed = await command.stub.ListEmergencyPlans(
        pb.ListEmergencyPlansRequest(parent=ep.PARENT), metadata=who(XINGMING)
    )
    assert plan.name not in [p.name for p in listed.emergency_plans]
    for call in (
        ep.change(command, plan.name, 3),
        delete_plan(command, plan.name),
        update_plan(command, pb.EmergencyPlan(name=plan.name, display_name="x"), ["display_name"]),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    # History stays: the tasks it opened and every decision, the delete last.
    assert sorted(t.name for t in await tasks_of(stub, plan.name)) == sorted(t.name for t in tasks)
    entries = await ep.log_of(command, plan.name)
    assert (entries[0].action, entries[0].reason) == (
        "emergency_plan.deleted",
        "the square was rebuilt",
    )
    assert [e.action for e in entries[1:]] == [
        "emergency.level_lowered",
        "emergency.level_raised",
        "emergency_plan.created",
    ]


async def test_a_signal_never_raises_a_deleted_plan(command):
    plan = await ep.create(command)
    watcher = await ep.create(command, ep.crowd_plan())  # follows the same rule, stays
    await delete_plan(command, plan.name, "replaced")
    now = datetime.now(UTC).replace(microsecond=0)
    await command.bus.publish(ep.TWIN_STREAM, ep._signal(3, now, value=10250))
    moved = await ep._wait_for_level(command, watcher.name, 1)
    assert moved.current_level == 1  # the signal was handled ...
    entries = await ep.log_of(command, plan.name)
    assert [e.action for e in entries] == ["emergency_plan.deleted", "emergency_plan.created"]


async def test_a_request_id_makes_a_new_plan_once_its_plan_was_deleted(command):
    first = await ep.create(command, request_id="install-1")
    assert (await ep.create(command, request_id="install-1")).name == first.name
    await delete_plan(command, first.name, "uninstalled")
    again = await ep.create(command, request_id="install-1")
    assert again.name != first.name and again.current_level == 0


async def test_another_village_cannot_change_or_delete_a_plan(command):
    plan = await ep.create(command)
    other = who(XIANGYANG)
    foreign = plan.name.replace("xingming", "xiangyang")
    for call in (
        delete_plan(command, plan.name, metadata=other),
        update_plan(
            command,
            pb.EmergencyPlan(name=plan.name, display_name="x"),
            ["display_name"],
            metadata=other,
        ),
        delete_plan(command, foreign),  # the plan's id under another village's name
    ):
        assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    # The town above the village may.
    renamed = await update_plan(
        command,
        pb.EmergencyPlan(name=plan.name, display_name="Crowd (town)"),
        ["display_name"],
        metadata=who(TOWN),
    )
    assert renamed.display_name == "Crowd (town)"


# Service plans -------------------------------------------------------------------------


async def test_a_service_plan_update_changes_future_orders_and_moves_its_timer(command):
    plan = await so.create(command)
    plan_id = plan.name.rsplit("/", 1)[-1]
    given = pb.ServicePlan(
        name=plan.name,
        recurrence="FREQ=WEEKLY;BYDAY=TU;BYHOUR=9;BYMINUTE=0",
        visit_minutes=30,
    )
    changed = await update_service(
        command, given, ["recurrence", "visit_minutes"], "visits move to Tuesdays"
    )
    tuesday = so.START + timedelta(days=1)
    assert changed.recurrence == given.recurrence and changed.visit_minutes == 30
    assert changed.next_occurrence_time.ToDatetime(tzinfo=UTC) == tuesday
    assert changed.display_name == plan.display_name and len(changed.targets) == 3
    # A Tuesday timer waits; the Monday one, firing, makes nothing.
    new = await command.timers.get_timer(f"plans.occurrence/{plan_id}/{us(tuesday)}")
    assert new is not None and not new.cancelled
    old = await command.timers.get_timer(f"plans.occurrence/{plan_id}/{us(so.START)}")
    so.at(command, so.START)
    await command.desk.occurrences.fire([old])
    assert await command.desk.generate_due(timedelta(0)) == 0
    assert await so.orders(command) == []
    so.at(command, tuesday)
    assert await command.desk.generate_due(timedelta(0)) == 1
    made = await so.orders(command)
    assert len(made) == 3
    assert {o.due_time.ToDatetime(tzinfo=UTC) for o in made} == {tuesday + timedelta(minutes=30)}
    # Orders already made keep what they were made with; the next ones take the change.
    await update_service(
        command, pb.ServicePlan(name=plan.name, visit_minutes=45), ["visit_minutes"], "longer"
    )
    assert await so.orders(command) == made
    so.at(command, tuesday + timedelta(days=7))
    assert await command.desk.generate_due(timedelta(0)) == 1
    later = [o for o in await so.orders(command) if o not in made]
    assert {o.due_time.ToDatetime(tzinfo=UTC) for o in later} == {
        tuesday + timedelta(days=7, minutes=45)
    }
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=so.PARENT, resource=plan.name),
        metadata=who(XINGMING),
    )
    actions = [(e.action, e.reason) for e in log.command_log_entries]
    assert actions == [
        ("service_plan.updated", "longer"),
        ("service_plan.updated", "visits move to Tuesdays"),
        ("service_plan.created", ""),
    ]
    assert log.command_log_entries[1].detail.startswith("changed recurrence, visit_minutes; next ")


async def test_a_service_plan_moved_away_and_back_keeps_a_live_timer(command):
    plan = await so.create(command)
    plan_id = plan.name.rsplit("/", 1)[-1]
    monday = pb.ServicePlan(name=plan.name, recurrence=plan.recurrence)
    tuesday = pb.ServicePlan(name=plan.name, recurrence="FREQ=WEEKLY;BYDAY=TU;BYHOUR=9;BYMINUTE=0")
    await update_service(command, tuesday, ["recurrence"])
    back = await update_service(command, monday, ["recurrence"])
    assert back.next_occurrence_time.ToDatetime(tzinfo=UTC) == so.START
    timer = await command.timers.get_timer(f"plans.occurrence/{plan_id}/{us(so.START)}")
    assert timer is not None and not timer.cancelled
    so.at(command, so.START)
    await command.desk.occurrences.fire([timer])
    assert len(await so.orders(command)) == 3


async def test_a_service_plan_update_is_validated_as_a_create(command):
    plan = await so.create(command)
    never = pb.ServicePlan(name=plan.name, recurrence="FREQ=WEEKLY;UNTIL=20300101T000000Z")
    error = await refused(update_service(command, never, ["recurrence"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = failure_of(error).violations[0]
    assert violation.field == "service_plan.recurrence" and "never fires" in violation.description
    error = await refused(
        update_service(command, pb.ServicePlan(name=plan.name, visit_minutes=0), ["visit_minutes"])
    )
    assert failure_of(error).violations[0].field == "service_plan.visit_minutes"
    error = await refused(update_service(command, pb.ServicePlan(name=plan.name), ["start_time"]))
    assert failure_of(error).violations[0].field == "service_plan.start_time"
    error = await refused(
        update_service(command, pb.ServicePlan(name=plan.name), ["next_occurrence_time"])
    )
    assert failure_of(error).violations[0].field == "update_mask"
    got = await command.stub.GetServicePlan(
        pb.GetServicePlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert got == plan


async def test_deleting_a_service_plan_cancels_waiting_orders_and_its_timers(command):
    plan = await so.create(command, so.weekly_plan())
    plan_id = plan.name.rsplit("/", 1)[-1]
    so.at(command, so.START)
    await command.desk.generate_due(timedelta(0))
    made = await so.orders(command)
    visited = next(o for o in made if o.target == "r-02")
    checked_in = await so.visit(command, visited, 121.1650, 31.2905, visited.handler)
    await delete_service(command, plan.name, "the residents moved to the care home")
    error = await refused(
        command.stub.GetServicePlan(pb.GetServicePlanRequest(name=plan.name), metadata=who(TOWN))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    listed = await command.stub.ListServicePlans(
        pb.ListServicePlansRequest(parent=so.PARENT), metadata=who(XINGMING)
    )
    assert plan.name not in [p.name for p in listed.service_plans]
    states = {o.target: o.state for o in await so.orders(command)}
    assert states == {
        "r-01": pb.ServiceOrder.STATE_CANCELLED,
        "r-02": pb.ServiceOrder.STATE_CHECKED_IN,
        "r-03": pb.ServiceOrder.STATE_CANCELLED,
    }
    # The visit under way still checks out, within the plan's own 100 m.
    far = await refused(so.visit(command, checked_in, 121.1700, 31.2870, visited.handler, "x"))
    assert far.code() == grpc.StatusCode.INVALID_ARGUMENT
    done = await so.visit(command, checked_in, 121.1650, 31.2905, visited.handler, note="fine")
    assert done.state == pb.ServiceOrder.STATE_DONE
    cancelled = next(o for o in made if o.target == "r-01")
    error = await refused(so.visit(command, cancelled, 121.1610, 31.2890, cancelled.handler))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    # No occurrence is left to make: the scheduler and a late timer make nothing more.
    so.at(command, so.START + timedelta(days=30))
    assert await so.catch_up(command) == 0
    assert await command.desk.catch_up(plan_id, timedelta(0)) is None
    assert len(await so.orders(command)) == 3
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=so.PARENT, resource=cancelled.name),
        metadata=who(XINGMING),
    )
    assert log.command_log_entries[0].action == "service_order.cancelled"
    log = await command.stub.ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(parent=so.PARENT, resource=plan.name),
        metadata=who(XINGMING),
    )
    assert log.command_log_entries[0].action == "service_plan.deleted"
    assert "cancelled 2 orders" in log.command_log_entries[0].detail


async def test_a_deleted_service_plans_timers_are_cancelled_and_do_not_escalate(command):
    plan = so.weekly_plan()
    plan.escalation_role = "village_doctor"
    created = await so.create(command, plan)
    plan_id = created.name.rsplit("/", 1)[-1]
    so.at(command, so.START)
    await command.desk.generate_due(timedelta(0))
    await command.desk.occurrences.schedule(await command.store.get_service_plan(plan_id))
    next_id = f"plans.occurrence/{plan_id}/{us(so.START + timedelta(days=7))}"
    missed_id = f"plans.missed/{plan_id}/{us(so.START)}"
    for timer_id in (next_id, missed_id):
        assert not (await command.timers.get_timer(timer_id)).cancelled
    await delete_service(command, created.name)
    for timer_id in (next_id, missed_id):
        assert (await command.timers.get_timer(timer_id)).cancelled
    so.at(command, so.START + timedelta(days=1))
    assert await command.desk.escalate_missed(plan_id, so.START) == 0


async def test_another_village_cannot_change_or_delete_a_service_plan(command):
    plan = await so.create(command)
    other = who(XIANGYANG)
    for call in (
        delete_service(command, plan.name, metadata=other),
        update_service(
            command, pb.ServicePlan(name=plan.name, display_name="x"), ["display_name"], "", other
        ),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.NOT_FOUND
    await asyncio.sleep(0)
    got = await command.stub.GetServicePlan(
        pb.GetServicePlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert got == plan


def test_a_database_made_before_deletes_gains_the_column_at_start(tmp_path):
    """A plans file from before plans could be deleted opens, its plans live."""
    import sqlite3

    from services.command.store.plans_sqlite import SqlitePlansStore

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE emergency_plans (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
            "signal TEXT NOT NULL, version INTEGER NOT NULL, create_us BIGINT NOT NULL, "
            "body TEXT NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE service_plans (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
            "next_us BIGINT, version INTEGER NOT NULL, create_us BIGINT NOT NULL, "
            "body TEXT NOT NULL)"
        )
    store = SqlitePlansStore(path)
    try:
        for table in ("emergency_plans", "service_plans"):
            columns = store.db.run_sync(
                lambda conn, table=table: [
                    r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                ]
            )
            assert "delete_us" in columns
    finally:
        store.close()

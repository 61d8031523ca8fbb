"""The tasks an emergency level opens, over real gRPC on both stores.

A dispatch opens one task per handler it sends, offered like an event's task (on duty,
holding the role, under capacity, nearest, fair); a checklist line opens one task; a
step down cancels what the level opened and nobody finished. None of it touches the
events service: this server's events address leads nowhere.
"""

from __future__ import annotations

from collections import Counter

import grpc
import pytest

from grassroots.command.v1 import command_service_pb2 as cpb
from grassroots.command.v1 import command_service_pb2_grpc as cpb_grpc
from grassroots.command.v1 import plans_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal
from services.kit.status import failure_of
from tests.conftest import XINGMING
from tests.unit.command_plans.conftest import who
from tests.unit.command_plans.test_emergency_plans import change, create

PARENT = tenancy.tenant_name(XINGMING)
SQUARE = (121.1600, 31.2900)
# Handlers east of the square, about 100 m, 300 m and 2 km away, and a volunteer.
NEAR, MID, FAR, VOLUNTEER = "users/gw_near", "users/gw_mid", "users/gw_far", "users/vol_1"
PEOPLE = (
    (NEAR, "grid_worker", 0.00105),
    (MID, "grid_worker", 0.00315),
    (FAR, "grid_worker", 0.021),
    (VOLUNTEER, "volunteer", 0.0005),
)
WORKER = frozenset({"command:read", "command:dispatch"})


def worker(subject: str):
    return Principal(subject=subject, tenant=XINGMING, kind="user", scopes=WORKER).to_metadata()


def square_plan(located: bool = True) -> pb.EmergencyPlan:
    plan = pb.EmergencyPlan(
        display_name="Crowd surge at the village square",
        levels=[
            pb.EmergencyLevel(
                level=3,
                summary="more than 1,000 people",
                dispatches=[pb.Dispatch(role="grid_worker", count=2)],
                notices=[pb.Notice(audience="town_office", text="Crowd building")],
            ),
            pb.EmergencyLevel(
                level=2,
                summary="more than 5,000 people",
                checklist=["Open the east exit", "Fence the canal path"],
                checklist_role="volunteer",
            ),
            pb.EmergencyLevel(level=1, checklist=["Close the square to newcomers"]),
        ],
    )
    if located:
        plan.location.CopyFrom(geo_pb2.GeoPoint(longitude=SQUARE[0], latitude=SQUARE[1]))
    return plan


async def people(command) -> cpb_grpc.CommandServiceStub:
    stub = cpb_grpc.CommandServiceStub(command.channel)
    for user, role, east in PEOPLE:
        await stub.CreateHandlerProfile(
            cpb.CreateHandlerProfileRequest(
                parent=PARENT,
                handler_profile=cpb.HandlerProfile(
                    user=user,
                    roles=[role],
                    on_duty=True,
                    position=geo_pb2.GeoPoint(longitude=SQUARE[0] + east, latitude=SQUARE[1]),
                ),
            ),
            metadata=who(XINGMING),
        )
    return stub


async def tasks_of(stub, plan_name: str, state: str = "") -> list[cpb.Task]:
    text = f'emergency_plan = "{plan_name}"' + (f' AND state = "{state}"' if state else "")
    answer = await stub.ListTasks(
        cpb.ListTasksRequest(parent=PARENT, filter=text, page_size=100), metadata=who(XINGMING)
    )
    return list(answer.tasks)


def by_item(tasks: list[cpb.Task]) -> dict[str, list[cpb.Task]]:
    found: dict[str, list[cpb.Task]] = {}
    for task in tasks:
        found.setdefault(task.emergency_item, []).append(task)
    return found


async def test_raising_a_level_opens_tasks_offered_to_the_nearest_holders_of_the_role(command):
    stub = await people(command)
    plan = await create(command, square_plan())
    raised = await change(command, plan.name, 2)
    tasks = await tasks_of(stub, plan.name)
    assert len(tasks) == 4  # 2 grid workers sent, 2 checklist lines; the notice has none
    items = {item.id: item for item in raised.items}
    # The plan names the tasks each item opened; they are the ones listed.
    assert sorted(n for item in raised.items for n in item.tasks) == sorted(t.name for t in tasks)
    notice = next(i for i in raised.items if i.kind == pb.EmergencyItem.KIND_NOTICE)
    assert list(notice.tasks) == []
    grouped = by_item(tasks)
    dispatch = next(i for i in raised.items if i.kind == pb.EmergencyItem.KIND_DISPATCH)
    sent = grouped[dispatch.id]
    # Two different people, the two nearest; FAR is not sent.
    assert sorted(t.handler for t in sent) == sorted([NEAR, MID])
    assert {t.state for t in sent} == {cpb.Task.STATE_ASSIGNED}
    assert all(t.distance_meters < 400 for t in sent)
    for task in tasks:
        assert task.event == "" and task.emergency_plan == plan.name
        assert task.village == XINGMING and task.location.longitude == pytest.approx(SQUARE[0])
        assert task.description.startswith("Crowd surge at the village square, level ")
        assert items[task.emergency_item].state == pb.EmergencyItem.STATE_OPEN
    checklist = [
        t for t in tasks if items[t.emergency_item].kind == pb.EmergencyItem.KIND_CHECKLIST
    ]
    assert {t.handler for t in checklist} == {VOLUNTEER}
    assert "Open the east exit" in " ".join(t.description for t in checklist)
    assert "nearest available volunteer" in checklist[0].routing.explanation
    # Walking the plan again (a retry, a restart, another replica) opens nothing more.
    again = await command.desk.get_emergency_plan(
        Principal("services/test", XINGMING, "service"), XINGMING, plan.name.rsplit("/", 1)[-1]
    )
    assert await command.command_desk.follow_plan(again) == []
    assert len(await tasks_of(stub, plan.name)) == 4
    # The board counts them with the village's other tasks.
    board = await stub.GetCommandBoard(
        cpb.GetCommandBoardRequest(parent=PARENT), metadata=who(XINGMING)
    )
    assert {c.key: c.count for c in board.by_state} == {"assigned": 4}
    assert {w.handler: w.open_tasks for w in board.workload}[VOLUNTEER] == 2


async def test_plan_tasks_are_declined_accepted_resolved_and_cancelled_on_a_step_down(command):
    stub = await people(command)
    plan = await create(command, square_plan())
    await change(command, plan.name, 2)
    tasks = await tasks_of(stub, plan.name)
    near = next(t for t in tasks if t.handler == NEAR)
    mid = next(t for t in tasks if t.handler == MID)
    # NEAR declines: the task goes on, past MID (who holds the item's other slot), to FAR.
    passed = await stub.DeclineTask(
        cpb.DeclineTaskRequest(name=near.name, reason="off sick"), metadata=worker(NEAR)
    )
    assert passed.handler == FAR and list(passed.passed_by) == [NEAR]
    # Only the handler may accept; a second accept is refused naming the state.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AcceptTask(cpb.AcceptTaskRequest(name=mid.name), metadata=worker(FAR))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    accepted = await stub.AcceptTask(cpb.AcceptTaskRequest(name=mid.name), metadata=worker(MID))
    assert accepted.state == cpb.Task.STATE_ACCEPTED
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.AcceptTask(cpb.AcceptTaskRequest(name=mid.name), metadata=worker(MID))
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    done = await stub.ResolveTask(
        cpb.ResolveTaskRequest(name=mid.name, note="east side cleared"), metadata=worker(MID)
    )
    assert done.state == cpb.Task.STATE_DONE
    # Down to level 3: the checklist of level 2 is cancelled, the dispatch of 3 stays.
    await change(command, plan.name, 3, "crowd thinning")
    states = Counter(
        (t.emergency_item, cpb.Task.State.Name(t.state)) for t in await tasks_of(stub, plan.name)
    )
    dispatch_item = near.emergency_item
    assert states[(dispatch_item, "STATE_ASSIGNED")] == 1  # FAR's offer is still open
    assert states[(dispatch_item, "STATE_DONE")] == 1
    cancelled = await tasks_of(stub, plan.name, "cancelled")
    assert len(cancelled) == 2 and all(t.emergency_item != dispatch_item for t in cancelled)
    assert "stepped down to level 3" in cancelled[0].resolution_note
    # Stood down: what is not finished is cancelled, the resolved task stays done.
    await change(command, plan.name, 0, "square empty")
    final = Counter(cpb.Task.State.Name(t.state) for t in await tasks_of(stub, plan.name))
    assert final == Counter({"STATE_CANCELLED": 3, "STATE_DONE": 1})
    # Raised again: fresh items, fresh tasks; the old ones stay as they were.
    again = await change(command, plan.name, 3, "crowd back")
    assert all(item.id.startswith(f"i{int(again.etag[3:-1])}.") for item in again.items)
    assert len(await tasks_of(stub, plan.name, "assigned")) == 2
    board = await stub.GetCommandBoard(
        cpb.GetCommandBoardRequest(parent=PARENT), metadata=who(XINGMING)
    )
    # Open tasks only: the two new offers; MID's resolution counts in the mean times.
    assert {c.key: c.count for c in board.by_state} == {"assigned": 2}
    assert board.mean_time_to_resolve.ToTimedelta().total_seconds() >= 0


async def test_no_location_no_role_and_tasks_opened_after_a_crash(command):
    stub = await people(command)
    plan = await create(command, square_plan(located=False))
    assert not plan.HasField("location")
    # A crash between the level change and its tasks: the change is stored, no task yet.
    follow, command.desk.follow_plan = command.desk.follow_plan, None
    await change(command, plan.name, 1, "square overflowing")
    assert await tasks_of(stub, plan.name) == []
    command.desk.follow_plan = follow
    assert await command.desk.follow_all() >= 1  # what a start runs
    tasks = await tasks_of(stub, plan.name)
    assert len(tasks) == 5
    # Without a place: sent without distance, still to two different grid workers.
    sent = [t for t in tasks if t.routing.handler_role == "grid_worker"]
    assert len({t.handler for t in sent}) == 2 and all(not t.HasField("location") for t in sent)
    # A checklist line of a level without a role waits for a desk, which hands it on.
    (waiting,) = [t for t in tasks if t.state == cpb.Task.STATE_WAITING]
    assert "Close the square" in waiting.description and waiting.handler == ""
    assert "waiting for a desk" in waiting.routing.explanation
    handed = await stub.TransferTask(
        cpb.TransferTaskRequest(name=waiting.name, handler=FAR, reason="you are at the gate"),
        metadata=who(XINGMING),
    )
    assert handed.state == cpb.Task.STATE_ASSIGNED and handed.handler == FAR
    # Declined, it waits for a desk again: dispatch offers a role-less task to nobody.
    back = await stub.DeclineTask(cpb.DeclineTaskRequest(name=waiting.name), metadata=worker(FAR))
    assert back.state == cpb.Task.STATE_WAITING and back.handler == ""
    await change(command, plan.name, 2, "calmer")
    assert (
        await stub.GetTask(cpb.GetTaskRequest(name=waiting.name), metadata=who(XINGMING))
    ).state == (cpb.Task.STATE_CANCELLED)


async def test_bad_plan_task_input_names_the_field(command):
    stub = cpb_grpc.CommandServiceStub(command.channel)
    bad = square_plan()
    bad.levels[1].checklist_role = "Volunteers!"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(command, bad)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for v in failure_of(refused.value).violations]
    assert any(f.endswith("checklist_role") for f in fields), fields
    with pytest.raises(grpc.aio.AioRpcError) as filtered:
        await stub.ListTasks(
            cpb.ListTasksRequest(parent=PARENT, filter='emergency_plan = "ep_1"'),
            metadata=who(XINGMING),
        )
    assert filtered.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_dispatch_beyond_the_teams_people_says_its_tasks_wait(command):
    stub = cpb_grpc.CommandServiceStub(command.channel)

    async def volunteer(user: str, team: str) -> None:
        await stub.CreateHandlerProfile(
            cpb.CreateHandlerProfileRequest(
                parent=PARENT,
                handler_profile=cpb.HandlerProfile(
                    user=user,
                    roles=["volunteer"],
                    teams=[team],
                    on_duty=True,
                    position=geo_pb2.GeoPoint(longitude=SQUARE[0], latitude=SQUARE[1]),
                ),
            ),
            metadata=who(XINGMING),
        )

    await volunteer("users/vol_a", "crowd_control")
    await volunteer("users/vol_other", "xingming_volunteer")  # not of the team
    plan = square_plan()
    del plan.levels[0].dispatches[:]
    plan.levels[0].dispatches.append(pb.Dispatch(role="volunteer", team="crowd_control", count=2))
    plan.levels[0].ClearField("notices")
    made = await create(command, plan)
    await change(command, made.name, 3)
    tasks = await tasks_of(stub, made.name)
    (offered,) = [t for t in tasks if t.state == cpb.Task.STATE_ASSIGNED]
    (waiting,) = [t for t in tasks if t.state == cpb.Task.STATE_WAITING]
    assert offered.handler == "users/vol_a"
    assert "; offered to the nearest available volunteer (crowd_control)" in (
        offered.routing.explanation
    )
    assert waiting.handler == ""
    assert "; waiting for an available volunteer (crowd_control)" in waiting.routing.explanation
    assert "offered" not in waiting.routing.explanation
    # A second member of the team comes: the waiting task is offered, and says so.
    await volunteer("users/vol_b", "crowd_control")
    await command.command_desk.offer_waiting(XINGMING)
    now = await stub.GetTask(cpb.GetTaskRequest(name=waiting.name), metadata=who(XINGMING))
    assert now.handler == "users/vol_b"
    assert "offered to the nearest available volunteer" in now.routing.explanation
    # Declined, with nobody else of the team free, it waits again and says so.
    back = await stub.DeclineTask(
        cpb.DeclineTaskRequest(name=waiting.name), metadata=worker("users/vol_b")
    )
    assert back.state == cpb.Task.STATE_WAITING
    assert "; waiting for an available volunteer (crowd_control)" in back.routing.explanation

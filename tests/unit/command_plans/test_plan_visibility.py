"""Service plans, orders and the command log are dispatch data: a carer without the
dispatchers' scopes reads the orders given to them and nothing else (no plan, no other
carer's order, no log), as a handler reads only their own tasks. The carers a plan names
are users identity knows, checked as a handler profile's user is. Both stores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from grassroots.command.v1 import plans_service_pb2 as pb
from services.kit import tenancy
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.command_plans.conftest import CARER, who
from tests.unit.command_plans.test_emergency_plans import create as create_emergency
from tests.unit.command_plans.test_service_orders import (
    PARENT,
    START,
    at,
    create,
    orders,
    visit,
    weekly_plan,
)

WANG, LI = "users/carer-wang", "users/carer-li"
AUDITOR = frozenset({"command:read", "audit:read"})


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_carer_reads_only_the_orders_given_to_them(command):
    plan = await create(command)
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    made = await orders(command)
    mine = [o for o in made if o.handler == WANG]
    theirs = [o for o in made if o.handler == LI]
    assert mine and theirs
    wang, stub = who(XINGMING, WANG, CARER), command.stub

    listed = await stub.ListServiceOrders(pb.ListServiceOrdersRequest(parent=PARENT), metadata=wang)
    assert sorted(o.name for o in listed.service_orders) == sorted(o.name for o in mine)
    # Asking for another carer's orders still lists only one's own.
    asked = await stub.ListServiceOrders(
        pb.ListServiceOrdersRequest(parent=PARENT, handler=LI), metadata=wang
    )
    assert {o.handler for o in asked.service_orders} == {WANG}
    got = await stub.GetServiceOrder(pb.GetServiceOrderRequest(name=mine[0].name), metadata=wang)
    assert got.name == mine[0].name
    failure = await refused(
        stub.GetServiceOrder(pb.GetServiceOrderRequest(name=theirs[0].name), metadata=wang)
    )
    assert failure.code() == grpc.StatusCode.NOT_FOUND

    # No plan: not one to read, none listed.
    failure = await refused(
        stub.GetServicePlan(pb.GetServicePlanRequest(name=plan.name), metadata=wang)
    )
    assert failure.code() == grpc.StatusCode.NOT_FOUND
    plans = await stub.ListServicePlans(pb.ListServicePlansRequest(parent=PARENT), metadata=wang)
    assert list(plans.service_plans) == [] and plans.next_page_token == ""

    # No log: who visits whom, and every actor and reason, are the dispatchers'.
    for resource in ("", theirs[0].name, mine[0].name):
        failure = await refused(
            stub.ListCommandLogEntries(
                pb.ListCommandLogEntriesRequest(parent=PARENT, resource=resource), metadata=wang
            )
        )
        assert failure.code() == grpc.StatusCode.PERMISSION_DENIED
        assert failure_of(failure).reason == "DISPATCHERS_ONLY"

    # Moves keep their answers: another's order is 403, one's own too far is 400.
    target = theirs[0].target_location
    failure = await refused(visit(command, theirs[0], target.longitude, target.latitude, WANG))
    assert failure.code() == grpc.StatusCode.PERMISSION_DENIED
    own = mine[0].target_location
    failure = await refused(visit(command, mine[0], own.longitude + 0.01, own.latitude, WANG))
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    done = await visit(command, mine[0], own.longitude, own.latitude, WANG)
    assert done.state == pb.ServiceOrder.STATE_CHECKED_IN


async def test_staff_and_auditors_read_every_plan_order_and_log_entry(command):
    plan = await create(command)
    at(command, START)
    await command.desk.generate_due(timedelta(0))
    for metadata in (who(XINGMING), who(TOWN, "users/auditor", AUDITOR)):
        listed = await command.stub.ListServiceOrders(
            pb.ListServiceOrdersRequest(parent=PARENT), metadata=metadata
        )
        assert {o.handler for o in listed.service_orders} == {WANG, LI}
        plans = await command.stub.ListServicePlans(
            pb.ListServicePlansRequest(parent=PARENT), metadata=metadata
        )
        assert [p.name for p in plans.service_plans] == [plan.name]
        await command.stub.GetServicePlan(
            pb.GetServicePlanRequest(name=plan.name), metadata=metadata
        )
        log = await command.stub.ListCommandLogEntries(
            pb.ListCommandLogEntriesRequest(parent=PARENT), metadata=metadata
        )
        assert log.command_log_entries


async def test_a_carer_still_reads_the_emergency_levels(command):
    await create_emergency(command)
    listed = await command.stub.ListEmergencyPlans(
        pb.ListEmergencyPlansRequest(parent=PARENT), metadata=who(XINGMING, WANG, CARER)
    )
    assert [p.display_name for p in listed.emergency_plans] == [
        "Crowd surge at the lakeside fountain"
    ]


class People:
    """Identity as a table of user -> tenant (disabled and deleted users are absent)."""

    def __init__(self, homes: dict[str, str]) -> None:
        self.homes = homes
        self.calls: list[list[str]] = []

    async def tenants_of(self, subtree: str, users: Sequence[str]) -> dict[str, str]:
        self.calls.append(list(users))
        return {u: t for u, t in self.homes.items() if u in users and tenancy.contains(subtree, t)}


async def test_a_plan_names_only_carers_identity_knows_at_its_village_or_above(command):
    people = People({WANG: XINGMING, LI: TOWN, "users/xy": XIANGYANG})
    command.desk.people = people
    failure = await refused(create(command, weekly_plan(carers=["users/nobody", "bogus", WANG])))
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure_of(failure).violations] == [
        "service_plan.carers[0]",
        "service_plan.carers[1]",
    ]
    assert people.calls == [["users/nobody", "bogus", WANG]], "one lookup for the list"
    # Another village's user is refused as an unknown one is.
    failure = await refused(create(command, weekly_plan(carers=[WANG, "users/xy"])))
    assert [v.field for v in failure_of(failure).violations] == ["service_plan.carers[1]"]
    # The village's own carer and one of the town above it are fine.
    plan = await create(command, weekly_plan(carers=[WANG, LI]))
    assert list(plan.carers) == [WANG, LI]

    changed = pb.ServicePlan(name=plan.name, carers=[WANG, "bogus"])
    failure = await refused(
        command.stub.UpdateServicePlan(
            pb.UpdateServicePlanRequest(
                service_plan=changed, update_mask=FieldMask(paths=["carers"])
            ),
            metadata=who(XINGMING),
        )
    )
    assert [v.field for v in failure_of(failure).violations] == ["service_plan.carers[1]"]
    kept = await command.stub.GetServicePlan(
        pb.GetServicePlanRequest(name=plan.name), metadata=who(XINGMING)
    )
    assert list(kept.carers) == [WANG, LI]
    changed = pb.ServicePlan(name=plan.name, carers=[LI])
    updated = await command.stub.UpdateServicePlan(
        pb.UpdateServicePlanRequest(service_plan=changed, update_mask=FieldMask(paths=["carers"])),
        metadata=who(XINGMING),
    )
    assert list(updated.carers) == [LI]

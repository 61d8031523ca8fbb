"""Where escalation stops and what a transfer may not do, over real gRPC on both stores:
escalation climbs village -> town -> district and no further, a breach that finds nobody
is written in the command log, a task no rule routes stays with the desks when it is
sent back to routing, and a task cannot be transferred to the handler holding it."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.command.v1 import plans_service_pb2 as plans_pb
from grassroots.command.v1 import plans_service_pb2_grpc as plans_grpc
from services.kit import tenancy
from tests.conftest import TOWN
from tests.unit.command.test_loop import (
    NEAR,
    desk,
    eventually,
    report,
    setup_town,
    task_of,
)

DISTRICT = "sh/jiading"
REASSIGN = pb.EscalationAction.Value("ESCALATION_ACTION_REASSIGN")


async def log_of(command, task_name: str) -> list[plans_pb.CommandLogEntry]:
    stub = plans_grpc.PlansServiceStub(command.channel)
    listed = await stub.ListCommandLogEntries(
        plans_pb.ListCommandLogEntriesRequest(
            parent=tenancy.tenant_name(TOWN), resource=task_name, page_size=50
        ),
        metadata=desk(),
    )
    return list(listed.command_log_entries)


async def test_escalation_stops_at_the_district_and_the_log_says_nobody_took_it(
    command, grid_index
):
    _, lon, lat = await setup_town(
        command, grid_index, response_s=3600, resolution_s=1, action=REASSIGN
    )
    event = await report(command, lon, lat)

    async def stopped():
        task = await task_of(command, event.name)
        if task is None:
            return None
        entries = await log_of(command, task.name)
        return (
            (task, entries) if any(e.action == "task.escalation_stopped" for e in entries) else None
        )

    task, entries = await eventually(stopped, within=40.0)
    assert task.escalation_level == 2
    assert task.escalated_to == DISTRICT  # never the city above it
    assert task.handler == NEAR  # nobody above holds the role: it stays, and the log says so
    actions = [e.action for e in entries]
    assert actions.count("task.not_reassigned") == 2  # town, then district
    assert actions.count("task.escalation_stopped") == 1
    stop = next(e for e in entries if e.action == "task.escalation_stopped")
    assert DISTRICT in stop.reason
    await asyncio.sleep(1.5)  # no further period: nothing more happens
    again = await task_of(command, event.name)
    assert again.escalated_to == DISTRICT and again.escalation_level == 2
    assert [e.action for e in await log_of(command, task.name)].count(
        "task.escalation_stopped"
    ) == 1


async def test_a_transfer_to_the_handler_holding_the_task_is_refused(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await command.stub.TransferTask(
            pb.TransferTaskRequest(name=task.name, handler=NEAR, reason="to myself"),
            metadata=desk(),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "handler" in (refused.value.details() or "")
    unchanged = await task_of(command, event.name)
    assert list(unchanged.transfers) == []


async def test_an_unrouted_task_sent_back_to_routing_keeps_waiting_for_a_desk(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)  # routes environment.* only
    event = await report(command, lon, lat, category="neighbourhood.dispute")
    task = await eventually(lambda: task_of(command, event.name))
    assert task.state == pb.Task.STATE_WAITING
    assert not task.routing.routing_rule
    moved = await command.stub.TransferTask(
        pb.TransferTaskRequest(name=task.name, reason="back to routing"), metadata=desk()
    )
    assert moved.state == pb.Task.STATE_WAITING
    assert moved.handler == ""
    assert "no routing rule matches" in moved.routing.explanation

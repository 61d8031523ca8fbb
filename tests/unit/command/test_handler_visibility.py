"""Handlers without the dispatchers' scopes see their own tasks and their own profile
only: no other task's event, category or place, no other handler's name or position,
no board. Dispatchers (command:write) see everything of their subtree. Both stores."""

from __future__ import annotations

import grpc
import pytest

from grassroots.command.v1 import command_service_pb2 as pb
from services.kit import tenancy
from tests.conftest import TOWN, XINGMING
from tests.unit.command.test_loop import (
    FAR,
    NEAR,
    desk,
    eventually,
    report,
    setup_town,
    task_of,
    worker,
)


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code()


async def test_a_handler_sees_only_their_own_tasks_and_profile(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR
    stub, village = command.stub, tenancy.tenant_name(XINGMING)

    mine = await stub.ListTasks(pb.ListTasksRequest(parent=village), metadata=worker(NEAR))
    assert [t.name for t in mine.tasks] == [task.name]
    theirs = await stub.ListTasks(pb.ListTasksRequest(parent=village), metadata=worker(FAR))
    assert list(theirs.tasks) == []
    asked = await stub.ListTasks(
        pb.ListTasksRequest(parent=village, filter=f'handler = "{NEAR}"'), metadata=worker(FAR)
    )
    assert list(asked.tasks) == []
    assert (
        await code_of(stub.GetTask(pb.GetTaskRequest(name=task.name), metadata=worker(FAR)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (await stub.GetTask(pb.GetTaskRequest(name=task.name), metadata=worker(NEAR))).name

    profiles = await stub.ListHandlerProfiles(
        pb.ListHandlerProfilesRequest(parent=village), metadata=worker(FAR)
    )
    assert [p.user for p in profiles.handler_profiles] == [FAR]
    near_profile = f"{village}/handlers/{NEAR.removeprefix('users/')}"
    assert (
        await code_of(
            stub.GetHandlerProfile(
                pb.GetHandlerProfileRequest(name=near_profile), metadata=worker(FAR)
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        await code_of(
            stub.GetCommandBoard(pb.GetCommandBoardRequest(parent=village), metadata=worker(FAR))
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    # A move on someone else's task stays a 403, as the lifecycle table says.
    assert (
        await code_of(stub.AcceptTask(pb.AcceptTaskRequest(name=task.name), metadata=worker(FAR)))
        == grpc.StatusCode.PERMISSION_DENIED
    )

    # The dispatcher sees every task and profile, and the board.
    everything = await stub.ListHandlerProfiles(
        pb.ListHandlerProfilesRequest(parent=tenancy.tenant_name(TOWN)), metadata=desk()
    )
    assert {NEAR, FAR} <= {p.user for p in everything.handler_profiles}
    assert (
        await stub.GetHandlerProfile(
            pb.GetHandlerProfileRequest(name=near_profile), metadata=desk()
        )
    ).user == NEAR
    await stub.GetCommandBoard(pb.GetCommandBoardRequest(parent=village), metadata=desk())

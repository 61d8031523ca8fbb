"""DeleteHandlerProfile: refused while the handler holds open tasks, done once they are
handed on; the profile is gone from reads and dispatch. Both stores, over real gRPC."""

from __future__ import annotations

import grpc
import pytest

from grassroots.command.v1 import command_service_pb2 as pb
from services.kit import tenancy
from tests.conftest import XINGMING
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


async def test_a_profile_is_deleted_only_once_its_open_tasks_are_handed_on(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR
    stub = command.stub
    near = f"{tenancy.tenant_name(XINGMING)}/handlers/{NEAR.removeprefix('users/')}"

    with pytest.raises(grpc.aio.AioRpcError) as held:
        await stub.DeleteHandlerProfile(pb.DeleteHandlerProfileRequest(name=near), metadata=desk())
    assert held.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "1 open task" in (held.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as scope:
        await stub.DeleteHandlerProfile(
            pb.DeleteHandlerProfileRequest(name=near), metadata=worker(NEAR)
        )
    assert scope.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await stub.TransferTask(
        pb.TransferTaskRequest(name=task.name, handler=FAR, reason="leaving"), metadata=desk()
    )
    await stub.DeleteHandlerProfile(pb.DeleteHandlerProfileRequest(name=near), metadata=desk())
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetHandlerProfile(pb.GetHandlerProfileRequest(name=near), metadata=desk())
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.DeleteHandlerProfile(pb.DeleteHandlerProfileRequest(name=near), metadata=desk())
    assert again.value.code() == grpc.StatusCode.NOT_FOUND
    # Declined by FAR, the task is never offered to the deleted handler again.
    passed = await stub.DeclineTask(pb.DeclineTaskRequest(name=task.name), metadata=worker(FAR))
    assert passed.handler != NEAR

"""A handler profile names a user identity knows, at the profile's tenant or above and
within the caller's reach; so does a transfer or an assignment to a named handler. Over
real gRPC on both stores, with identity answered by a stand-in of the PeoplePort."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pytest

from grassroots.command.v1 import command_service_pb2 as pb
from services.kit import tenancy
from services.kit.principal import Principal
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.command.test_loop import (
    DESK_SCOPES,
    NEAR,
    eventually,
    profile,
    report,
    setup_town,
    task_of,
)

DISTRICT = "sh/jiading"


class People:
    """Identity as a table of user -> tenant (disabled and deleted users are absent)."""

    def __init__(self, homes: dict[str, str]) -> None:
        self.homes = homes
        self.calls: list[list[str]] = []

    async def tenants_of(self, subtree: str, users: Sequence[str]) -> dict[str, str]:
        self.calls.append(list(users))
        return {u: t for u, t in self.homes.items() if u in users and tenancy.contains(subtree, t)}


def staff(tenant: str):
    return tuple(
        Principal(f"users/desk-{tenant}", tenant, "user", scopes=DESK_SCOPES).to_metadata()
    )


async def create(command, tenant: str, user: str, caller: str | None = None):
    return await command.stub.CreateHandlerProfile(
        pb.CreateHandlerProfileRequest(
            parent=tenancy.tenant_name(tenant), handler_profile=profile(user, 121.16, 31.29)
        ),
        metadata=staff(caller or tenant),
    )


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_profile_names_a_user_of_the_village_or_above_that_the_caller_reaches(command):
    people = People(
        {
            "users/u_xm": XINGMING,
            "users/u_xy": XIANGYANG,
            "users/u_town": TOWN,
            "users/u_district": DISTRICT,
        }
    )
    command.parts.desk.people = people
    assert (await create(command, XINGMING, "users/u_xm")).user == "users/u_xm"
    # Unknown, another village's, and a district user a village desk cannot see: one answer.
    answers = [
        await refused(create(command, XINGMING, user))
        for user in ("users/nobody", "users/u_xy", "users/u_district")
    ]
    for answer in answers:
        assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "handler_profile.user" in (answer.details() or "")
    assert len({a.details().split("'")[2] for a in answers}) == 1, "no difference to read"
    # The town desk may give a town officer a profile in its village (a handler above it).
    assert (await create(command, XINGMING, "users/u_town", caller=TOWN)).user == "users/u_town"
    # A village user never holds a profile at the town above their village.
    answer = await refused(create(command, TOWN, "users/u_xm"))
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert all(len(call) == 1 for call in people.calls), "one user, one lookup"


async def test_a_duplicate_of_another_villages_profile_is_not_told_apart_from_unknown(command):
    command.parts.desk.people = People({"users/u_xy": XIANGYANG})
    await create(command, XIANGYANG, "users/u_xy")
    answer = await refused(create(command, XINGMING, "users/u_xy"))
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT  # not ALREADY_EXISTS
    again = await refused(create(command, XIANGYANG, "users/u_xy"))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS  # its own village may know


async def test_a_transfer_to_a_profile_whose_user_identity_does_not_know_is_refused(
    command, grid_index
):
    _, lon, lat = await setup_town(command, grid_index)  # made before identity answers
    await create(command, XINGMING, "users/ghost")
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR
    command.parts.desk.people = People({NEAR: XINGMING})
    answer = await refused(
        command.stub.TransferTask(
            pb.TransferTaskRequest(name=task.name, handler="users/ghost", reason="hand over"),
            metadata=staff(TOWN),
        )
    )
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "handler" in (answer.details() or "")
    assert (await task_of(command, event.name)).handler == NEAR

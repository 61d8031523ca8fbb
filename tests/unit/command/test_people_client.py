"""The command service reads identity as itself: a user's tenant by subject, over real
gRPC against the empower service; unknown, other trees' and disabled users are absent."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from services.command.people_client import IdentityPeople
from services.empower.config import EmpowerSettings
from services.empower.domain.roles import ROLES
from services.empower.wiring import build
from services.kit.principal import Principal
from tests.conftest import create_tenants, serve_in_process

VA, VB = "sh/jd/at/va", "sh/jd/at/vb"


@pytest.fixture
async def empower(tmp_path: Path):
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
    )
    component = await build(settings)
    server = await serve_in_process("empower", component)
    await create_tenants(server.channel, VA, VB)
    yield server
    await server.channel.close()
    await server.running.stop()
    await component.close()


async def test_tenants_of_users_as_identity_knows_them(empower):
    identity = identity_grpc.IdentityServiceStub(empower.channel)
    admin = Principal(
        "users/admin", "sh", roles=("district_admin",), scopes=ROLES["district_admin"]
    ).to_metadata()
    subjects = {}
    for tenant, name in ((VA, "va.worker"), (VB, "vb.worker"), (VA, "va.gone")):
        made = await identity.CreateUser(
            identity_pb.CreateUserRequest(
                parent="tenants/" + tenant.replace("/", "-"),
                user=identity_pb.User(
                    username=name, display_name=name, kind=2, roles=["grid_worker"]
                ),
                password="a-long-first-password",
            ),
            metadata=admin,
        )
        subjects[name] = "users/" + made.name.rsplit("/", 1)[-1]
    await identity.DisableUser(
        identity_pb.DisableUserRequest(name=subjects["va.gone"]), metadata=admin
    )
    people = IdentityPeople(empower.address, 5.0)
    try:
        found = await people.tenants_of("sh", [*subjects.values(), "users/nobody", "bad"])
        assert found == {subjects["va.worker"]: VA, subjects["vb.worker"]: VB}
        assert await people.tenants_of("elsewhere", [subjects["va.worker"]]) == {}
    finally:
        await people.close()

"""The empower service over real gRPC: the service enforces identity itself.

These calls go straight to the service port, as a caller who bypasses the gateway
would: principals must be signed, scopes are checked per method, another village's
objects are NOT_FOUND, and personal numbers never reach the disk in plain text.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.roles import ROLES
from services.empower.wiring import build
from services.kit import gb11643
from services.kit.principal import PRINCIPAL_METADATA_KEY, Principal
from tests.conftest import create_tenants, serve_in_process

A, B = "sh/jd/at/va", "sh/jd/at/vb"


ID_A, ID_B = (
    gb11643.with_check_character("31011419410830134"),
    gb11643.with_check_character("31011419500101777"),
)


def secretary(tenant: str) -> Principal:
    return Principal(
        "users/sec", tenant, scopes=ROLES["village_secretary"] | {"empower:read"}, app="apps/x"
    )


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
    await create_tenants(server.channel, "sh/jd/at/va", "sh/jd/at/vb")
    yield server, tmp_path
    await server.channel.close()
    await server.running.stop()
    await component.close()


def _person(id_number: str, phone: str) -> people_pb.Person:
    return people_pb.Person(display_name="Fan Siyu", id_number=id_number, phone=phone)


async def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


async def test_unsigned_principal_claiming_a_village_is_refused(empower):
    server, _ = empower
    people = people_grpc.PeopleServiceStub(server.channel)
    payload = dict(secretary(A).to_metadata())[PRINCIPAL_METADATA_KEY]
    call = people.ListPeople(
        people_pb.ListPeopleRequest(parent="tenants/sh-jd-at-va"),
        metadata=((PRINCIPAL_METADATA_KEY, payload),),
    )
    assert await _code(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_another_villages_person_is_not_found_and_lists_stay_home(empower):
    server, _ = empower
    people = people_grpc.PeopleServiceStub(server.channel)
    created = await people.CreatePerson(
        people_pb.CreatePersonRequest(
            parent="tenants/sh-jd-at-vb", person=_person(ID_B, "13912345678")
        ),
        metadata=secretary(B).to_metadata(),
    )
    assert created.masked and created.id_number.startswith("310") and "*" in created.id_number
    for name in (created.name, created.name.replace("sh-jd-at-vb", "-")):
        call = people.GetPerson(
            people_pb.GetPersonRequest(name=name, purpose="check"),
            metadata=secretary(A).to_metadata(),
        )
        assert await _code(call) == grpc.StatusCode.NOT_FOUND
    listed = await people.ListPeople(
        people_pb.ListPeopleRequest(parent="tenants/sh-jd-at-va", purpose="check"),
        metadata=secretary(A).to_metadata(),
    )
    assert list(listed.people) == []
    call = people.ListPeople(
        people_pb.ListPeopleRequest(parent="tenants/sh-jd-at-vb", purpose="check"),
        metadata=secretary(A).to_metadata(),
    )
    assert await _code(call) == grpc.StatusCode.NOT_FOUND


async def test_gateway_only_methods_need_identity_verify(empower):
    server, _ = empower
    identity = identity_grpc.IdentityServiceStub(server.channel)
    district_admin = Principal("users/it", "sh/jd", scopes=ROLES["district_admin"])
    call = identity.LookupApiKey(
        identity_pb.LookupApiKeyRequest(key_id="x"), metadata=district_admin.to_metadata()
    )
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED
    call = identity.GetJwks(identity_pb.GetJwksRequest(), metadata=district_admin.to_metadata())
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_batch_registration_is_sealed_at_rest_and_audited_when_unmasked(empower):
    server, data = empower
    people = people_grpc.PeopleServiceStub(server.channel)
    numbers = [
        (gb11643.with_check_character(f"31011419600101{n:03d}"), f"1391234{n:04d}")
        for n in range(50)
    ]
    await people.BatchCreatePeople(
        people_pb.BatchCreatePeopleRequest(
            parent="tenants/sh-jd-at-va",
            requests=[people_pb.CreatePersonRequest(person=_person(i, p)) for i, p in numbers],
        ),
        metadata=secretary(A).to_metadata(),
    )
    raw = b"".join(path.read_bytes() for path in data.glob("empower*"))
    for id_number, phone in numbers:
        assert id_number.encode() not in raw and phone.encode() not in raw

    found = await people.ListPeople(
        people_pb.ListPeopleRequest(
            parent="tenants/sh-jd-at-va", filter=f'id_number = "{numbers[7][0]}"', purpose="visit"
        ),
        metadata=secretary(A).to_metadata(),
    )
    assert [p.id_number for p in found.people] == [numbers[7][0]]
    assert not found.people[0].masked

    auditor = Principal("users/aud", "sh/jd", scopes=ROLES["district_auditor"])
    entries = await people.ListAuditEntries(
        people_pb.ListAuditEntriesRequest(parent="tenants/sh-jd"), metadata=auditor.to_metadata()
    )
    assert [(e.subject, e.app, e.purpose) for e in entries.audit_entries] == [
        ("users/sec", "apps/x", "visit")
    ]
    assert list(entries.audit_entries[0].records) == [found.people[0].name]
    verified = await people.VerifyAuditLog(
        people_pb.VerifyAuditLogRequest(parent="tenants/sh-jd"), metadata=auditor.to_metadata()
    )
    # The five tenants the fixture created are administrative actions in the same chain.
    assert verified.ok and verified.checked == 5 + 1


async def test_a_bad_batch_names_the_entry_and_stores_nothing(empower):
    server, _ = empower
    people = people_grpc.PeopleServiceStub(server.channel)
    good = people_pb.CreatePersonRequest(person=_person(ID_A, "13812345678"))
    wrong_check = ID_A[:17] + ("0" if ID_A[17] != "0" else "1")
    bad = people_pb.CreatePersonRequest(person=_person(wrong_check, "13812345679"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await people.BatchCreatePeople(
            people_pb.BatchCreatePeopleRequest(parent="tenants/sh-jd-at-va", requests=[good, bad]),
            metadata=secretary(A).to_metadata(),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[1].person.id_number" in info.value.details()
    listed = await people.ListPeople(
        people_pb.ListPeopleRequest(parent="tenants/sh-jd-at-va", purpose="check"),
        metadata=secretary(A).to_metadata(),
    )
    assert list(listed.people) == []


async def test_district_admin_administers_over_grpc_and_every_action_is_audited(empower):
    """Issue 9.7/9.8 over real gRPC: Update/Delete/Enable/ResetUserPassword, UpdateApp,
    DeleteApp, UpdateTenant and DeleteTenant, with AIP update masks, in the audit chain."""
    server, _ = empower
    identity = identity_grpc.IdentityServiceStub(server.channel)
    tenants = tenant_grpc.EmpowerServiceStub(server.channel)
    people = people_grpc.PeopleServiceStub(server.channel)
    admin = Principal(
        "users/it", "sh/jd", roles=("district_admin",), scopes=ROLES["district_admin"]
    )
    meta = admin.to_metadata()
    user = await identity.CreateUser(
        identity_pb.CreateUserRequest(
            parent="tenants/sh-jd-at-va",
            user=identity_pb.User(
                username="va.secretary", display_name="Va", kind=1, roles=["village_secretary"]
            ),
            password="a-long-first-password",
        ),
        metadata=meta,
    )
    assert "people:read_sensitive" in user.scopes
    changed = await identity.UpdateUser(
        identity_pb.UpdateUserRequest(
            user=identity_pb.User(name=user.name, display_name="Va Li", roles=["carer"]),
            update_mask=FieldMask(paths=["display_name"]),
        ),
        metadata=meta,
    )
    assert (changed.display_name, list(changed.roles)) == ("Va Li", ["village_secretary"])
    bad_mask = identity.UpdateUser(
        identity_pb.UpdateUserRequest(
            user=identity_pb.User(name=user.name, username="other"),
            update_mask=FieldMask(paths=["username"]),
        ),
        metadata=meta,
    )
    assert await _code(bad_mask) == grpc.StatusCode.INVALID_ARGUMENT
    await identity.ResetUserPassword(
        identity_pb.ResetUserPasswordRequest(name=user.name, password="another-long-password"),
        metadata=meta,
    )
    await identity.DisableUser(identity_pb.DisableUserRequest(name=user.name), metadata=meta)
    enabled = await identity.EnableUser(
        identity_pb.EnableUserRequest(name=user.name), metadata=meta
    )
    assert not enabled.disabled
    created = await identity.CreateApp(
        identity_pb.CreateAppRequest(
            parent="tenants/sh-jd-at-va",
            app=identity_pb.App(display_name="Board", scopes=["events:read"], quota_per_minute=9),
        ),
        metadata=meta,
    )
    app = await identity.UpdateApp(
        identity_pb.UpdateAppRequest(
            app=identity_pb.App(name=created.app.name, quota_per_minute=60),
            update_mask=FieldMask(paths=["quota_per_minute"]),
        ),
        metadata=meta,
    )
    assert app.quota_per_minute == 60 and list(app.scopes) == ["events:read"]
    # Another village's secretary reaches none of it.
    other = secretary(B).to_metadata()
    assert (
        await _code(identity.DeleteApp(identity_pb.DeleteAppRequest(name=app.name), metadata=other))
        == grpc.StatusCode.NOT_FOUND
    )
    await identity.DeleteApp(identity_pb.DeleteAppRequest(name=app.name), metadata=meta)
    await identity.DeleteUser(identity_pb.DeleteUserRequest(name=user.name), metadata=meta)
    before = await tenants.GetTenant(
        tenant_pb.GetTenantRequest(name="tenants/sh-jd-at-vb"), metadata=meta
    )
    node = await tenants.UpdateTenant(
        tenant_pb.UpdateTenantRequest(
            tenant=tenant_pb.Tenant(name="tenants/sh-jd-at-vb", display_name="Vb Village")
        ),
        metadata=meta,
    )
    # Only the display name was given: the division code stays as it was.
    assert node.display_name == "Vb Village" and node.admin_code == before.admin_code != ""
    await tenants.DeleteTenant(
        tenant_pb.DeleteTenantRequest(name="tenants/sh-jd-at-vb"), metadata=meta
    )
    entries = await people.ListAuditEntries(
        people_pb.ListAuditEntriesRequest(parent="tenants/sh-jd", page_size=100), metadata=meta
    )
    actions = [e.action for e in reversed(entries.audit_entries)]
    assert actions == [
        "identity.users.create",
        "identity.users.update",
        "identity.users.reset_password",
        "identity.users.disable",
        "identity.users.enable",
        "identity.apps.create",
        "identity.api_keys.create",
        "identity.apps.update",
        "identity.apps.delete",
        "identity.users.delete",
        "identity.tenants.update",
        "identity.tenants.delete",
    ]
    assert all(e.subject == "users/it" for e in entries.audit_entries)
    # Reading the subtree's log is district IT's; verifying the whole chain is the auditor's.
    verify = people.VerifyAuditLog(
        people_pb.VerifyAuditLogRequest(parent="tenants/sh-jd"), metadata=meta
    )
    assert await _code(verify) == grpc.StatusCode.PERMISSION_DENIED

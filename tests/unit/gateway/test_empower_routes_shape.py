"""The tenant, identity, people and audit routes against stand-in empower servicers.

The servicers run in a real in-process gRPC server (the kit's, with its interceptor
verifying the signed principal), so each test sees the exact request the gateway
sends and the JSON it makes of the answer: unknown body fields refused, secrets never
echoed, the purpose forwarded, enums and timestamps converted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import Guard
from gateway.errors import install_handlers
from gateway.routers import identity_admin, people, tenants
from gateway.security.authenticator import Caller
from gateway.security.ratelimit import RateLimiter
from gateway.upstreams import Upstreams
from grassroots.empower.v1 import empower_service_pb2 as empower_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as empower_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.kit import context as ctx
from services.kit.component import ServiceComponent
from services.kit.components import COMPONENTS, NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.errors import NotFound
from services.kit.principal import Principal
from services.kit.scopes import ANY_PRINCIPAL, method_scopes
from services.kit.unimplemented import fill_unimplemented
from tests.conftest import InProcessServer, serve_in_process

VILLAGE = "sh-jiading-anting-xingming"
BASE = f"/v1/tenants/{VILLAGE}"
PASSWORD = "correct-horse-battery-staple"
KEY_TEXT = "grk_01jkey_s3cr3t-value-only-shown-once"
CREATED = Timestamp(seconds=1740817800)  # 2025-03-01T08:30:00Z
CREATED_TEXT = "2025-03-01T08:30:00Z"
REVOKED = Timestamp(seconds=1740821400)
REVOKED_TEXT = "2025-03-01T09:30:00Z"
SCOPES = frozenset(
    {
        "empower:read",
        "tenants:write",
        "users:write",
        "apps:write",
        "people:read",
        "people:write",
        "people:read_sensitive",
        "audit:read",
    }
)
# Tenants, identity and people: the services these routes call (forms, points and
# notices have routes and tests of their own).
SERVICES = COMPONENTS["empower"].service_names[:3]

Seen = list[tuple[str, Any, Principal | None]]


def _record(seen: Seen, method: str, request: Any) -> None:
    seen.append((method, request, ctx.current_principal()))


class FakeEmpower(empower_grpc.EmpowerServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def GetTenant(self, request, context):
        _record(self.seen, "GetTenant", request)
        return empower_pb.Tenant(
            name=request.name,
            path="sh/jiading/anting/xingming",
            display_name="Xingming Village",
            level=empower_pb.Tenant.LEVEL_VILLAGE,
            admin_code="310114102201",
            create_time=CREATED,
        )

    async def ListTenants(self, request, context):
        _record(self.seen, "ListTenants", request)
        child = empower_pb.Tenant(
            name=f"{request.parent}-g1",
            path="sh/jiading/anting/xingming/g1",
            display_name="Grid 1",
            level=empower_pb.Tenant.LEVEL_GRID,
            admin_code="G1",
            create_time=CREATED,
        )
        return empower_pb.ListTenantsResponse(tenants=[child], next_page_token="next")

    async def CreateTenant(self, request, context):
        _record(self.seen, "CreateTenant", request)
        tenant = empower_pb.Tenant()
        tenant.CopyFrom(request.tenant)
        tenant.name = f"{request.parent}-{request.tenant_id}"
        tenant.path = f"sh/jiading/anting/xingming/{request.tenant_id}"
        tenant.create_time.CopyFrom(CREATED)
        return tenant


class FakeIdentity(identity_grpc.IdentityServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @staticmethod
    def _key(app: str, key_id: str, revoked: bool = False) -> identity_pb.ApiKey:
        key = identity_pb.ApiKey(
            name=f"{app}/apiKeys/{key_id}", key_id=key_id, revoked=revoked, create_time=CREATED
        )
        if revoked:
            key.revoke_time.CopyFrom(REVOKED)
        return key

    async def CreateUser(self, request, context):
        _record(self.seen, "CreateUser", request)
        user = identity_pb.User()
        user.CopyFrom(request.user)
        user.name = f"{request.parent}/users/user_01"
        user.scopes[:] = ["events:read", "events:write"]
        user.create_time.CopyFrom(CREATED)
        return user

    async def GetUser(self, request, context):
        _record(self.seen, "GetUser", request)
        raise NotFound(f"user {request.name!r} not found")

    async def DisableUser(self, request, context):
        _record(self.seen, "DisableUser", request)
        return identity_pb.User(
            name=request.name,
            username="li.wei",
            kind=identity_pb.User.KIND_GRID_WORKER,
            disabled=True,
            create_time=CREATED,
        )

    async def CreateApp(self, request, context):
        _record(self.seen, "CreateApp", request)
        app = identity_pb.App()
        app.CopyFrom(request.app)
        app.name = f"{request.parent}/apps/app_01"
        app.create_time.CopyFrom(CREATED)
        return identity_pb.CreateAppResponse(
            app=app, api_key=self._key(app.name, "01jkey"), key=KEY_TEXT
        )

    async def CreateApiKey(self, request, context):
        _record(self.seen, "CreateApiKey", request)
        return identity_pb.CreateApiKeyResponse(
            api_key=self._key(request.parent, "01jkey2"), key=KEY_TEXT + "2"
        )

    async def ListApiKeys(self, request, context):
        _record(self.seen, "ListApiKeys", request)
        return identity_pb.ListApiKeysResponse(
            api_keys=[
                self._key(request.parent, "01jkey2"),
                self._key(request.parent, "01jkey", True),
            ]
        )

    async def RevokeApiKey(self, request, context):
        _record(self.seen, "RevokeApiKey", request)
        app, _, key_id = request.name.rpartition("/apiKeys/")
        return self._key(app, key_id, revoked=True)


class FakePeople(people_grpc.PeopleServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @staticmethod
    def _person(name: str, masked: bool) -> people_pb.Person:
        return people_pb.Person(
            name=name,
            display_name="Z*" if masked else "Zhang San",
            id_number="3101**********123X" if masked else "31011419500101123X",
            phone="138****0000" if masked else "13800000000",
            kind=people_pb.Person.KIND_ELDERLY_ALONE,
            gender="M",
            birth_date="1950-01-01",
            tags=["lives-alone"],
            masked=masked,
            create_time=CREATED,
        )

    async def CreatePerson(self, request, context):
        _record(self.seen, "CreatePerson", request)
        return self._person(f"{request.parent}/people/person_01", masked=True)

    async def GetPerson(self, request, context):
        _record(self.seen, "GetPerson", request)
        return self._person(request.name, masked=not request.purpose)

    async def ListPeople(self, request, context):
        _record(self.seen, "ListPeople", request)
        unmasked = people_pb.Person(name=f"{request.parent}/people/p2", create_time=CREATED)
        return people_pb.ListPeopleResponse(
            people=[self._person(f"{request.parent}/people/p1", True), unmasked]
        )

    async def ListAuditEntries(self, request, context):
        _record(self.seen, "ListAuditEntries", request)
        entry = people_pb.AuditEntry(
            name=f"{request.parent}/auditEntries/1",
            sequence=1,
            subject="users/officer",
            tenant="sh/jiading/anting/xingming",
            records=[f"{request.parent}/people/p1"],
            fields=["display_name", "phone"],
            purpose="home visit",
            create_time=CREATED,
            previous_hash="0" * 64,
            entry_hash="a" * 64,
        )
        return people_pb.ListAuditEntriesResponse(audit_entries=[entry])

    async def VerifyAuditLog(self, request, context):
        _record(self.seen, "VerifyAuditLog", request)
        return people_pb.VerifyAuditLogResponse(ok=True, checked=7)


for servicer, service_name in zip((FakeEmpower, FakeIdentity, FakePeople), SERVICES, strict=True):
    fill_unimplemented(servicer, service_name, "the real empower component")


@pytest.fixture
async def empower() -> AsyncIterator[tuple[InProcessServer, Seen]]:
    """The three empower services; any signed principal may call (the gateway checks scopes)."""
    seen: Seen = []
    scopes = {path: ANY_PRINCIPAL for path in method_scopes(*SERVICES)}
    component = ServiceComponent(
        [
            (FakeEmpower(seen), empower_grpc.add_EmpowerServiceServicer_to_server),
            (FakeIdentity(seen), identity_grpc.add_IdentityServiceServicer_to_server),
            (FakePeople(seen), people_grpc.add_PeopleServiceServicer_to_server),
        ],
        SERVICES,
        method_scopes=scopes,
    )
    server = await serve_in_process("empower", component)
    yield server, seen
    await server.channel.close()
    await server.running.stop()


@pytest.fixture
async def open_api(empower) -> AsyncIterator[Callable[..., Any]]:
    """`await open_api(scopes)`: a client of the three routers acting with those scopes."""
    server, _ = empower
    stack = AsyncExitStack()

    async def open_client(scopes: frozenset[str] = SCOPES) -> httpx.AsyncClient:
        who = Principal(subject="users/officer", tenant="sh/jiading/anting", scopes=scopes)
        app = FastAPI()
        install_handlers(app)
        for module in (tenants, identity_admin, people):
            app.include_router(module.router)
        app.state.guard = Guard(
            authenticator=None,
            limiter=RateLimiter(None),
            user_requests_per_minute=600,
            tenant_requests_per_minute=6000,
            anonymous_requests_per_minute=60,
            public_tenant="sh",
            fixed_caller=Caller(who, None),
        )
        discovery = StaticDiscovery({name: server.address for name in NAMES})
        upstreams = Upstreams(discovery, NAMES, timeout=5.0)
        stack.push_async_callback(upstreams.close)
        app.state.upstreams = upstreams
        transport = httpx.ASGITransport(app=app)
        return await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://gateway")
        )

    yield open_client
    await stack.aclose()


@pytest.fixture
async def api(open_api) -> httpx.AsyncClient:
    return await open_api()


@pytest.fixture
def seen(empower) -> Seen:
    return empower[1]


def only_call(seen: Seen, method: str) -> Any:
    calls = [request for name, request, _ in seen if name == method]
    assert len(calls) == 1, seen
    return calls[0]


async def test_tenant_node_has_lower_case_level_and_rfc3339_time(api, seen):
    response = await api.get(f"/v1/tenants/{VILLAGE}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": VILLAGE,
        "name": f"tenants/{VILLAGE}",
        "path": "sh/jiading/anting/xingming",
        "display_name": "Xingming Village",
        "level": "village",
        "admin_code": "310114102201",
        "create_time": CREATED_TEXT,
    }
    name, request, principal = seen[0]
    assert (name, request.name) == ("GetTenant", f"tenants/{VILLAGE}")
    assert principal is not None and principal.subject == "users/officer"


async def test_children_are_paged_and_created_under_the_node(api, seen):
    page = await api.get(f"{BASE}/children", params={"page_size": 10, "page_token": "t"})
    assert page.json()["tenants"][0]["level"] == "grid"
    assert page.json()["next_page_token"] == "next"
    listed = only_call(seen, "ListTenants")
    assert (listed.parent, listed.page_size, listed.page_token) == (f"tenants/{VILLAGE}", 10, "t")
    assert (await api.get(f"{BASE}/children", params={"page_size": 1001})).status_code == 400

    body = {"id": "g2", "display_name": "Grid 2", "level": "grid", "admin_code": "G2"}
    created = await api.post(f"{BASE}/children", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == f"{VILLAGE}-g2"
    assert created.headers["Location"] == f"/v1/tenants/{VILLAGE}-g2"
    request = only_call(seen, "CreateTenant")
    assert request.tenant_id == "g2"
    assert request.tenant.level == empower_pb.Tenant.LEVEL_GRID


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/children",
            {"id": "g3", "display_name": "G", "level": "grid", "admin_code": "G3", "path": "sh"},
            "path",
        ),
        (
            "/users",
            {"username": "li.wei", "display_name": "Li", "kind": "staff", "tenant": "sh"},
            "tenant",
        ),
        (
            "/users",
            {"username": "li.wei", "display_name": "Li", "kind": "staff", "scopes": ["audit:read"]},
            "scopes",
        ),
        (
            "/users",
            {"username": "li.wei", "display_name": "Li", "kind": "staff", "disabled": False},
            "disabled",
        ),
        ("/apps", {"display_name": "x", "scopes": [], "roles": ["district_admin"]}, "roles"),
        ("/apps", {"display_name": "x", "scopes": [], "owner": "users/someone"}, "owner"),
        ("/apps", {"display_name": "x", "scopes": [], "name": "tenants/sh/apps/a"}, "name"),
        (
            "/people",
            {
                "display_name": "x",
                "id_number": "31011419500101123X",
                "phone": "13800000000",
                "kind": "resident",
                "masked": False,
            },
            "masked",
        ),
    ],
)
async def test_bodies_refuse_fields_they_do_not_define(api, seen, path, body, field):
    """Mass assignment: a field a body does not define is refused by name, never forwarded."""
    response = await api.post(f"{BASE}{path}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["field_violations"]] == [field]
    assert "Extra inputs are not permitted" in error["field_violations"][0]["description"]
    assert seen == []


async def test_a_users_password_reaches_the_service_and_is_never_echoed(api, seen):
    body = {
        "username": "li.wei",
        "display_name": "Li Wei",
        "kind": "grid_worker",
        "roles": ["grid_worker"],
        "password": PASSWORD,
    }
    response = await api.post(f"{BASE}/users", json=body)
    assert response.status_code == 201, response.text
    assert PASSWORD not in response.text
    assert "password" not in response.json()
    assert response.json()["kind"] == "grid_worker"
    assert response.json()["create_time"] == CREATED_TEXT
    assert response.headers["Location"] == f"{BASE}/users/user_01"
    request = only_call(seen, "CreateUser")
    assert request.password == PASSWORD
    assert request.user.kind == identity_pb.User.KIND_GRID_WORKER
    assert list(request.user.roles) == ["grid_worker"]

    too_long = {**body, "password": "p" * 300}
    refused = await api.post(f"{BASE}/users", json=too_long)
    assert refused.status_code == 400
    assert "p" * 300 not in refused.text
    assert refused.json()["error"]["field_violations"][0]["field"] == "password"


async def test_user_errors_and_disable(api):
    missing = await api.get(f"{BASE}/users/user_99")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"
    disabled = await api.post(f"{BASE}/users/user_01:disable")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True
    assert disabled.json()["kind"] == "grid_worker"


async def test_a_new_apps_key_is_shown_once(api, seen):
    body = {"display_name": "Elderly care app", "scopes": ["events:read"]}
    response = await api.post(f"{BASE}/apps", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    created = response.json()
    assert created["key"] == KEY_TEXT
    assert response.text.count(KEY_TEXT) == 1
    assert "shown once" in created["note"]
    assert created["app"]["quota_per_minute"] == 600
    assert created["api_key"] == {
        "id": "01jkey",
        "name": f"tenants/{VILLAGE}/apps/app_01/apiKeys/01jkey",
        "key_id": "01jkey",
        "revoked": False,
        "create_time": CREATED_TEXT,
        "revoke_time": None,
    }
    assert only_call(seen, "CreateApp").app.quota_per_minute == 600

    keys = await api.get(f"{BASE}/apps/app_01/apiKeys")
    assert "s3cr3t" not in keys.text
    assert [k["revoked"] for k in keys.json()["api_keys"]] == [False, True]
    assert keys.json()["api_keys"][1]["revoke_time"] == REVOKED_TEXT

    rotated = await api.post(f"{BASE}/apps/app_01/apiKeys")
    assert rotated.status_code == 201
    assert rotated.json()["key"] == KEY_TEXT + "2"
    assert only_call(seen, "CreateApiKey").parent == f"tenants/{VILLAGE}/apps/app_01"

    for quota in (0, 1_000_001):
        bad = await api.post(f"{BASE}/apps", json={**body, "quota_per_minute": quota})
        assert bad.json()["error"]["field_violations"][0]["field"] == "quota_per_minute"


async def test_revoking_a_key_answers_its_record(api, seen):
    response = await api.delete(f"{BASE}/apps/app_01/apiKeys/01jkey")
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] is True
    assert response.json()["revoke_time"] == REVOKED_TEXT
    assert only_call(seen, "RevokeApiKey").name == f"tenants/{VILLAGE}/apps/app_01/apiKeys/01jkey"


async def test_person_is_created_with_enum_and_date(api, seen):
    body = {
        "display_name": "Zhang San",
        "id_number": "31011419500101123X",
        "phone": "13800000000",
        "kind": "elderly_alone",
        "birth_date": "1950-01-01",
        "tags": ["lives-alone"],
    }
    response = await api.post(f"{BASE}/people", json=body)
    assert response.status_code == 201, response.text
    person = response.json()
    assert (person["kind"], person["masked"], person["id"]) == ("elderly_alone", True, "person_01")
    assert person["create_time"] == CREATED_TEXT
    request = only_call(seen, "CreatePerson")
    assert request.person.kind == people_pb.Person.KIND_ELDERLY_ALONE
    assert request.person.birth_date == "1950-01-01"
    assert request.parent == f"tenants/{VILLAGE}"


async def test_purpose_comes_from_the_header_or_the_query(api, seen):
    by_header = await api.get(f"{BASE}/people/p1", headers={"X-Purpose": "home visit"})
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["masked"] is False
    assert by_header.json()["phone"] == "13800000000"
    both = await api.get(
        f"{BASE}/people/p1", params={"purpose": "query wins"}, headers={"X-Purpose": "header"}
    )
    assert both.status_code == 200
    encoded = await api.get(f"{BASE}/people/p1", headers={"X-Purpose": quote("入户走访")})
    assert encoded.status_code == 200
    none = await api.get(f"{BASE}/people/p1")
    assert none.json()["masked"] is True
    purposes = [request.purpose for name, request, _ in seen if name == "GetPerson"]
    assert purposes == ["home visit", "query wins", "入户走访", ""]
    assert seen[0][1].name == f"tenants/{VILLAGE}/people/p1"

    listed = await api.get(
        f"{BASE}/people",
        params={"filter": 'phone = "13800000000"', "page_size": 5},
        headers={"X-Purpose": "find a caller"},
    )
    assert listed.status_code == 200, listed.text
    # An unset kind is read as a resident, as the people service does.
    assert [p["kind"] for p in listed.json()["people"]] == ["elderly_alone", "resident"]
    request = only_call(seen, "ListPeople")
    assert (request.purpose, request.filter, request.page_size) == (
        "find a caller",
        'phone = "13800000000"',
        5,
    )


async def test_audit_entries_list_and_verify_and_cannot_be_changed(api, seen):
    entries = await api.get(f"{BASE}/auditEntries", params={"filter": 'subject = "users/x"'})
    assert entries.status_code == 200, entries.text
    entry = entries.json()["audit_entries"][0]
    assert (entry["sequence"], entry["purpose"], entry["create_time"]) == (
        1,
        "home visit",
        CREATED_TEXT,
    )
    assert only_call(seen, "ListAuditEntries").filter == 'subject = "users/x"'
    verified = await api.get(f"{BASE}/auditEntries:verify")
    assert verified.json() == {"ok": True, "checked": 7, "first_bad_sequence": None}
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        response = await api.request(method, f"{BASE}/auditEntries/1")
        assert response.status_code in (404, 405)
        response = await api.request(method, f"{BASE}/auditEntries")
        assert response.status_code == 405


async def test_routes_need_their_scope_before_any_call(open_api, seen):
    reader = await open_api(frozenset({"empower:read", "people:read"}))
    assert (await reader.get(f"{BASE}/auditEntries")).status_code == 403
    denied = await reader.post(f"{BASE}/apps", json={"display_name": "x", "scopes": []})
    assert denied.status_code == 403
    assert denied.json()["error"]["reason"] == "MISSING_SCOPE"
    assert "apps:write" in denied.json()["error"]["message"]
    assert (await reader.get(f"{BASE}/apps/app_01/apiKeys")).status_code == 403
    assert seen == []


def test_openapi_documents_the_shapes():
    app = FastAPI()
    for module in (tenants, identity_admin, people):
        app.include_router(module.router)
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert schemas["UserCreate"]["additionalProperties"] is False
    password = schemas["UserCreate"]["properties"]["password"]["anyOf"][0]
    assert password["writeOnly"] is True
    assert "password" not in schemas["UserOut"]["properties"]
    assert schemas["TenantOut"]["properties"]["create_time"]["format"] == "date-time"
    tags = {
        tag
        for operations in document["paths"].values()
        for operation in operations.values()
        for tag in operation["tags"]
    }
    # Binding a person to WeChat is listed under notices too.
    assert tags == {"tenants", "identity", "people", "audit", "notices"}
    audit_methods = {
        method
        for path, ops in document["paths"].items()
        if "auditEntries" in path
        for method in ops
    }
    assert audit_methods == {"get"}

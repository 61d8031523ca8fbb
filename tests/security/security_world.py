"""The world the security suite attacks: one real stack, the demo town, and the objects
and credentials every test needs.

Village A (xingming) is the attacker's side and village B (xiangyang) the victim's.
Both get a "super" user holding every role, so every scope a route may ask for: when
A's super user is refused B's objects, it is tenancy that refuses, never a missing
scope. B gets one object of every kind an id-taking route can address; A gets the
keys the authentication matrix needs (a key without any route's scope, a revoked
key) and an app for the fuzzer. The bad access tokens are minted here too: one
signed with the identity service's real (but expired) key, one forged with another
key under the real key id, and unsigned or wrongly-signed ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import shapely
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack.demo_identity import BOOTSTRAP, DEMO_APP_SCOPES, DemoCredentials
from devstack.stack import Stack
from grassroots.empower.v1 import datasets_service_pb2 as datasets_pb
from grassroots.empower.v1 import datasets_service_pb2_grpc as datasets_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from services.empower.domain.roles import ROLES, granted_scopes
from services.kit import gb11643, tenancy
from services.kit.sealing import Sealer

VILLAGE_A = "sh/jiading/anting/xingming"
VILLAGE_B = "sh/jiading/anting/xiangyang"
A = tenancy.path_to_id(VILLAGE_A)
B = tenancy.path_to_id(VILLAGE_B)
DISTRICT = "sh-jiading"
# Every role but "resident", whose scopes the others hold already: together they grant
# every scope any role grants (checked in `build`).
SUPER_ROLES = ("district_admin", "village_secretary", "district_auditor", "carer")
# A scope no route asks for: a key holding only this one may call nothing but /v1/me.
UNUSED_SCOPE = "care:read"
B_CATEGORY = "xiangyang.private_matter"
B_TWIN_ENTITY = "xiangyang-gauge-1"
B_LAYER = "xiangyang-private"
B_FEATURE = "b-feature-1"
SECURITY_DATASET = {
    "dataset_id": "security-register",
    "display_name": "Security suite register",
    "classification": "internal",
    "key_field": "id_number",
    "fields": [
        {"name": "id_number", "type": "id_number", "required": True},
        {"name": "address", "type": "address", "required": True},
    ],
}
# The stack's wait after a name's free failed sign-ins (the service's default is 1 s):
# longer than a loaded machine takes for a few password checks, shorter than a test.
SIGN_IN_FIRST_DELAY_SECONDS = 10
MAX_QUOTA = 1_000_000
# The smallest thing the events service takes as a photo: PNG's signature and a little.
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
# The gateway's per-address hourly number of reports without an account in this suite.
ANONYMOUS_REPORTS_PER_HOUR = 30


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def new_id_number(rng: secrets.SystemRandom) -> str:
    """A valid GB 11643 number born in the 1960s-80s in Jiading (invented)."""
    first17 = (
        f"310114{rng.randint(1960, 1989):04d}{rng.randint(1, 12):02d}"
        f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    )
    return gb11643.with_check_character(first17)


def new_phone(rng: secrets.SystemRandom) -> str:
    return f"139{rng.randint(0, 99_999_999):08d}"


@dataclass
class Account:
    """A person who signed in through POST /v1/auth/token."""

    username: str
    password: str
    access_token: str = ""
    refresh_token: str = ""
    subject: str = ""
    tenant: str = ""
    roles: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


@dataclass
class AppKey:
    app_id: str
    key_id: str
    key: str
    subject: str

    @property
    def headers(self) -> dict[str, str]:
        return api_key(self.key)


@dataclass
class VillageB:
    """One object of every kind in village B, for the cross-tenant table."""

    event_id: str = ""
    person_id: str = ""
    person_id_number: str = ""
    person_phone: str = ""
    user_id: str = ""
    username: str = ""
    app: AppKey | None = None
    layer_id: str = B_LAYER
    feature_id: str = B_FEATURE
    category: str = B_CATEGORY
    point: tuple[float, float] = (0.0, 0.0)
    handler_id: str = ""
    rule_id: str = ""
    task_id: str = ""
    points_account_id: str = ""
    credit_policy_id: str = "b-credit"
    credit_consent_id: str = ""
    form_id: str = "b-private-form"
    report_template_id: str = "b-report"
    report_run_id: str = ""
    twin_entity_id: str = B_TWIN_ENTITY
    subscription_id: str = ""
    emergency_plan_id: str = ""
    service_plan_id: str = ""
    service_order_id: str = ""
    notice_id: str = ""
    delivery_id: str = ""
    attachment_id: str = ""


@dataclass
class VillageA:
    event_id: str = ""
    person_id: str = ""
    point: tuple[float, float] = (0.0, 0.0)
    building_id: str = ""


@dataclass
class BadTokens:
    expired: str
    forged: str
    alg_none: str
    alg_confusion: str
    wrong_audience: str
    control: str  # minted exactly like `expired` but unexpired: proves the minting is right


@dataclass
class World:
    stack: Stack
    client: httpx.Client
    demo: DemoCredentials
    a_super: Account
    b_super: Account
    a_secretary: Account
    auditor: Account
    a: VillageA
    b: VillageB
    scopeless: AppKey
    revoked: AppKey
    fuzzer: AppKey
    bad: BadTokens
    # Every password, key and token the suite used: none may reach a log file.
    secrets: set[str] = field(default_factory=set)
    # A report made without an account in village A (`anonymous_receipt`).
    receipt: str = ""

    @property
    def url(self) -> str:
        return self.stack.config.gateway_url

    @property
    def log_dir(self) -> Path:
        assert self.stack.config.log_dir is not None
        return self.stack.config.log_dir

    @property
    def demo_key_a(self) -> str:
        return self.demo.app_keys[VILLAGE_A]

    def remember(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)

    def login(self, username: str, password: str) -> Account:
        account = login(self.client, username, password)
        self.remember(account.password, account.access_token, account.refresh_token)
        return account


# --- HTTP helpers --------------------------------------------------------------------


def waiting_out_the_anonymous_limit(send: Callable[[], httpx.Response]) -> httpx.Response:
    """`send` again while the answer is the per-address bucket of anonymous calls
    (shared by sign-in, Open311 reads and reports made without an account), for up to a
    minute: other tests from this address fill it, and it is not what they test."""
    deadline = time.monotonic() + 60
    while True:
        response = send()
        shared = response.status_code == 429 and "anonymous calls" in response.text
        if not shared or time.monotonic() > deadline:
            return response
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))


def anonymous_get(client: httpx.Client, path: str) -> httpx.Response:
    """A GET without credentials, waiting out the per-address anonymous limit."""
    return waiting_out_the_anonymous_limit(lambda: client.get(path))


def anonymous_post(client: httpx.Client, path: str, data: Mapping[str, str]) -> httpx.Response:
    """A form POST to a sign-in route, waiting out the per-address anonymous limit."""
    return waiting_out_the_anonymous_limit(lambda: client.post(path, data=dict(data)))


def login(client: httpx.Client, username: str, password: str) -> Account:
    response = anonymous_post(
        client,
        "/v1/auth/token",
        {"grant_type": "password", "username": username, "password": password},
    )
    assert response.status_code == 200, f"login {username}: {response.text}"
    issued = response.json()
    if issued.get("password_change_required"):
        # Someone else chose this password (test_password_change.py): the account's
        # first act is to choose its own, which Account.password then holds.
        password, issued = change_password(client, issued["access_token"], password)
    account = Account(username, password, issued["access_token"], issued["refresh_token"])
    me = client.get("/v1/me", headers=account.headers)
    assert me.status_code == 200, me.text
    who = me.json()
    account.subject, account.tenant = who["subject"], who["tenant"]
    account.roles, account.scopes = who["roles"], who["scopes"]
    return account


def change_password(
    client: httpx.Client, access_token: str, current: str
) -> tuple[str, dict[str, Any]]:
    """(the new password, the new tokens) after the account replaces `current`."""
    own = f"{current}-own-{secrets.token_hex(4)}"
    response = client.post(
        "/v1/me:changePassword",
        json={"current_password": current, "new_password": own},
        headers=bearer(access_token),
    )
    assert response.status_code == 200, f"change password: {response.text}"
    return own, response.json()


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} "
        f"{response.text[:500]}"
    )
    return response.json() if response.content else {}


def create_app(
    client: httpx.Client,
    who: Account,
    tenant: str,
    scopes: Iterable[str],
    quota: int = MAX_QUOTA,
    name: str = "Security suite app",
) -> AppKey:
    body = {"display_name": name, "scopes": list(scopes), "quota_per_minute": quota}
    created = expect(client.post(f"/v1/tenants/{tenant}/apps", json=body, headers=who.headers), 201)
    return AppKey(
        app_id=created["app"]["id"],
        key_id=created["api_key"]["id"],
        key=created["key"],
        subject=f"apps/{created['app']['id']}",
    )


def revoke(client: httpx.Client, who: Account, tenant: str, app: AppKey) -> httpx.Response:
    return client.delete(
        f"/v1/tenants/{tenant}/apps/{app.app_id}/apiKeys/{app.key_id}", headers=who.headers
    )


def point_in(client: httpx.Client, who: Account, tenant: str) -> tuple[float, float]:
    """A point inside one of the village's grid cells (checked with :locatePoints)."""
    page = expect(
        client.get(
            f"/v1/tenants/{tenant}/layers/grid-cells/features",
            params={"page_size": 1},
            headers=who.headers,
        ),
        200,
    )
    inside = shapely.geometry.shape(page["features"][0]["geometry"]).representative_point()
    located = expect(
        client.post(
            f"/v1/tenants/{tenant}:locatePoints",
            json={"longitudes": [inside.x], "latitudes": [inside.y]},
            headers=who.headers,
        ),
        200,
    )
    assert located["locations"][0]["village"] == tenancy.id_to_path(tenant), located
    return (inside.x, inside.y)


def emergency_plan_body(display_name: str = "Security suite plan") -> dict[str, Any]:
    return {
        "display_name": display_name,
        "levels": [{"level": level, "checklist": [f"Level {level} step"]} for level in (3, 2, 1)],
    }


def service_plan_body(point: tuple[float, float], carer: str) -> dict[str, Any]:
    """Daily visits starting within the hour: the scheduler makes the first orders at once."""
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    return {
        "display_name": "Security suite visits",
        "recurrence": "FREQ=DAILY",
        "start_time": start,
        "carers": [carer],
        "targets": [
            {"id": "t-1", "location": {"longitude": point[0], "latitude": point[1]}},
        ],
    }


def plans_of_b(client: httpx.Client, b_super: Account, b: VillageB) -> None:
    """B's emergency plan, service plan and the first order the scheduler makes from it."""
    b.emergency_plan_id = expect(
        client.post(
            f"/v1/tenants/{B}/emergencyPlans",
            json=emergency_plan_body("Xiangyang's own plan"),
            headers=b_super.headers,
        ),
        201,
    )["id"]
    b.service_plan_id = expect(
        client.post(
            f"/v1/tenants/{B}/servicePlans",
            json=service_plan_body(b.point, b_super.subject),
            headers=b_super.headers,
        ),
        201,
    )["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        orders = expect(client.get(f"/v1/tenants/{B}/serviceOrders", headers=b_super.headers), 200)[
            "service_orders"
        ]
        if orders:
            b.service_order_id = orders[0]["id"]
            return
        time.sleep(0.2)
    raise AssertionError("the command service made no service order for village B in 30 s")


def report_event(
    client: httpx.Client, who: Account, point: tuple[float, float], category: str, note: str
) -> str:
    body = {
        "category": category,
        "description": f"Security suite report: {note}",
        "location": {"longitude": point[0], "latitude": point[1]},
        "request_id": f"security-{secrets.token_hex(8)}",
    }
    url = f"/v1/tenants/{tenancy.path_to_id(who.tenant)}/events"
    return str(expect(client.post(url, json=body, headers=who.headers), 201)["id"])


# Reports without an account in the suite: a category of A's that never finds a
# duplicate, so every report at A's point is an event of its own.
PASSERBY_CATEGORY = "security.passerby"


def allow_anonymous_reports(world: World, tenant: str = A, per_hour: int = 1000) -> None:
    """Village A's staff let people without an account report there (ADR 35)."""
    body = {"anonymous_reports": True, "anonymous_reports_per_hour": per_hour}
    url = f"/v1/tenants/{tenant}/intakeSettings"
    expect(world.client.patch(url, json=body, headers=world.a_super.headers), 200)
    category = {
        "code": PASSERBY_CATEGORY,
        "display_name": "Reported without an account",
        "duplicate_radius_meters": 0,
        "duplicate_window_minutes": 0,
    }
    answer = world.client.post(
        f"/v1/tenants/{A}/categories", json=category, headers=world.a_super.headers
    )
    expect(answer, 201)


def passerby_post(client: httpx.Client, path: str, body: Mapping[str, Any]) -> httpx.Response:
    """A POST without credentials that waits out the address's per-minute bucket of
    anonymous calls, but not the limits on reports."""
    return waiting_out_the_anonymous_limit(lambda: client.post(path, json=dict(body)))


def report_anonymously(
    client: httpx.Client, point: tuple[float, float], tenant: str = A, **extra: Any
) -> httpx.Response:
    body = {
        "category": PASSERBY_CATEGORY,
        "description": "Security suite: reported without an account",
        "location": {"longitude": point[0], "latitude": point[1]},
        "request_id": secrets.token_urlsafe(24),
        **extra,
    }
    return passerby_post(client, f"/v1/tenants/{tenant}/events:reportAnonymously", body)


def photo_anonymously(
    client: httpx.Client,
    point: tuple[float, float],
    request_id: str,
    tenant: str = A,
    content: bytes = PNG_BYTES,
) -> httpx.Response:
    """A photo sent without an account for the report `request_id` will make at `point`."""
    return waiting_out_the_anonymous_limit(
        lambda: client.post(
            f"/v1/tenants/{tenant}/events:attachAnonymously",
            data={
                "request_id": request_id,
                "longitude": str(point[0]),
                "latitude": str(point[1]),
            },
            files={"content": ("photo.png", content, "image/png")},
        )
    )


def anonymous_receipt(world: World) -> str:
    """The receipt of one report made without an account in village A, made once."""
    if not world.receipt:
        allow_anonymous_reports(world)
        world.receipt = str(expect(report_anonymously(world.client, world.a.point), 200)["receipt"])
        world.remember(world.receipt)
    return world.receipt


_NEXT_STATE = {
    "reported": "accepted",
    "accepted": "dispatched",
    "dispatched": "in_progress",
    "in_progress": "resolved",
    "reopened": "in_progress",
}


def resolve_event(world: World, event_id: str) -> None:
    """Staff move an event on until it is resolved (dispatch may move it meanwhile)."""
    url = f"/v1/tenants/{A}/events/{event_id}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = expect(world.client.get(url, headers=world.a_super.headers), 200)["state"]
        if state == "resolved":
            return
        world.client.post(
            f"{url}:transition", json={"state": _NEXT_STATE[state]}, headers=world.a_super.headers
        )
    raise AssertionError(f"{event_id} not resolved after 30 s")


# --- the super users, over gRPC as the bootstrap principal ---------------------------


def wait_for_task(client: httpx.Client, who: Account, tenant: str, event_id: str) -> str:
    """The id of the task the command service made for an event (dispatch is a consumer
    of the bus, so the task appears shortly after the report)."""
    event = f"tenants/{tenant}/events/{event_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = expect(
            client.get(f"/v1/tenants/{tenant}/tasks", params={"event": event}, headers=who.headers),
            200,
        )
        if listed["tasks"]:
            return str(listed["tasks"][0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"no task for {event} after 60 s")


def create_super_user(stack: Stack, village: str, username: str, password: str) -> None:
    with grpc.insecure_channel(stack.config.address("empower")) as channel:
        identity_grpc.IdentityServiceStub(channel).CreateUser(
            identity_pb.CreateUserRequest(
                parent=tenancy.tenant_name(village),
                user=identity_pb.User(
                    username=username,
                    display_name=f"Security suite super user of {village}",
                    kind=identity_pb.User.KIND_STAFF,
                    roles=list(SUPER_ROLES),
                ),
                password=password,
            ),
            metadata=BOOTSTRAP.to_metadata(),
            timeout=10,
        )


def publish_security_register(stack: Stack) -> None:
    field = datasets_pb.DatasetField
    with grpc.insecure_channel(stack.config.address("empower")) as channel:
        datasets_grpc.DatasetsServiceStub(channel).CreateDataset(
            datasets_pb.CreateDatasetRequest(
                parent=f"tenants/{DISTRICT}",
                dataset_id=str(SECURITY_DATASET["dataset_id"]),
                dataset=datasets_pb.Dataset(
                    display_name=str(SECURITY_DATASET["display_name"]),
                    classification=datasets_pb.CLASSIFICATION_INTERNAL,
                    key_field="id_number",
                    fields=[
                        field(name="id_number", type=field.TYPE_ID_NUMBER, required=True),
                        field(name="address", type=field.TYPE_ADDRESS, required=True),
                    ],
                ),
            ),
            metadata=BOOTSTRAP.to_metadata(),
            timeout=10,
        )


# --- tokens --------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def active_signing_key(data_dir: Path) -> tuple[str, str]:
    """(kid, private PEM) of the identity service's active key, read from its store
    and opened with the stack's seal keys.

    Test-only: an attacker holding this key could sign anything; it is read here to
    mint a token that is correctly signed and merely expired.
    """
    database = data_dir / "empower.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT kid, private_pem FROM signing_keys WHERE retire_us IS NULL "
            "ORDER BY create_us DESC, kid DESC LIMIT 1"
        ).fetchone()
    assert row is not None, "the identity service has no active signing key"
    kid = str(row[0])
    return kid, open_signing_key(data_dir, kid, str(row[1]))


def open_signing_key(data_dir: Path, kid: str, stored: str) -> str:
    """The PEM of a stored (sealed) signing key, opened with the stack's seal keys."""
    keys = json.loads((data_dir / "dev-secrets.json").read_text())
    sealer = Sealer.from_env_value(
        keys["GRASSROOTS_EMPOWER_SEAL_KEYS"], keys["GRASSROOTS_EMPOWER_INDEX_KEY"]
    )
    return sealer.open(stored, record=kid, field="private_key")


def claims_of(account: Account, issued: int, expires: int) -> dict[str, Any]:
    """Claims as services/empower/domain/tokens.py issues them."""
    return {
        "iss": "grassroots",
        "aud": "grassroots",
        "sub": account.subject,
        "tenant": account.tenant,
        "kind": "user",
        "roles": list(account.roles),
        "scope": " ".join(sorted(account.scopes)),
        "iat": issued,
        "exp": expires,
        "jti": secrets.token_hex(13),
    }


def mint_bad_tokens(data_dir: Path, account: Account, jwks: Mapping[str, Any]) -> BadTokens:
    kid, pem = active_signing_key(data_dir)
    real = serialization.load_pem_private_key(pem.encode(), password=None)
    now = int(time.time())
    expired = jwt.encode(
        claims_of(account, now - 7200, now - 3600), real, algorithm="EdDSA", headers={"kid": kid}
    )
    control = jwt.encode(
        claims_of(account, now - 10, now + 600), real, algorithm="EdDSA", headers={"kid": kid}
    )
    forged = jwt.encode(
        claims_of(account, now - 10, now + 600),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    payload = _b64url(json.dumps(claims_of(account, now - 10, now + 600)).encode())
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    alg_none = f"{header}.{payload}."
    # HS256 keyed with the published public key: the classic algorithm confusion.
    public_x = next(k["x"] for k in jwks["keys"] if k["kid"] == kid)
    confusion_header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{confusion_header}.{payload}".encode()
    mac = hmac.new(public_x.encode(), signing_input, hashlib.sha256).digest()
    alg_confusion = f"{confusion_header}.{payload}.{_b64url(mac)}"
    wrong_audience = jwt.encode(
        {**claims_of(account, now - 10, now + 600), "aud": "another-platform"},
        real,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    return BadTokens(expired, forged, alg_none, alg_confusion, wrong_audience, control)


# --- the whole world -----------------------------------------------------------------


def build(stack: Stack, demo: DemoCredentials, client: httpx.Client) -> World:
    rng = secrets.SystemRandom()
    secrets_used: set[str] = set()

    supers: dict[str, Account] = {}
    for village, username in ((VILLAGE_A, "xingming.super"), (VILLAGE_B, "xiangyang.super")):
        password = secrets.token_urlsafe(18)
        create_super_user(stack, village, username, password)
        supers[village] = login(client, username, password)
    a_super, b_super = supers[VILLAGE_A], supers[VILLAGE_B]
    every_scope = sorted(granted_scopes(ROLES))
    assert sorted(a_super.scopes) == every_scope, a_super.scopes
    assert sorted(b_super.scopes) == every_scope, b_super.scopes

    secretary = demo.account("xingming.secretary")
    a_secretary = login(client, secretary.username, secretary.password)
    district_auditor = demo.account("district.auditor")
    auditor = login(client, district_auditor.username, district_auditor.password)

    # Village B's objects, made by B's own super user through the REST API.
    b = VillageB()
    b.point = point_in(client, b_super, B)
    expect(
        client.post(
            f"/v1/tenants/{B}/categories",
            json={"code": B_CATEGORY, "display_name": "Xiangyang's own matter"},
            headers=b_super.headers,
        ),
        201,
    )
    b.event_id = report_event(client, b_super, b.point, B_CATEGORY, "village B's event")
    b.attachment_id = str(
        expect(
            client.post(
                f"/v1/tenants/{B}/attachments",
                files={"content": ("b.png", PNG_BYTES, "image/png")},
                headers=b_super.headers,
            ),
            201,
        )["id"]
    )
    b.person_id_number, b.person_phone = new_id_number(rng), new_phone(rng)
    person = expect(
        client.post(
            f"/v1/tenants/{B}/people",
            json={
                "display_name": "Zhou Xiaoyun",
                "id_number": b.person_id_number,
                "phone": b.person_phone,
                "kind": "resident",
                "tags": ["security-suite"],
            },
            headers=b_super.headers,
        ),
        201,
    )
    b.person_id = person["id"]
    b.username = "xiangyang.clerk"
    clerk_password = secrets.token_urlsafe(18)
    user = expect(
        client.post(
            f"/v1/tenants/{B}/users",
            json={
                "username": b.username,
                "display_name": "Xiangyang clerk",
                "kind": "staff",
                "roles": ["grid_worker"],
                "password": clerk_password,
            },
            headers=b_super.headers,
        ),
        201,
    )
    b.user_id = user["id"]
    b.app = create_app(client, b_super, B, ["events:read"], name="Xiangyang's own app")
    handler = expect(
        client.post(
            f"/v1/tenants/{B}/handlers",
            json={
                "user": f"users/{b.user_id}",
                "roles": ["grid_worker"],
                "display_name": "Xiangyang clerk on duty",
                "position": {"longitude": b.point[0], "latitude": b.point[1]},
            },
            headers=b_super.headers,
        ),
        201,
    )
    b.handler_id = handler["id"]
    # A rule for roads: B's own event (its private category) stays unrouted, so it
    # keeps its state and the suite can check that nothing A sent moved it.
    rule = expect(
        client.post(
            f"/v1/tenants/{B}/routingRules",
            json={"category": "roads.*", "handler_role": "grid_worker"},
            headers=b_super.headers,
        ),
        201,
    )
    b.rule_id = rule["id"]
    b.task_id = wait_for_task(client, b_super, B, b.event_id)
    account = expect(
        client.post(
            f"/v1/tenants/{B}/pointsAccounts",
            json={"holder_kind": "household", "holder": "household/b-1", "display_name": "B 1"},
            headers=b_super.headers,
        ),
        201,
    )
    b.points_account_id = account["id"]
    expect(
        client.post(
            f"/v1/tenants/{B}/forms",
            json={
                "id": b.form_id,
                "display_name": "Xiangyang's own checklist",
                "fields": [{"key": "count", "label": "Count", "type": "integer"}],
            },
            headers=b_super.headers,
        ),
        201,
    )
    expect(
        client.post(
            f"/v1/tenants/{B}/forms/{b.form_id}/records",
            json={"values": {"count": "3"}, "request_id": "b-record-1"},
            headers=b_super.headers,
        ),
        201,
    )
    expect(
        client.post(
            f"/v1/tenants/{B}/reportTemplates",
            json={
                "id": b.report_template_id,
                "display_name": "Xiangyang's own report",
                "department": "Xiangyang office",
                "form": f"tenants/{B}/forms/{b.form_id}",
                "columns": [{"label": "Records", "aggregate": "count"}],
            },
            headers=b_super.headers,
        ),
        201,
    )
    run = expect(
        client.post(
            f"/v1/tenants/{B}/reportTemplates/{b.report_template_id}:run", headers=b_super.headers
        ),
        201,
    )
    b.report_run_id = run["id"]
    notice = expect(
        client.post(
            f"/v1/tenants/{B}/notices",
            json={
                "title": "Xiangyang only",
                "body": "A notice for Xiangyang's clerk",
                "audience": {"recipients": [f"users/{b.user_id}"]},
                "request_id": "b-notice-1",
            },
            headers=b_super.headers,
        ),
        201,
    )
    b.notice_id = notice["id"]
    deliveries = expect(
        client.get(f"/v1/tenants/{B}/notices/{b.notice_id}/deliveries", headers=b_super.headers),
        200,
    )
    b.delivery_id = deliveries["deliveries"][0]["id"]
    expect(
        client.post(
            f"/v1/tenants/{B}/pointsAccounts/{b.points_account_id}:credit",
            json={"amount": 40, "memo": "village B's own award", "request_id": "b-award-1"},
            headers=b_super.headers,
        ),
        200,
    )
    expect(
        client.post(
            f"/v1/tenants/{B}/creditPolicies",
            json={
                "id": b.credit_policy_id,
                "base_score": 400,
                "points_weight": 2,
                "deed_weight": 5,
                "bands": [{"band": "A", "min_score": 600}, {"band": "B", "min_score": 0}],
            },
            headers=b_super.headers,
        ),
        201,
    )
    assert b.app is not None
    consent = expect(
        client.post(
            f"/v1/tenants/{B}/creditConsents",
            json={
                "household": f"tenants/{B}/pointsAccounts/{b.points_account_id}",
                "consumer": f"tenants/{B}/apps/{b.app.app_id}",
                "purpose": "loan_assessment",
                "expire_time": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
                "request_id": "b-consent-1",
            },
            headers=b_super.headers,
        ),
        201,
    )
    b.credit_consent_id = consent["id"]
    expect(
        client.post(
            f"/v1/tenants/{B}/layers",
            json={
                "layer_id": B_LAYER,
                "display_name": "Xiangyang private points",
                "kind": "poi",
                "geometry_type": "Point",
                "fields": [{"name": "note", "type": "string"}],
            },
            headers=b_super.headers,
        ),
        201,
    )
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": B_FEATURE,
                "properties": {"note": "only for xiangyang"},
                "geometry": {"type": "Point", "coordinates": list(b.point)},
            }
        ],
    }
    expect(
        client.post(
            f"/v1/tenants/{B}/layers/{B_LAYER}/features:import",
            files={"file": ("b.geojson", json.dumps(collection), "application/geo+json")},
            data={"format": "geojson"},
            headers=b_super.headers,
        ),
        200,
    )

    # A twin entity of B's, made over NGSI-LD (the tenant is B's super user's own).
    expect(
        client.post(
            "/ngsi-ld/v1/entities",
            json={"id": f"urn:ngsi-ld:WaterLevelGauge:{B_TWIN_ENTITY}", "type": "WaterLevelGauge"},
            headers=b_super.headers,
        ),
        201,
    )
    plans_of_b(client, b_super, b)

    # A register the district publishes; B subscribes to it (A must never reach that).
    # Published over gRPC as district IT's tooling would: no sign-in from this address.
    publish_security_register(stack)
    subscription = expect(
        client.post(
            f"/v1/tenants/{B}/subscriptions",
            json={"dataset": f"tenants/{DISTRICT}/datasets/{SECURITY_DATASET['dataset_id']}"},
            headers=b_super.headers,
        ),
        201,
    )
    b.subscription_id = subscription["name"].rsplit("/", 1)[-1]

    # Village A's side: its own event, a known resident and building, and the keys.
    a = VillageA()
    a.point = point_in(client, a_super, A)
    a.event_id = report_event(client, a_super, a.point, "environment.garbage", "village A")
    people = expect(
        client.get(
            f"/v1/tenants/{A}/people",
            params={"page_size": 1},
            headers=api_key(demo.app_keys[VILLAGE_A]),
        ),
        200,
    )
    a.person_id = people["people"][0]["id"]
    buildings = expect(
        client.get(
            f"/v1/tenants/{A}/layers/buildings/features",
            params={"page_size": 1},
            headers=a_super.headers,
        ),
        200,
    )
    a.building_id = str(buildings["features"][0]["id"])
    scopeless = create_app(client, a_super, A, [UNUSED_SCOPE], name="Key without route scopes")
    revoked = create_app(client, a_super, A, ["events:read"], name="Revoked at once")
    expect(revoke(client, a_super, A, revoked), 200)
    fuzzer = create_app(client, a_super, A, DEMO_APP_SCOPES, name="Fuzzer (demo app scopes)")

    jwks = expect(client.get("/.well-known/jwks.json"), 200)
    bad = mint_bad_tokens(stack.config.data_dir, a_super, jwks)

    world = World(
        stack=stack,
        client=client,
        demo=demo,
        a_super=a_super,
        b_super=b_super,
        a_secretary=a_secretary,
        auditor=auditor,
        a=a,
        b=b,
        scopeless=scopeless,
        revoked=revoked,
        fuzzer=fuzzer,
        bad=bad,
        secrets=secrets_used,
    )
    for account in (a_super, b_super, a_secretary, auditor):
        world.remember(account.password, account.access_token, account.refresh_token)
    for account in demo.accounts:
        world.remember(account.password)
    world.remember(*demo.app_keys.values(), clerk_password)
    for key in (b.app, scopeless, revoked, fuzzer):
        assert key is not None
        world.remember(key.key)
    world.remember(bad.expired, bad.forged, bad.control, bad.alg_none, bad.alg_confusion)
    world.remember(bad.wrong_audience)
    return world

"""The demo town's people and keys: tenants, staff, grid workers, residents, one app per village.

Installed through the empower service's public gRPC contract, acting as the platform's
bootstrap principal (signed with the stack's key ring, as district IT's tooling would),
the first time a stack starts on a data directory. Passwords and API keys are random;
they are written owner-only to `demo-credentials.json` beside the data, because the
platform itself keeps only their hashes, and printed at every start.

Installation resumes: a password is saved before its user is created, each key as soon
as it is made, and every step treats "already there" as done, so a start interrupted
half-way (Ctrl-C) is finished by the next one instead of failing on ALREADY_EXISTS.

ALL PEOPLE HERE ARE INVENTED (see devstack.demo_village).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import grpc
import pyogrio

from devstack import demo_village
from devstack.demo_people import resident_to_new_person, residents_from_columns
from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.empower.domain.roles import ALL_SCOPES
from services.empower.people_api import person_message
from services.kit import tenancy
from services.kit.principal import Principal

CITY, DISTRICT, TOWN = "sh", "sh/jiading", "sh/jiading/anting"
VILLAGES = {
    "sh/jiading/anting/xingming": ("Xingming Village", "310114103201"),
    "sh/jiading/anting/xiangyang": ("Xiangyang Village", "310114103202"),
}
TREE = (
    ("", "sh", "Shanghai", tenant_pb.Tenant.LEVEL_CITY, "310000000000"),
    ("sh", "jiading", "Jiading District", tenant_pb.Tenant.LEVEL_DISTRICT, "310114000000"),
    ("sh/jiading", "anting", "Anting Town", tenant_pb.Tenant.LEVEL_TOWN, "310114103000"),
)
# Volunteers each village has (`xingming.volunteer1`, ...): the demo plan sends them all.
VOLUNTEERS = 2
DEMO_APP_SCOPES = ("map:read", "events:read", "events:write", "people:read")
# The town's operations dashboard: what a town officer may do, as an app.
TOWN_APP_SCOPES = (
    "map:read",
    "map:write",
    "events:read",
    "events:write",
    "events:configure",
    "events:handle",
    "events:manage",
    "command:read",
    "twin:read",
    "empower:read",
    "people:read",
)
BOOTSTRAP = Principal(subject="services/bootstrap", tenant=CITY, kind="service", scopes=ALL_SCOPES)


@dataclass
class DemoAccount:
    username: str
    password: str
    tenant: str
    roles: list[str]


@dataclass
class DemoCredentials:
    accounts: list[DemoAccount] = field(default_factory=list)
    app_keys: dict[str, str] = field(default_factory=dict)  # village path -> API key
    complete: bool = False  # every step done; later starts only check the tenant tree

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> DemoCredentials:
        data = json.loads(path.read_text())
        return cls(
            [DemoAccount(**a) for a in data["accounts"]],
            dict(data["app_keys"]),
            bool(data.get("complete", True)),
        )

    def account(self, username: str) -> DemoAccount:
        return next(a for a in self.accounts if a.username == username)

    def summary(self, gateway_url: str) -> str:
        lines = ["Demo town Anting (synthetic data): sign in with", ""]
        shown = [a for a in self.accounts if not a.username.startswith("gw-")]
        shown += [a for a in self.accounts if a.username.endswith("-01")]
        for account in shown:
            lines.append(
                f"  {account.username:<22} {account.password:<18} "
                f"{', '.join(account.roles)} @ {account.tenant}"
            )
        lines.append("  (all grid workers' passwords are in demo-credentials.json)")
        lines.append("")
        lines.append("Demo app keys (X-API-Key header):")
        for village, key in self.app_keys.items():
            lines.append(f"  {village.rsplit('/', 1)[-1]:<10} {key}")
        example = next(iter(self.app_keys.items()), None)
        if example is not None:
            village_id = tenancy.path_to_id(example[0])
            lines.append("")
            lines.append(
                f"  curl -H 'X-API-Key: {example[1]}' {gateway_url}/v1/tenants/{village_id}/events"
            )
        return "\n".join(lines)


def _password() -> str:
    return secrets.token_urlsafe(12)


def _metadata() -> tuple[tuple[str, bytes], ...]:
    return BOOTSTRAP.to_metadata()


async def _installed(tenants: tenant_grpc.EmpowerServiceAsyncStub) -> bool:
    try:
        await tenants.GetTenant(tenant_pb.GetTenantRequest(name="tenants/sh"), metadata=_metadata())
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _unless_exists(call: Awaitable[object]) -> None:
    """Make `call`; a resource that an earlier, interrupted install made counts as done."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


async def ensure_tenants(channel: grpc.aio.Channel, villages: dict[str, tuple[str, str]]) -> None:
    """The demo's tree down to its town, and `villages` (path: name, division code) in it.

    Nodes that exist are kept. Benchmarks call it for villages of their own: the composer
    installs a scenario only in a village that exists.
    """
    step = _Installer(channel, DemoCredentials(), lambda _: None)
    for parent, segment, display, level, code in TREE:
        await step.tenant(parent, segment, display, level, code)
    for village, (display, code) in villages.items():
        parent, segment = village.rsplit("/", 1)
        await step.tenant(parent, segment, display, tenant_pb.Tenant.LEVEL_VILLAGE, code)


class _Installer:
    """The steps of one install, each safe to repeat; credentials saved as they appear."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        credentials: DemoCredentials,
        save: Callable[[DemoCredentials], None],
    ) -> None:
        self.tenants = tenant_grpc.EmpowerServiceStub(channel)
        self.identity = identity_grpc.IdentityServiceStub(channel)
        self.people = people_grpc.PeopleServiceStub(channel)
        self.credentials = credentials
        self.save = save

    async def tenant(self, parent: str, segment: str, display: str, level: int, code: str) -> None:
        await _unless_exists(
            self.tenants.CreateTenant(
                tenant_pb.CreateTenantRequest(
                    parent=tenancy.tenant_name(parent) if parent else "",
                    tenant_id=segment,
                    tenant=tenant_pb.Tenant(display_name=display, level=level, admin_code=code),  # type: ignore[arg-type]
                ),
                metadata=_metadata(),
            )
        )

    async def user(
        self, tenant: str, username: str, display: str, kind: int, roles: list[str]
    ) -> None:
        known = {a.username: a for a in self.credentials.accounts}
        account = known.get(username)
        if account is None:
            # Saved before the user exists, so an interruption never loses a password.
            account = DemoAccount(username, _password(), tenant, roles)
            self.credentials.accounts.append(account)
            self.save(self.credentials)
        await _unless_exists(
            self.identity.CreateUser(
                identity_pb.CreateUserRequest(
                    parent=tenancy.tenant_name(tenant),
                    user=identity_pb.User(
                        username=username,
                        display_name=display,
                        kind=kind,  # type: ignore[arg-type]
                        roles=roles,
                    ),
                    password=account.password,
                ),
                metadata=_metadata(),
            )
        )

    async def residents(self, village: str, batch: list[people_pb.CreatePersonRequest]) -> None:
        # A batch is one transaction: either all of it is stored or none.
        await _unless_exists(
            self.people.BatchCreatePeople(
                people_pb.BatchCreatePeopleRequest(
                    parent=tenancy.tenant_name(village), requests=batch
                ),
                metadata=_metadata(),
            )
        )

    async def app(self, tenant: str, display: str, scopes: tuple[str, ...], quota: int) -> None:
        """The app named `display` in `tenant` and a key for it, made once."""
        if tenant in self.credentials.app_keys:
            return
        listed = await self.identity.ListApps(
            identity_pb.ListAppsRequest(parent=tenancy.tenant_name(tenant), page_size=100),
            metadata=_metadata(),
        )
        existing = next((a for a in listed.apps if a.display_name == display), None)
        if existing is not None:
            # Made by an interrupted install whose key was never saved: a new key.
            made = await self.identity.CreateApiKey(
                identity_pb.CreateApiKeyRequest(parent=existing.name), metadata=_metadata()
            )
            key = made.key
        else:
            created = await self.identity.CreateApp(
                identity_pb.CreateAppRequest(
                    parent=tenancy.tenant_name(tenant),
                    app=identity_pb.App(
                        display_name=display, scopes=list(scopes), quota_per_minute=quota
                    ),
                ),
                metadata=_metadata(),
            )
            key = created.key
        self.credentials.app_keys[tenant] = key
        self.save(self.credentials)


def _rows(demo_gpkg: Path, layer: str) -> list[dict[str, object]]:
    meta, _fids, _geometry, columns = pyogrio.raw.read(
        str(demo_gpkg), layer=layer, read_geometry=False
    )
    names = list(meta["fields"])
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _residents(demo_gpkg: Path) -> dict[str, list[people_pb.CreatePersonRequest]]:
    """The demo residents as registration requests, by village (the registry's own rules
    decide who is elderly and living alone)."""
    today = date.today()
    by_village: dict[str, list[people_pb.CreatePersonRequest]] = {v: [] for v in VILLAGES}
    for resident in residents_from_columns(demo_village.residents_for(demo_gpkg)):
        by_village[resident.tenant].append(
            people_pb.CreatePersonRequest(
                parent=tenancy.tenant_name(resident.tenant),
                person=person_message(resident_to_new_person(resident, today)),
            )
        )
    return by_village


def _grid_workers(demo_gpkg: Path) -> list[tuple[str, str, str, str]]:
    """(village path, grid cell id, grid worker id, name) per grid cell."""
    return [
        (
            str(r["tenant"]),
            str(r["grid_cell_id"]),
            str(r["grid_worker_id"]),
            str(r["grid_worker_name"]),
        )
        for r in _rows(demo_gpkg, "grid_cells")
    ]


async def install(
    channel: grpc.aio.Channel,
    demo_gpkg: Path,
    saved: DemoCredentials | None,
    save: Callable[[DemoCredentials], None],
) -> DemoCredentials:
    """Install the demo identities, or finish an install that was interrupted.

    `saved` is what an earlier install wrote (possibly part-way); `save` is called with
    the credentials whenever a password or key is added, and once more when complete.
    """
    tenants = tenant_grpc.EmpowerServiceStub(channel)
    if saved is not None and saved.complete and await _installed(tenants):
        return saved
    credentials = saved if saved is not None else DemoCredentials()
    credentials.complete = False
    step = _Installer(channel, credentials, save)
    await ensure_tenants(channel, VILLAGES)
    workers = _grid_workers(demo_gpkg)
    for village, cell, _worker, _name in workers:
        await step.tenant(village, cell.rsplit("-", 1)[-1], cell, tenant_pb.Tenant.LEVEL_GRID, cell)
    staff = identity_pb.User.KIND_STAFF
    await step.user(DISTRICT, "district.it", "District IT", staff, ["district_admin"])
    await step.user(DISTRICT, "district.auditor", "District auditor", staff, ["district_auditor"])
    await step.user(TOWN, "anting.officer", "Anting town officer", staff, ["town_officer"])
    for village in VILLAGES:
        slug = village.rsplit("/", 1)[-1]
        await step.user(
            village, f"{slug}.secretary", f"{slug.title()} secretary", staff, ["village_secretary"]
        )
    for village, _cell, worker, name in workers:
        await step.user(village, worker, name, identity_pb.User.KIND_GRID_WORKER, ["grid_worker"])
    volunteer = identity_pb.User.KIND_VOLUNTEER
    for village in VILLAGES:
        slug = village.rsplit("/", 1)[-1]
        for n in range(1, VOLUNTEERS + 1):
            await step.user(
                village,
                f"{slug}.volunteer{n}",
                f"{slug.title()} volunteer {n}",
                volunteer,
                ["volunteer"],
            )
        await step.user(village, f"{slug}.carer", f"{slug.title()} carer", volunteer, ["carer"])
    for village, batch in _residents(demo_gpkg).items():
        for start in range(0, len(batch), 1000):
            await step.residents(village, batch[start : start + 1000])
    for village, (display, _code) in VILLAGES.items():
        await step.app(village, f"{display} demo app", DEMO_APP_SCOPES, 600)
    await step.app(TOWN, "Anting town operations", TOWN_APP_SCOPES, 100_000)
    credentials.complete = True
    save(credentials)
    return credentials

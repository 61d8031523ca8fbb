"""The composer: plan, apply, upgrade and uninstall a scenario for one village.

Everything goes through the components' public gRPC contracts with a signed principal
(the kit's channels attach it), never their databases. Empower's catalog keeps the
install record: version, the village's overrides, state and the resources the
scenario owns or shares (ADR 26).

Apply is resumable. Before touching a component the record is written as
`incomplete` with every resource the apply may make; each step is idempotent (keyed
resources by their id, plans by a request id derived from their specification), so
an apply that stopped half-way is finished by the next one, and until then the
record says `incomplete`.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.empower.v1 import catalog_service_pb2 as catalog_pb
from grassroots.empower.v1 import empower_service_pb2 as empower_pb
from scenarios.composer.kinds import KINDS, Stubs
from scenarios.composer.manifest import Manifest, ManifestError, resolve_settings
from scenarios.composer.plan import (
    RELEASED_STAYS,
    Action,
    Op,
    Plan,
    PlanBlocked,
    Record,
    Recorded,
    blame,
    desired_of,
    diff,
    own_only,
    seen_digest,
    version_key,
)
from services.kit import context as ctx
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.principal import Principal
from services.kit.status import failure_of

COMPONENTS = ("map", "events", "command", "twin", "empower")
COMPOSER_SCOPES = frozenset(
    {
        "catalog:read",
        "scenarios:install",
        "events:read",
        "events:configure",
        "command:read",
        "command:write",
        "twin:read",
        "twin:write",
        "map:read",
        "map:write",
        "empower:read",
        "points:write",
        "forms:write",
        "reports:read",
        "notices:send",
    }
)
_ITEM_PREFIX = "catalogItems/scenario-"
_PENDING = "pending:"
_STATE = {
    catalog_pb.Installation.STATE_COMPLETE: "complete",
    catalog_pb.Installation.STATE_INCOMPLETE: "incomplete",
    catalog_pb.Installation.STATE_UNSPECIFIED: "complete",
}


def composer_principal(village: str) -> Principal:
    """The composer as a platform service acting for one village."""
    return Principal(
        subject="services/scenario-composer", tenant=village, kind="service", scopes=COMPOSER_SCOPES
    )


class ApplyError(RuntimeError):
    """A component refused a step; the record stays `incomplete` until an apply finishes.

    `path` names the manifest field at fault when the component named one.
    """

    def __init__(self, path: str, message: str, code: str = "") -> None:
        self.path = path
        self.code = code
        self.reason = message
        super().__init__(f"{path}: {message}")


class NotAVillage(ManifestError):
    """The target is not a village of the tenant tree: `found` is false when no such node
    exists at all, true for a node of another level (a town, a grid cell)."""

    def __init__(self, village: str, message: str, *, found: bool) -> None:
        self.found = found
        super().__init__("village", message)


@dataclass(frozen=True)
class Applied:
    """What an apply, upgrade or uninstall did."""

    plan: Plan
    installation: str  # the record's name; empty once uninstalled
    state: str  # "complete", "incomplete" or "removed"
    done: tuple[Action, ...]


@dataclass(frozen=True)
class Installed:
    """A scenario as a village has it, from empower's install record."""

    name: str
    village: str
    scenario: str
    version: str
    state: str
    overrides: Mapping[str, Any]
    resources: tuple[Recorded, ...]
    installer: str
    update_time: datetime | None


def _record(message: catalog_pb.Installation) -> Record:
    return Record(
        name=message.name,
        scenario=message.catalog_item.removeprefix(_ITEM_PREFIX),
        version=message.version,
        complete=_STATE[message.state] == "complete",
        settings=json_format.MessageToDict(message.settings),
        resources=tuple(
            Recorded(r.name, r.kind, r.key, r.digest, r.owned) for r in message.resources
        ),
    )


def _installed(village: str, message: catalog_pb.Installation) -> Installed:
    record = _record(message)
    return Installed(
        name=message.name,
        village=village,
        scenario=record.scenario,
        version=record.version,
        state=_STATE[message.state],
        overrides=record.settings,
        resources=record.resources,
        installer=message.installer,
        update_time=(
            message.update_time.ToDatetime(tzinfo=UTC) if message.HasField("update_time") else None
        ),
    )


def _resources(actions: Iterable[Action]) -> list[catalog_pb.InstalledResource]:
    return [
        catalog_pb.InstalledResource(
            name=a.name or f"{_PENDING}{a.kind}/{a.key}",
            kind=a.kind,
            key=a.key,
            digest=a.digest,
            owned=a.owned,
        )
        for a in actions
    ]


class Composer:
    """Installs scenarios in villages through the components' public APIs."""

    def __init__(
        self,
        channels: Mapping[str, grpc.aio.Channel],
        principal_for: Callable[[str], Principal] = composer_principal,
    ) -> None:
        self.channels = dict(channels)
        self.stubs = Stubs(self.channels)
        self.principal_for = principal_for

    @classmethod
    def connect(
        cls,
        addresses: Mapping[str, str],
        principal_for: Callable[[str], Principal] = composer_principal,
        *,
        timeout: float = 10.0,
    ) -> Composer:
        """Channels to each component (`{"map": "127.0.0.1:50051", ...}`)."""
        channels = {c: open_channel(addresses[c], default_timeout=timeout) for c in COMPONENTS}
        return cls(channels, principal_for)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

    async def __aenter__(self) -> Composer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # ---- reading -----------------------------------------------------------------------

    async def installed(self, village: str) -> list[Installed]:
        """Every scenario installed in the village, complete or not."""
        with _Acting(self.principal_for(village)):
            return [_installed(village, m) for m in await self._records(village)]

    async def show(self, village: str, scenario: str) -> Installed | None:
        return next((i for i in await self.installed(village) if i.scenario == scenario), None)

    async def _records(self, village: str) -> list[catalog_pb.Installation]:
        found: list[catalog_pb.Installation] = []
        token = ""
        while True:
            page = await self.stubs.catalog.ListInstallations(
                catalog_pb.ListInstallationsRequest(
                    parent=tenancy.tenant_name(village), page_size=1000, page_token=token
                )
            )
            found.extend(page.installations)
            token = page.next_page_token
            if not token:
                break
        prefix = tenancy.tenant_name(village) + "/installations/"
        return [m for m in found if m.name.startswith(prefix)]

    async def _actual(self, parent: str, kinds: Iterable[str]) -> dict[str, dict[str, Message]]:
        names = sorted(set(kinds))
        lists = await asyncio.gather(*(KINDS[k].list_all(self.stubs, parent) for k in names))
        return {k: own_only(parent, listed) for k, listed in zip(names, lists, strict=True)}

    async def _on_shelf(self, parent: str, item: str) -> bool:
        """Whether the catalog lists the template (empower records installs of those only)."""
        token = ""
        while True:
            page = await self.stubs.tenants.ListCatalogItems(
                empower_pb.ListCatalogItemsRequest(
                    parent=parent, filter='kind = "scenario"', page_size=100, page_token=token
                )
            )
            if any(i.name == item for i in page.catalog_items):
                return True
            token = page.next_page_token
            if not token:
                return False

    async def _roles_missing(self, parent: str, roles: Sequence[str]) -> list[str]:
        if not roles:
            return []
        staffed: set[str] = set()
        token = ""
        while True:
            page = await self.stubs.command.ListHandlerProfiles(
                command_pb.ListHandlerProfilesRequest(
                    parent=parent, page_size=1000, page_token=token
                )
            )
            for profile in page.handler_profiles:
                staffed.update(profile.roles)
            token = page.next_page_token
            if not token:
                break
        return [r for r in roles if r not in staffed]

    # ---- planning ----------------------------------------------------------------------

    async def plan(
        self,
        village: str,
        manifest: Manifest,
        overrides: Mapping[str, Any] | None = None,
        *,
        reset: bool = False,
        allow_downgrade: bool = False,
    ) -> Plan:
        """What applying `manifest` would change. The village's recorded overrides are kept
        and `overrides` are merged over them (`None`: keep them as they are); `{}` or
        `reset=True` starts from the manifest's defaults instead. A manifest older than the
        installed version is blocked unless `allow_downgrade`."""
        with _Acting(self.principal_for(village)):
            return await self._plan(village, manifest, overrides, reset, allow_downgrade)

    async def _village(self, village: str) -> None:
        """Scenarios are installed in an existing village node, never a town, a grid cell
        or a path nobody made (the tenant tree is empower's)."""
        try:
            node = await self.stubs.tenants.GetTenant(
                empower_pb.GetTenantRequest(name=tenancy.tenant_name(village))
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            raise NotAVillage(village, f"no village {village}", found=False) from None
        if node.level != empower_pb.Tenant.LEVEL_VILLAGE:
            raise NotAVillage(
                village, f"{node.path} is not a village: scenarios are installed in one", found=True
            )

    async def _plan(
        self,
        village: str,
        manifest: Manifest,
        overrides: Mapping[str, Any] | None,
        reset: bool = False,
        allow_downgrade: bool = False,
    ) -> Plan:
        await self._village(village)
        parent = tenancy.tenant_name(village)
        records = [_record(m) for m in await self._records(village)]
        mine = next((r for r in records if r.scenario == manifest.id), None)
        others = [r for r in records if r.scenario != manifest.id]
        kept = {  # what the village chose, where the version still has it
            k: _typed(manifest, k, v)
            for k, v in (mine.settings if mine else {}).items()
            if k in manifest.settings
        }
        if reset or (overrides is not None and not overrides):
            kept = {}
        overrides = {**kept, **(overrides or {})}
        settings = resolve_settings(manifest, overrides)
        desired = desired_of(manifest, settings, parent, overrides)
        kinds = {d.declared.kind for d in desired} | {
            r.kind for r in (mine.resources if mine else ())
        }
        actual, missing, shelved = await asyncio.gather(
            self._actual(parent, kinds),
            self._roles_missing(parent, manifest.handler_roles),
            self._on_shelf(parent, manifest.catalog_item),
        )
        plan = diff(
            parent, manifest.id, manifest.version, dict(overrides), desired, actual, mine, others
        )
        warnings = tuple(
            f"no handler in {village} has the role {role!r} the scenario dispatches to"
            for role in missing
        ) + tuple(
            f"{a.kind} {a.key}: {RELEASED_STAYS}" for a in plan.actions if a.note == RELEASED_STAYS
        )
        blockers = plan.blockers
        if not shelved:
            blockers += (
                f"{manifest.id} is not a template of the catalog, so empower keeps no install "
                f"record of it: put its manifest on the shelf first (scenarios/{manifest.id}/"
                "manifest.yaml of the platform); --manifest changes a template of the shelf",
            )
        if mine is not None and version_key(manifest.version) < version_key(mine.version):
            if not mine.complete:  # the newer version never finished: going back is fine
                warnings += (
                    f"{mine.version} stopped half-way and never finished; this goes back "
                    f"to {manifest.version}",
                )
            elif allow_downgrade:
                warnings += (f"a downgrade from {mine.version}: allowed",)
            else:
                blockers += (
                    f"{manifest.version} is older than the installed {mine.version}: a "
                    "downgrade is refused unless allowed (--allow-downgrade, allow_downgrade); "
                    f"or uninstall {manifest.id} first, then install {manifest.version}",
                )
        return Plan(**{**plan.__dict__, "warnings": warnings, "blockers": blockers})

    async def plan_uninstall(self, village: str, scenario: str) -> Plan:
        with _Acting(self.principal_for(village)):
            return await self._plan_uninstall(village, scenario)

    async def _plan_uninstall(self, village: str, scenario: str) -> Plan:
        await self._village(village)
        parent = tenancy.tenant_name(village)
        records = [_record(m) for m in await self._records(village)]
        mine = next((r for r in records if r.scenario == scenario), None)
        if mine is None:
            raise ManifestError("scenario", f"{scenario!r} is not installed in {village}")
        others = [r for r in records if r.scenario != scenario]
        actual = await self._actual(parent, {r.kind for r in mine.resources})
        return diff(parent, scenario, "", mine.settings, [], actual, mine, others)

    # ---- changing ----------------------------------------------------------------------

    async def apply(
        self,
        village: str,
        manifest: Manifest,
        overrides: Mapping[str, Any] | None = None,
        *,
        reset: bool = False,
        allow_downgrade: bool = False,
        expected_plan: str = "",
    ) -> Applied:
        """Make the village as the manifest says (install, finish, or change settings);
        overrides as for `plan`. `expected_plan` is the digest of the plan the caller
        checked: anything else is refused (PlanChanged) before a step runs."""
        with _Acting(self.principal_for(village)):
            plan = await self._plan(village, manifest, overrides, reset, allow_downgrade)
            plan.check_digest(expected_plan)
            return await self._apply(village, manifest, plan)

    async def upgrade(
        self,
        village: str,
        manifest: Manifest,
        overrides: Mapping[str, Any] | None = None,
        *,
        reset: bool = False,
        allow_downgrade: bool = False,
        expected_plan: str = "",
    ) -> Applied:
        """Move an installed scenario to the manifest's version, keeping the village's
        overrides (merged with any given, as for `plan`); `expected_plan` as for `apply`."""
        with _Acting(self.principal_for(village)):
            plan = await self._plan(village, manifest, overrides, reset, allow_downgrade)
            if plan.record is None:
                raise ManifestError("scenario", f"{manifest.id!r} is not installed in {village}")
            plan.check_digest(expected_plan)
            return await self._apply(village, manifest, plan)

    async def uninstall(self, village: str, scenario: str, *, expected_plan: str = "") -> Applied:
        """Remove what the scenario owns, keep what others use, then forget the record;
        `expected_plan` as for `apply`."""
        with _Acting(self.principal_for(village)):
            plan = await self._plan_uninstall(village, scenario)
            assert plan.record is not None
            plan.check_digest(expected_plan)
            if plan.blockers:  # refused before any step, so nothing is left half-way
                raise PlanBlocked("plan", "; ".join(plan.blockers))
            await self._write_record(plan, plan.record.name, list(plan.actions), complete=False)
            done = await self._run(plan, manifest_source="")
            await self.stubs.catalog.DeleteInstallation(
                catalog_pb.DeleteInstallationRequest(name=plan.record.name)
            )
            return Applied(plan, "", "removed", done)

    async def _apply(self, village: str, manifest: Manifest, plan: Plan) -> Applied:
        if plan.blockers:
            raise PlanBlocked("plan", "; ".join(plan.blockers), manifest.source)
        record_name = plan.record.name if plan.record else ""
        if plan.empty:
            return Applied(plan, record_name, "complete", ())
        # Everything the apply may make or still owns is listed before any step runs.
        listed = list(plan.actions)
        if plan.record is None:
            created = await self.stubs.catalog.CreateInstallation(
                catalog_pb.CreateInstallationRequest(
                    parent=tenancy.tenant_name(village),
                    installation=self._installation(plan, listed, complete=False),
                )
            )
            record_name = created.name
        elif plan.changes or plan.record.complete:
            await self._write_record(plan, record_name, listed, complete=False)
        try:
            done = await self._run(plan, manifest.source)
        except ApplyError:
            if plan.record is not None:  # the next apply goes back to what the village chose
                back = Plan(
                    **{
                        **plan.__dict__,
                        "to_version": plan.record.version,
                        "settings": plan.record.settings,
                    }
                )
                await self._write_record(back, record_name, listed, complete=False)
            raise
        final = [_named(a, done) for a in plan.kept()]
        await self._write_record(plan, record_name, final, complete=True)
        return Applied(plan, record_name, "complete", done)

    def _installation(
        self, plan: Plan, actions: Sequence[Action], *, complete: bool, name: str = ""
    ) -> catalog_pb.Installation:
        message = catalog_pb.Installation(
            name=name,
            catalog_item=f"{_ITEM_PREFIX}{plan.scenario}",
            version=plan.to_version or plan.from_version,
            state=(
                catalog_pb.Installation.STATE_COMPLETE
                if complete
                else catalog_pb.Installation.STATE_INCOMPLETE
            ),
            resources=_resources(actions),
        )
        message.settings.update(dict(plan.settings))
        return message

    async def _write_record(
        self, plan: Plan, name: str, actions: Sequence[Action], *, complete: bool
    ) -> None:
        await self.stubs.catalog.UpdateInstallation(
            catalog_pb.UpdateInstallationRequest(
                installation=self._installation(plan, actions, complete=complete, name=name),
                update_mask=field_mask_pb2.FieldMask(
                    paths=["version", "state", "settings", "resources"]
                ),
            )
        )

    async def _run(self, plan: Plan, manifest_source: str) -> tuple[Action, ...]:
        """The plan's steps, kind by kind in order; steps of one kind run together."""
        done: list[Action] = []
        steps = [a for a in plan.actions if a.op not in (Op.KEEP, Op.RELEASE)]
        verb = "uninstalled" if plan.uninstall else f"{plan.to_version} applied"
        reason = f"scenario {plan.scenario} {verb} by the scenario composer"
        for _, group in itertools.groupby(steps, key=lambda a: (a.op in (Op.DELETE,), a.kind)):
            batch = list(group)
            done.extend(
                await asyncio.gather(
                    *(self._step(a, plan.village, plan.settings, reason) for a in batch)
                )
            )
        return tuple(done)

    async def _step(
        self, action: Action, parent: str, overrides: Mapping[str, Any], reason: str = ""
    ) -> Action:
        kind = KINDS[action.kind]
        deleted = False
        try:
            if action.op == Op.UPDATE and kind.update is not None:
                assert action.desired is not None
                made = await kind.update(
                    self.stubs,
                    action.name,
                    action.desired.message,
                    action.desired.written,
                    reason,
                )
                return _made(action, made)
            if action.op == Op.DELETE or (action.op == Op.REPLACE and kind.delete is not None):
                assert kind.delete is not None
                await _unless(kind.delete(self.stubs, action.name), grpc.StatusCode.NOT_FOUND)
                if action.op == Op.DELETE:
                    return action
                deleted = True
            assert action.desired is not None
            request_id = f"sc-{action.kind}-{action.key}-{action.digest}"[:128]
            made = await _unless(
                kind.create(self.stubs, parent, action.key, action.desired.message, request_id),
                grpc.StatusCode.ALREADY_EXISTS,
            )
        except grpc.aio.AioRpcError as exc:
            error = _apply_error(action, exc, overrides)
            if deleted and action.previous is not None:
                raise await self._put_back(action, parent, error) from None
            raise error from None
        return _made(action, made)

    async def _put_back(self, action: Action, parent: str, error: ApplyError) -> ApplyError:
        """A replace whose create was refused creates the deleted resource again, so the
        village keeps what it had (ADR 26's addendum); the error says whether it could."""
        assert action.previous is not None
        kind = KINDS[action.kind]
        request_id = f"sc-back-{action.kind}-{action.key}-{uuid.uuid4().hex[:12]}"[:128]
        try:
            await _unless(
                kind.create(self.stubs, parent, action.key, action.previous, request_id),
                grpc.StatusCode.ALREADY_EXISTS,
            )
        except grpc.aio.AioRpcError as exc:
            failure = failure_of(exc)
            return ApplyError(
                error.path,
                f"{error.reason}; putting back {action.name} failed too "
                f"({failure.code.name}: {failure.message}): the village lacks it until an "
                "apply finishes",
                error.code,
            )
        return ApplyError(
            error.path, f"{error.reason}; {action.name} was put back as it was", error.code
        )


def _typed(manifest: Manifest, name: str, value: Any) -> Any:
    """A recorded override as its setting's type (the record's JSON numbers are floats)."""
    if (
        manifest.settings[name].type == "integer"
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    return value


def _made(action: Action, made: Any) -> Action:
    """The action with the name and digest of what its step made or changed."""
    assert action.desired is not None
    name = getattr(made, "name", "") if made is not None else ""
    digest = action.digest
    if made is not None:  # remembered as the component made it (ADR 26's addendum)
        digest = f"{action.desired.digest}/{seen_digest(made, action.desired.written)}"
    return Action(**{**action.__dict__, "name": name or action.name, "digest": digest})


def _named(action: Action, done: Sequence[Action]) -> Action:
    """The action with the name its step learnt (server-named kinds)."""
    for d in done:
        if (d.kind, d.key) == (action.kind, action.key) and d.op == action.op:
            return d
    return action


async def _unless(call: Any, code: grpc.StatusCode) -> Any:
    """The call's answer; None when it failed only with `code` (already done)."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() != code:
            raise
        return None


def _apply_error(
    action: Action, exc: grpc.aio.AioRpcError, overrides: Mapping[str, Any]
) -> ApplyError:
    failure = failure_of(exc)
    if action.desired is None:
        path = f"{action.kind}/{action.key}"
    elif failure.violations:
        field = failure.violations[0].field.split(".", 1)[-1]
        path, why = blame(
            action.desired.declared, field, failure.violations[0].description, overrides, {}
        )
        return ApplyError(path, why, failure.code.name)
    else:
        path, why = blame(
            action.desired.declared, "", f"{failure.code.name}: {failure.message}", overrides, {}
        )
        return ApplyError(path, why, failure.code.name)
    return ApplyError(path, f"{failure.code.name}: {failure.message}", failure.code.name)


class _Acting:
    """Calls made inside carry this principal (the kit's channels sign it)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.token: Any = None

    def __enter__(self) -> None:
        self.token = ctx.principal_var.set(self.principal)

    def __exit__(self, *_: object) -> None:
        ctx.principal_var.reset(self.token)

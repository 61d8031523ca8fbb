"""REST for installing scenario templates in a village: plan, install, uninstall.

The routes call the scenario composer (`scenarios.composer`, ADR 26) the way the
`grassroots scenario` commands do: it works through the components' gRPC contracts as
a platform service acting for the village, over the gateway's own channels, and keeps
the install record in empower's catalog. The caller's part is deciding whether it may:

* the catalog answers, for the caller, whether the village is in its subtree (404
  otherwise); the composer itself refuses a node that does not exist (404) or is not a
  village (400 naming `tenant` for a town or a grid cell), as it does for the CLI;
* installing and uninstalling need `scenarios:install`, the scope of the catalog's
  install record; a plan changes nothing and needs the catalog's read scope;
* only templates of the shelf are installed (`scenario` names one; a manifest cannot
  be uploaded here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, cast

import grpc
from fastapi import APIRouter, Request, Security

from gateway.auth import access, call_metadata, calls
from gateway.errors import HTTP_STATUS, ApiError, call, from_rpc_error
from gateway.paths import TenantId, parent
from gateway.schemas.scenarios import (
    PlannedActionOut,
    ScenarioAppliedOut,
    ScenarioIn,
    ScenarioPlanOut,
    ScenarioUninstallIn,
)
from grassroots.empower.v1 import catalog_service_pb2 as catalog_pb
from grassroots.empower.v1 import catalog_service_pb2_grpc as catalog_grpc
from scenarios.composer import (
    Applied,
    ApplyError,
    Composer,
    ManifestError,
    NotAVillage,
    Plan,
    PlanBlocked,
    PlanChanged,
)
from scenarios.composer import catalog as shelf
from scenarios.composer.manifest import Manifest
from services.kit import tenancy
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

CATALOG = "grassroots.empower.v1.CatalogService"
TENANTS = "grassroots.empower.v1.EmpowerService"
router = APIRouter(prefix="/v1/tenants/{tenant}/scenarios", tags=["catalog"])
Who = Annotated[Principal, Security(access("empower"))]


def _composer(
    records: catalog_grpc.CatalogServiceStub, channels: Mapping[str, grpc.aio.Channel]
) -> Composer:
    """The composer over the gateway's channels, keeping its records through `records`.

    The channels are shared by every request: the composer is never closed here.
    """
    composer = Composer(channels)
    composer.stubs.catalog = cast("catalog_grpc.CatalogServiceAsyncStub", records)
    return composer


async def _village(tenant: str, request: Request, who: Principal) -> str:
    """The village's path, if the caller may act for it. Whether the node exists and is a
    village is the composer's check (`NotAVillage`), as for the CLI."""
    upstreams = request.app.state.upstreams
    await call(  # the catalog refuses a node outside the caller's subtree (404)
        upstreams.catalog.ListInstallations(
            catalog_pb.ListInstallationsRequest(parent=parent(tenant), page_size=1),
            metadata=call_metadata(who),
        )
    )
    return tenancy.parse_parent(parent(tenant), "tenant")


def _invalid(field: str, description: str, status: int = 400, reason: str = "") -> ApiError:
    return ApiError(
        status,
        f"{field}: {description}",
        reason=reason,
        violations=[FieldViolation(field, description)],
    )


def _manifest(scenario: str) -> Manifest:
    try:
        return shelf.get(scenario)
    except ManifestError as exc:
        raise _invalid("scenario", exc.message) from None


async def _composing(work: Any) -> Any:
    """The composer's answer; its refusals in the gateway's error shape."""
    try:
        return await work
    except NotAVillage as exc:
        if not exc.found:
            raise ApiError(404, exc.message, reason="NOT_FOUND") from None
        raise _invalid("tenant", exc.message) from None
    except PlanBlocked as exc:
        raise _invalid(exc.path, exc.message, 409, "PLAN_BLOCKED") from None
    except PlanChanged as exc:
        raise _invalid(exc.path, exc.message, 409, "PLAN_CHANGED") from None
    except ManifestError as exc:
        raise _invalid(exc.path, exc.message) from None
    except ApplyError as exc:
        status = HTTP_STATUS.get(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), 500)
        raise _invalid(exc.path, str(exc).removeprefix(f"{exc.path}: "), status) from None
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None


def _plan_out(plan: Plan) -> ScenarioPlanOut:
    return ScenarioPlanOut(
        village=plan.village,
        scenario=plan.scenario,
        from_version=plan.from_version,
        to_version=plan.to_version,
        settings=dict(plan.settings),
        actions=[
            PlannedActionOut(
                op=a.op.value,  # type: ignore[arg-type]
                symbol=a.symbol,
                kind=a.kind,
                key=a.key,
                name=a.name,
                fields=list(a.fields),
                note=a.note,
            )
            for a in plan.actions
        ],
        counts=plan.counts(),
        warnings=list(plan.warnings),
        blockers=list(plan.blockers),
        empty=plan.empty,
        text=plan.render(),
        digest=plan.digest,
    )


def _applied_out(applied: Applied) -> ScenarioAppliedOut:
    return ScenarioAppliedOut(
        state=applied.state,  # type: ignore[arg-type]
        installation=applied.installation,
        done=len(applied.done),
        plan=_plan_out(applied.plan),
    )


@router.post(
    ":plan",
    response_model=ScenarioPlanOut,
    summary="What installing (or changing) a scenario in a village would do; changes nothing",
)
@calls(CATALOG, "ListInstallations")
async def plan_scenario(
    tenant: TenantId, body: ScenarioIn, request: Request, who: Who
) -> ScenarioPlanOut:
    """A readable diff, like `terraform plan`: `+` create, `~` change in place, `-/+`
    replace, `-` delete, `.` release (left to the scenarios that share it), `=` unchanged.
    `blockers` say why it could not be applied."""
    village = await _village(tenant, request, who)
    manifest = _manifest(body.scenario)
    upstreams = request.app.state.upstreams
    composer = _composer(upstreams.catalog, upstreams.channels)
    plan = await _composing(
        composer.plan(
            village,
            manifest,
            body.overrides,
            reset=body.reset,
            allow_downgrade=body.allow_downgrade,
        )
    )
    return _plan_out(plan)


@router.post(
    ":install",
    response_model=ScenarioAppliedOut,
    summary="Install a scenario in a village, finish a half-done install, or change settings",
)
@calls(CATALOG, "ListInstallations")
@calls(CATALOG, "CreateInstallation")
@calls(CATALOG, "UpdateInstallation")
async def install_scenario(
    tenant: TenantId, body: ScenarioIn, request: Request, who: Who
) -> ScenarioAppliedOut:
    """Applies the plan `:plan` shows, worked out again: with `plan_digest` (the plan's
    `digest`) only that plan is applied, and a plan that moved meanwhile is 409
    PLAN_CHANGED with nothing done; without it, what changed meanwhile is included.
    Installing twice changes nothing. Moving to a new version of the
    template is an install too. Needs `scenarios:install`."""
    village = await _village(tenant, request, who)
    manifest = _manifest(body.scenario)
    upstreams = request.app.state.upstreams
    composer = _composer(upstreams.catalog, upstreams.channels)
    applied = await _composing(
        composer.apply(
            village,
            manifest,
            body.overrides,
            reset=body.reset,
            allow_downgrade=body.allow_downgrade,
            expected_plan=body.plan_digest,
        )
    )
    return _applied_out(applied)


@router.post(
    ":planUninstall",
    response_model=ScenarioPlanOut,
    summary="What uninstalling a scenario from a village would do; changes nothing",
)
@calls(CATALOG, "ListInstallations")
async def plan_uninstall_scenario(
    tenant: TenantId, body: ScenarioUninstallIn, request: Request, who: Who
) -> ScenarioPlanOut:
    village = await _village(tenant, request, who)
    upstreams = request.app.state.upstreams
    composer = _composer(upstreams.catalog, upstreams.channels)
    plan = await _composing(composer.plan_uninstall(village, body.scenario))
    return _plan_out(plan)


@router.post(
    ":uninstall",
    response_model=ScenarioAppliedOut,
    summary="Uninstall a scenario from a village; what other scenarios use stays",
)
@calls(CATALOG, "ListInstallations")
@calls(CATALOG, "UpdateInstallation")
@calls(CATALOG, "DeleteInstallation")
async def uninstall_scenario(
    tenant: TenantId, body: ScenarioUninstallIn, request: Request, who: Who
) -> ScenarioAppliedOut:
    """Deletes what the scenario alone made, releases what it shares, then forgets its
    install record. Needs `scenarios:install`."""
    village = await _village(tenant, request, who)
    upstreams = request.app.state.upstreams
    composer = _composer(upstreams.catalog, upstreams.channels)
    applied = await _composing(
        composer.uninstall(village, body.scenario, expected_plan=body.plan_digest)
    )
    return _applied_out(applied)

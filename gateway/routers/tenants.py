"""REST for the tenant tree: read a node, list its children, add a child.

A node is addressed by its tenant id, the path with "-" between segments
(`/v1/tenants/sh-jiading-anting`). Reading needs `empower:read` and adding a node
`tenants:write`; the empower service decides which nodes the caller may see, so a
node outside the caller's reach answers as the service says (404 or 403).
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, Security
from google.protobuf.field_mask_pb2 import FieldMask

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.patch_bodies import fields_sent
from gateway.schemas.identity import (
    TENANT_ID_PATTERN,
    LevelName,
    TenantCreate,
    TenantList,
    TenantOut,
    TenantUpdate,
)
from grassroots.empower.v1 import empower_service_pb2 as pb
from services.kit import tenancy
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])
SERVICE = "grassroots.empower.v1.EmpowerService"
Who = Annotated[Principal, Security(access("empower"))]
TenantId = Annotated[
    str, Path(pattern=TENANT_ID_PATTERN, description="tenant id, e.g. sh-jiading-anting")
]


def tenant_out(tenant: pb.Tenant) -> TenantOut:
    level = pb.Tenant.Level.Name(tenant.level).removeprefix("LEVEL_").lower()
    return TenantOut(
        id=tenancy.path_to_id(tenant.path),
        name=tenant.name,
        path=tenant.path,
        display_name=tenant.display_name,
        level=None if level == "unspecified" else level,  # type: ignore[arg-type]
        admin_code=tenant.admin_code,
        create_time=tenant.create_time.ToDatetime(tzinfo=UTC),
    )


def _level(name: LevelName) -> pb.Tenant.Level.ValueType:
    return pb.Tenant.Level.Value(f"LEVEL_{name.upper()}")


@router.get("/{tenant}", response_model=TenantOut, summary="Get a tenant node")
@calls(SERVICE, "GetTenant")
async def get_tenant(tenant: TenantId, request: Request, who: Who) -> TenantOut:
    rpc = request.app.state.upstreams.empower.GetTenant(
        pb.GetTenantRequest(name=f"tenants/{tenant}"), metadata=call_metadata(who)
    )
    return tenant_out(await call(rpc))


@router.get("/{tenant}/children", response_model=TenantList, summary="List a node's children")
@calls(SERVICE, "ListTenants")
async def list_child_tenants(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[str, Query(max_length=512)] = "",
) -> TenantList:
    response = await call(
        request.app.state.upstreams.empower.ListTenants(
            pb.ListTenantsRequest(
                parent=f"tenants/{tenant}", page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return TenantList(
        tenants=[tenant_out(t) for t in response.tenants],
        next_page_token=response.next_page_token,
    )


@router.post(
    "/{tenant}/children",
    status_code=201,
    response_model=TenantOut,
    summary="Add a child node (a town, village or grid)",
)
@calls(SERVICE, "CreateTenant")
async def create_child_tenant(
    tenant: TenantId, body: TenantCreate, request: Request, response: Response, who: Who
) -> TenantOut:
    rpc = request.app.state.upstreams.empower.CreateTenant(
        pb.CreateTenantRequest(
            parent=f"tenants/{tenant}",
            tenant_id=body.id,
            tenant=pb.Tenant(
                display_name=body.display_name,
                level=_level(body.level),
                admin_code=body.admin_code,
            ),
        ),
        metadata=call_metadata(who),
    )
    created = tenant_out(await call(rpc, strip_prefix="tenant."))
    response.headers["Location"] = f"/v1/tenants/{created.id}"
    return created


@router.patch("/{tenant}", response_model=TenantOut, summary="Rename a node or correct its code")
@calls(SERVICE, "UpdateTenant")
async def update_tenant(
    tenant: TenantId, body: TenantUpdate, request: Request, who: Who
) -> TenantOut:
    """Only the fields sent change (AIP-134); the change is written to the audit log."""
    paths = fields_sent(body, TenantUpdate.model_fields)
    rpc = request.app.state.upstreams.empower.UpdateTenant(
        pb.UpdateTenantRequest(
            tenant=pb.Tenant(
                name=f"tenants/{tenant}",
                display_name=body.display_name or "",
                admin_code=body.admin_code or "",
            ),
            update_mask=FieldMask(paths=paths),
        ),
        metadata=call_metadata(who),
    )
    return tenant_out(await call(rpc, strip_prefix="tenant."))


@router.delete(
    "/{tenant}", status_code=204, summary="Delete an empty node (no child nodes, users or apps)"
)
@calls(SERVICE, "DeleteTenant")
async def delete_tenant(tenant: TenantId, request: Request, who: Who) -> Response:
    """A node that still has child nodes, users or apps answers 400 (FAILED_PRECONDITION)."""
    await call(
        request.app.state.upstreams.empower.DeleteTenant(
            pb.DeleteTenantRequest(name=f"tenants/{tenant}"), metadata=call_metadata(who)
        )
    )
    return Response(status_code=204)

"""REST for the supermarket's catalog: browse and search the shelf (`catalog:read`),
record a scenario installed in a village (`scenarios:install`), and a district's
view of which villages use what, and how much."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, Security

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import TENANT_FILTER_DESCRIPTION, TenantId, parent, rest_path, tenant_filter
from gateway.schemas.datasets import (
    AdoptionOut,
    CatalogItemList,
    InstallationCreate,
    InstallationList,
    InstallationOut,
    InstalledResourceOut,
)
from grassroots.empower.v1 import catalog_service_pb2 as pb
from grassroots.empower.v1 import empower_service_pb2 as empower_pb
from services.kit import tenancy
from services.kit.filtering import quote
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.CatalogService"
_TENANT = TENANT_FILTER_DESCRIPTION
router = APIRouter(prefix="/v1", tags=["catalog"])
Who = Annotated[Principal, Security(access("empower"))]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]
_KINDS = {
    empower_pb.CatalogItem.KIND_COMPONENT: "component",
    empower_pb.CatalogItem.KIND_SCENARIO: "scenario",
    empower_pb.CatalogItem.KIND_DATASET: "dataset",
}


def _item(item: empower_pb.CatalogItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "kind": _KINDS.get(item.kind, "component"),
        "display_name": item.display_name,
        "description": item.description,
        "version": item.version,
        "area": item.area,
        "grpc_services": [{"name": s.name, "methods": list(s.methods)} for s in item.grpc_services],
        "rest_routes": list(item.rest_routes),
        "docs_uri": item.docs_uri,
        "health": item.health,
        "resource": item.resource,
        "components": list(item.components),
        "classification": item.classification,
    }


def _installation(i: pb.Installation) -> InstallationOut:
    return InstallationOut(
        name=i.name,
        catalog_item=i.catalog_item,
        installer=i.installer,
        create_time=i.create_time.ToDatetime(tzinfo=UTC).isoformat(),
        version=i.version,
        state="incomplete" if i.state == pb.Installation.STATE_INCOMPLETE else "complete",
        resources=[
            InstalledResourceOut(name=r.name, kind=r.kind, key=r.key, owned=r.owned)
            for r in i.resources
        ],
    )


@router.get(
    "/catalogItems",
    response_model=CatalogItemList,
    summary="Browse and search the catalog: components, scenario templates and datasets",
)
@calls("grassroots.empower.v1.EmpowerService", "ListCatalogItems")
async def list_catalog(
    request: Request,
    who: Who,
    q: Annotated[str, Query(max_length=200, description="words every item found contains")] = "",
    kind: Annotated[
        str | None,
        Query(pattern="^(component|scenario|dataset)$", description="only items of this kind"),
    ] = None,
    area: Annotated[
        str | None,
        Query(max_length=64, examples=["elderly care"], description="only this area of work"),
    ] = None,
    tenant: Annotated[
        str | None,
        Query(
            max_length=300,
            description="the browsing node (default: yours); " + TENANT_FILTER_DESCRIPTION,
        ),
    ] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> CatalogItemList:
    terms = [f'kind = "{kind}"'] if kind else []
    if area is not None:
        terms.append(f'area = "{quote(area)}"')
    path = tenant_filter(tenant, "tenant")
    found = await call(
        request.app.state.upstreams.empower.ListCatalogItems(
            empower_pb.ListCatalogItemsRequest(
                page_size=page_size,
                page_token=page_token,
                filter=" AND ".join(terms),
                query=q,
                parent=tenancy.tenant_name(path) if path else "",
            ),
            metadata=call_metadata(who),
        )
    )
    return CatalogItemList(
        catalog_items=[_item(i) for i in found.catalog_items],  # type: ignore[misc]
        next_page_token=found.next_page_token,
    )


@router.post(
    "/tenants/{tenant}/installations",
    status_code=201,
    response_model=InstallationOut,
    summary="Record a scenario template installed in a village",
)
@calls(SERVICE, "CreateInstallation")
async def create_installation(
    tenant: TenantId, body: InstallationCreate, request: Request, response: Response, who: Who
) -> InstallationOut:
    created = await call(
        request.app.state.upstreams.catalog.CreateInstallation(
            pb.CreateInstallationRequest(
                parent=parent(tenant),
                installation=pb.Installation(catalog_item=body.catalog_item),
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="installation.",
    )
    response.headers["Location"] = rest_path(created.name)
    return _installation(created)


@router.get(
    "/tenants/{tenant}/installations",
    response_model=InstallationList,
    summary="List the scenario templates installed in a node's subtree",
)
@calls(SERVICE, "ListInstallations")
async def list_installations(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> InstallationList:
    found = await call(
        request.app.state.upstreams.catalog.ListInstallations(
            pb.ListInstallationsRequest(
                parent=parent(tenant), page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return InstallationList(
        installations=[_installation(i) for i in found.installations],
        next_page_token=found.next_page_token,
    )


@router.get(
    "/tenants/{tenant}/adoption",
    response_model=AdoptionOut,
    summary="Which villages of the subtree use what: datasets, scenarios, calls per component",
)
@calls(SERVICE, "GetAdoption")
async def get_adoption(tenant: TenantId, request: Request, who: Who) -> AdoptionOut:
    found = await call(
        request.app.state.upstreams.catalog.GetAdoption(
            pb.GetAdoptionRequest(name=f"{parent(tenant)}/adoption"),
            metadata=call_metadata(who),
        )
    )
    return AdoptionOut(
        name=found.name,
        nodes=[
            {  # type: ignore[misc]
                "tenant": n.tenant,
                "datasets": list(n.datasets),
                "scenarios": list(n.scenarios),
                "calls": {c.component: c.calls for c in n.calls},
            }
            for n in found.nodes
        ],
        calls_available=found.calls_available,
    )

"""REST for the twin component (the catalog is in `catalog`).

Their services publish the v1 contract and answer UNIMPLEMENTED until each
component lands; these routes already exist so clients see 501 with a message
saying what is coming, not 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security
from google.protobuf.json_format import MessageToDict

from gateway.auth import access, call_metadata, calls
from gateway.errors import ApiError, call
from gateway.paths import TenantId, parent
from grassroots.twin.v1 import twin_service_pb2 as twin_pb
from services.kit import tenancy
from services.kit.principal import Principal

router = APIRouter(prefix="/v1")

PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _visible(tenant: str, who: Principal) -> None:
    """Until these components check tenancy themselves, another subtree is not found here."""
    if not who.can_see(tenancy.id_to_path(tenant)):
        raise ApiError(404, f"tenant 'tenants/{tenant}' not found")


@router.get("/tenants/{tenant}/entities", tags=["twin"], summary="List digital twin entities")
@calls("grassroots.twin.v1.TwinService", "ListEntities")
async def list_entities(
    tenant: TenantId,
    request: Request,
    who: Annotated[Principal, Security(access("twin"))],
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> dict[str, Any]:
    _visible(tenant, who)
    rpc = request.app.state.upstreams.twin.ListEntities(
        twin_pb.ListEntitiesRequest(
            parent=parent(tenant), page_size=page_size, page_token=page_token
        ),
        metadata=call_metadata(who),
    )
    return _dict(await call(rpc))

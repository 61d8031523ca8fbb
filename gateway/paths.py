"""The tenant segment every REST path starts with (ADR 9).

Each path is its resource name under `/v1/`: `tenants/{tenant}/events/{event}` is
`/v1/tenants/{tenant}/events/{event}`. `{tenant}` is a tenant id, the tenant path with
"-" between its segments (`sh-jiading-anting-xingming`); a collection read under it
covers that node's whole subtree, so a town reads its villages' events at its own id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path

from gateway.errors import ApiError
from gateway.schemas.identity import TENANT_ID_PATTERN
from services.kit import tenancy
from services.kit.errors import InvalidArgument

TENANT_DESCRIPTION = (
    "tenant id: the tenant path with '-' between segments, e.g. sh-jiading-anting-xingming; "
    "a collection read covers the node's whole subtree"
)
TenantId = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description=TENANT_DESCRIPTION)]


def parent(tenant: str) -> str:
    """The resource name of the tenant in the path: `tenants/{tenant}`."""
    return f"tenants/{tenant}"


def rest_path(resource_name: str) -> str:
    """Where a resource answers over REST: its name under `/v1/`."""
    return f"/v1/{resource_name}"


TENANT_FILTER_DESCRIPTION = (
    "a tenant, by id (sh-jiading-anting-xingming) or path (sh/jiading/anting/xingming)"
)


def tenant_filter(value: str | None, field: str) -> str | None:
    """A tenant named in a query parameter, in either form, as its path; else 400."""
    if value is None:
        return None
    try:
        return tenancy.path_of(value, field)
    except InvalidArgument as exc:
        raise ApiError(400, exc.message, violations=exc.violations) from None


def time_filter(moment: datetime) -> str:
    """A time a query parameter named, read as `Rfc3339Time` (with an offset, within the
    years a filter takes), as RFC 3339 text for a gRPC filter."""
    return moment.isoformat()

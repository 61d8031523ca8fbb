"""The tenant segment every REST path starts with (ADR 9).

Each path is its resource name under `/v1/`: `tenants/{tenant}/events/{event}` is
`/v1/tenants/{tenant}/events/{event}`. `{tenant}` is a tenant id, the tenant path with
"-" between its segments (`sh-jiading-anting-xingming`); a collection read under it
covers that node's whole subtree, so a town reads its villages' events at its own id.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Path

from gateway.errors import ApiError
from gateway.schemas.identity import TENANT_ID_PATTERN
from services.kit import tenancy
from services.kit.errors import FieldViolation, InvalidArgument

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


VILLAGE_FILTER_DESCRIPTION = (
    "a village, by id (sh-jiading-anting-xingming) or path (sh/jiading/anting/xingming); "
    "one outside the path's tenant matches nothing"
)


def village_filter(value: str | None, field: str = "village") -> str | None:
    """A village named in a query parameter or body, in either form, as its path; a
    tenant of another level or anything else is 400 naming `field`."""
    if value is None:
        return None
    try:
        return tenancy.village_path_of(value, field)
    except InvalidArgument as exc:
        raise ApiError(400, exc.message, violations=exc.violations) from None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def filter_value(value: str | None, field: str) -> str | None:
    """A query parameter's value as a filter term: a control character (`%00`) is 400
    naming the parameter, not a 400 naming a `filter` the caller never sent."""
    if value is not None and _CONTROL.search(value):
        raise ApiError(
            400,
            f"{field}: may not hold control characters",
            violations=[FieldViolation(field, "may not hold control characters")],
        )
    return value


_RESOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def resource_filter(value: str | None, tenant: str, collection: str, field: str) -> str | None:
    """A resource a filter names, as its resource name. Either its name,
    `tenants/{tenant}/{collection}/{id}` (any tenant of the subtree, as a town names a
    village's), or its id alone, for one of the path's own tenant; else 400 naming `field`."""
    if value is None:
        return None
    if _RESOURCE_ID.fullmatch(value):
        return f"{parent(tenant)}/{collection}/{value}"
    found = re.fullmatch(
        rf"tenants/([a-z0-9-]{{1,250}})/{collection}/([A-Za-z0-9_-]{{1,64}})", value
    )
    if found is None or not re.fullmatch(TENANT_ID_PATTERN, found.group(1)):
        why = f"is an id or a name tenants/{{tenant}}/{collection}/{{id}}, not {value[:80]!r}"
        raise ApiError(400, f"{field}: {why}", violations=[FieldViolation(field, why)])
    return value


def resource_filter_description(collection: str, what: str) -> str:
    return (
        f"{what}: its name, tenants/{{tenant}}/{collection}/{{id}} (any tenant of the subtree), "
        f"or its id alone for one of the path's tenant"
    )


def time_filter(moment: datetime) -> str:
    """A time a query parameter named, read as `Rfc3339Time` (with an offset, within the
    years a filter takes), as RFC 3339 text for a gRPC filter."""
    return moment.isoformat()

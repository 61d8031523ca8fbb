"""Which scope each RPC needs: checked by the server interceptor before any handler runs.

Read methods need `<component>:read`, everything else `<component>:write`, unless a
service names another scope for a method (e.g. `events:configure` for categories).
A method absent from the table is refused: a new RPC cannot ship without a scope.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import descriptor_pool

READ_VERBS = (
    "Get",
    "List",
    "Watch",
    "Search",
    "Locate",
    "Count",
    "Export",
    "Transform",
    "BatchGet",
    "Verify",
)
# Any signed principal may call the method; the domain decides what it may see.
ANY_PRINCIPAL = ""


def method_scopes(
    service_full_name: str, component: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The scope per full method path (`/pkg.Service/Method`) of one service."""
    service = descriptor_pool.Default().FindServiceByName(service_full_name)
    overrides = dict(overrides or {})
    unknown = set(overrides) - {m.name for m in service.methods}
    if unknown:
        raise ValueError(f"{service_full_name} has no methods {sorted(unknown)}")
    table: dict[str, str] = {}
    for method in service.methods:
        if method.name in overrides:
            scope = overrides[method.name]
        else:
            verb = "read" if method.name.startswith(READ_VERBS) else "write"
            scope = f"{component}:{verb}"
        table[f"/{service_full_name}/{method.name}"] = scope
    return table

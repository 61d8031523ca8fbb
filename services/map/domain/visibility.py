"""Who may read and write which layer.

A principal reads the layers of its own subtree and the layers that levels above it
share downwards; a sensitive layer also needs the `map:read_sensitive` scope.
Writing needs the layer to be in the caller's subtree and the `map:write` scope.
Anything a caller may not read is reported as not found.
"""

from __future__ import annotations

from services.kit import tenancy
from services.kit.errors import NotFound, PermissionDenied
from services.kit.principal import Principal
from services.map.domain.model import Layer, LayerKey, Sensitivity

READ_SENSITIVE_SCOPE = "map:read_sensitive"
WRITE_SCOPE = "map:write"


def can_read(principal: Principal, layer: Layer) -> bool:
    own = principal.can_see(layer.key.tenant)
    from_above = layer.shared and tenancy.contains(layer.key.tenant, principal.tenant)
    if not (own or from_above):
        return False
    return layer.sensitivity is not Sensitivity.SENSITIVE or principal.has_scope(
        READ_SENSITIVE_SCOPE
    )


def in_listing(layer: Layer, parent: str) -> bool:
    """Listing under `parent`: its subtree's layers and those shared down to it."""
    return tenancy.contains(parent, layer.key.tenant) or (
        layer.shared and tenancy.contains(layer.key.tenant, parent)
    )


def check_write(principal: Principal, tenant: str) -> None:
    if not principal.can_see(tenant):
        raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
    if not principal.has_scope(WRITE_SCOPE):
        raise PermissionDenied(f"writing map layers needs the {WRITE_SCOPE!r} scope")


def not_found(key: LayerKey) -> NotFound:
    return NotFound(f"layer {tenancy.tenant_name(key.tenant)}/layers/{key.layer_id} not found")

"""Which scope each RPC needs, read from the contract: the `grassroots.type.v1.access`
method option in the protos is the only place it is declared.

The server interceptor checks it before any handler runs and the gateway reads the
same table before it calls a component. A method without the option is absent from
the table and refused: a new RPC cannot ship without a scope.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

from grassroots.type.v1 import annotations_pb2

# Any signed principal may call the method; the domain decides what it may see.
ANY_PRINCIPAL = ""


def declared_scope(method: MethodDescriptor) -> str | None:
    """The scope a method's contract names, ANY_PRINCIPAL, or None when it names none."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.access):
        return None
    access = options.Extensions[annotations_pb2.access]
    if access.any_principal == bool(access.scope):
        # Both or neither: the contract is ambiguous, so the method is refused.
        return None
    return ANY_PRINCIPAL if access.any_principal else access.scope


def method_scopes(*service_full_names: str) -> dict[str, str]:
    """The scope per full method path (`/pkg.Service/Method`) of the named services."""
    table: dict[str, str] = {}
    for service_name in service_full_names:
        service = descriptor_pool.Default().FindServiceByName(service_name)
        for method in service.methods:
            scope = declared_scope(method)
            if scope is not None:
                table[f"/{service_name}/{method.name}"] = scope
    return table


def _method(full_method: str) -> MethodDescriptor | None:
    service_name, _, method_name = full_method.lstrip("/").partition("/")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return None
    return service.methods_by_name.get(method_name)


def scope_of(full_method: str) -> str | None:
    """The scope of one `/pkg.Service/Method`; None when the contract declares none."""
    method = _method(full_method)
    return None if method is None else declared_scope(method)


@functools.cache
def before_password_change(full_method: str) -> bool:
    """Whether the contract lets the narrow password-change token call this method."""
    method = _method(full_method)
    if method is None or not method.GetOptions().HasExtension(annotations_pb2.access):
        return False
    return bool(method.GetOptions().Extensions[annotations_pb2.access].before_password_change)

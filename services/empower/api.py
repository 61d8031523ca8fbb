"""The empower service's gRPC surface: tenants, identity, people and audit in one server.

The adapters live in `identity_api` and `people_api`; this module assembles them.
The scope of every method is declared in the protos: reads of tenants, users and
apps are open to any signed principal because the domain filters them by subtree;
the methods the gateway uses to authenticate callers need `identity:verify`, which
only the gateway's own service principal holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.empower.domain.audit import AuditLog
from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.people import PeopleRegistry
from services.empower.empowerment import SERVICE_NAMES as EMPOWERMENT_SERVICE_NAMES
from services.empower.empowerment import Servicer
from services.empower.identity_api import IdentityServicer, TenantServicer
from services.empower.people_api import PeopleServicer
from services.kit.component import ServiceComponent
from services.kit.scopes import method_scopes
from services.kit.unimplemented import fill_unimplemented

TENANT_SERVICE = tenant_pb.DESCRIPTOR.services_by_name["EmpowerService"].full_name
IDENTITY_SERVICE = identity_pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
PEOPLE_SERVICE = people_pb.DESCRIPTOR.services_by_name["PeopleService"].full_name
SERVICE_NAMES = (TENANT_SERVICE, IDENTITY_SERVICE, PEOPLE_SERVICE, *EMPOWERMENT_SERVICE_NAMES)

fill_unimplemented(TenantServicer, TENANT_SERVICE, "the catalog of components and scenarios")

SCOPES = method_scopes(*SERVICE_NAMES)


def build_component(
    directory: IdentityDirectory,
    registry: PeopleRegistry,
    audit: AuditLog,
    closers: Sequence[Callable[[], Any]] = (),
    more: Sequence[Servicer] = (),
) -> ServiceComponent:
    """The component; `more` are the servicers of forms, points and notices."""
    return ServiceComponent(
        [
            # ListCatalogItems comes from fill_unimplemented, which mypy cannot see.
            (TenantServicer(directory), tenant_grpc.add_EmpowerServiceServicer_to_server),  # type: ignore[abstract]
            (IdentityServicer(directory), identity_grpc.add_IdentityServiceServicer_to_server),
            (PeopleServicer(registry, audit), people_grpc.add_PeopleServiceServicer_to_server),
            *more,
        ],
        SERVICE_NAMES,
        closers,
        method_scopes=SCOPES,
    )

"""The empower service's gRPC surface: tenants, identity, people and audit in one server.

The adapters live in `identity_api` and `people_api`; this module assembles them.
The scope of every method is declared in the protos: reading tenant nodes needs
`empower:read`; reads of users and apps are open to any signed principal because the
domain decides (by subtree, and `empower:read` or the matching `:write` scope, or the
caller's own record);
the methods the gateway uses to authenticate callers need `identity:verify`, which
only the gateway's own service principal holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grassroots.empower.v1 import catalog_service_pb2 as catalog_pb
from grassroots.empower.v1 import catalog_service_pb2_grpc as catalog_grpc
from grassroots.empower.v1 import datasets_service_pb2 as datasets_pb
from grassroots.empower.v1 import datasets_service_pb2_grpc as datasets_grpc
from grassroots.empower.v1 import empower_service_pb2 as tenant_pb
from grassroots.empower.v1 import empower_service_pb2_grpc as tenant_grpc
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.empower.catalog_api import CatalogServicer, list_catalog_items
from services.empower.datasets_api import DatasetsServicer
from services.empower.domain.audit import AuditLog
from services.empower.domain.catalog import Catalog
from services.empower.domain.datasets.service import DatasetDesk
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
DATASETS_SERVICE = datasets_pb.DESCRIPTOR.services_by_name["DatasetsService"].full_name
CATALOG_SERVICE = catalog_pb.DESCRIPTOR.services_by_name["CatalogService"].full_name
SERVICE_NAMES = (
    TENANT_SERVICE,
    IDENTITY_SERVICE,
    PEOPLE_SERVICE,
    *EMPOWERMENT_SERVICE_NAMES,
    DATASETS_SERVICE,
    CATALOG_SERVICE,
)

fill_unimplemented(TenantServicer, TENANT_SERVICE, "the catalog of components and scenarios")

SCOPES = method_scopes(*SERVICE_NAMES)


class ShelfServicer(TenantServicer):
    """EmpowerService with the catalog: tenants from the directory, items from the shelf."""

    def __init__(self, directory: IdentityDirectory, catalog: Catalog) -> None:
        super().__init__(directory)
        self.catalog = catalog

    async def ListCatalogItems(
        self, request: tenant_pb.ListCatalogItemsRequest, context: object
    ) -> tenant_pb.ListCatalogItemsResponse:
        return await list_catalog_items(self.catalog, request)


def build_component(
    directory: IdentityDirectory,
    registry: PeopleRegistry,
    audit: AuditLog,
    closers: Sequence[Callable[[], Any]] = (),
    more: Sequence[Servicer] = (),
    *,
    datasets: DatasetDesk | None = None,
    catalog: Catalog | None = None,
) -> ServiceComponent:
    """The component; `more` are the servicers of forms, points and notices; datasets
    and the catalog are served when they are given."""
    tenants: Any = (
        # Without a catalog, ListCatalogItems comes from fill_unimplemented (unseen by mypy).
        TenantServicer(directory)  # type: ignore[abstract]
        if catalog is None
        else ShelfServicer(directory, catalog)
    )
    servicers: list[tuple[Any, Callable[[Any, Any], None]]] = [
        (tenants, tenant_grpc.add_EmpowerServiceServicer_to_server),
        (IdentityServicer(directory), identity_grpc.add_IdentityServiceServicer_to_server),
        (PeopleServicer(registry, audit), people_grpc.add_PeopleServiceServicer_to_server),
        *more,
    ]
    names = [TENANT_SERVICE, IDENTITY_SERVICE, PEOPLE_SERVICE, *EMPOWERMENT_SERVICE_NAMES]
    if datasets is not None:
        servicers.append(
            (DatasetsServicer(datasets), datasets_grpc.add_DatasetsServiceServicer_to_server)
        )
        names.append(DATASETS_SERVICE)
    if catalog is not None:
        servicers.append(
            (CatalogServicer(catalog), catalog_grpc.add_CatalogServiceServicer_to_server)
        )
        names.append(CATALOG_SERVICE)
    return ServiceComponent(servicers, tuple(names), closers, method_scopes=SCOPES)

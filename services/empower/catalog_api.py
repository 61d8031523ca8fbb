"""gRPC adapter of the catalog: ListCatalogItems on EmpowerService, and CatalogService."""

from __future__ import annotations

from grassroots.empower.v1 import catalog_service_pb2 as pb
from grassroots.empower.v1 import catalog_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import empower_service_pb2 as empower_pb
from services.empower.domain.catalog import Adoption, Catalog, CatalogItem, Installation, ItemKind
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp

_KINDS = {
    ItemKind.COMPONENT: empower_pb.CatalogItem.KIND_COMPONENT,
    ItemKind.SCENARIO: empower_pb.CatalogItem.KIND_SCENARIO,
    ItemKind.DATASET: empower_pb.CatalogItem.KIND_DATASET,
}


def item_to_proto(item: CatalogItem) -> empower_pb.CatalogItem:
    return empower_pb.CatalogItem(
        name=item.resource_name,
        display_name=item.display_name,
        kind=_KINDS[item.kind],
        description=item.description,
        version=item.version,
        area=item.area,
        grpc_services=[
            empower_pb.CatalogGrpcService(name=s.name, methods=list(s.methods))
            for s in item.grpc_services
        ],
        rest_routes=list(item.rest_routes),
        docs_uri=item.docs_uri,
        health=item.health,
        resource=item.resource,
        components=list(item.components),
        classification=item.classification,
    )


def installation_to_proto(installation: Installation) -> pb.Installation:
    return pb.Installation(
        name=installation.resource_name,
        catalog_item=installation.catalog_item,
        installer=installation.installer,
        create_time=to_timestamp(installation.create_time),
    )


def adoption_to_proto(adoption: Adoption) -> pb.Adoption:
    return pb.Adoption(
        name=f"{tenancy.tenant_name(adoption.tenant)}/adoption",
        nodes=[
            pb.NodeAdoption(
                tenant=node.tenant,
                datasets=node.datasets,
                scenarios=node.scenarios,
                calls=[
                    pb.ComponentCalls(component=c, calls=n) for c, n in sorted(node.calls.items())
                ],
            )
            for node in adoption.nodes
        ],
        calls_available=adoption.calls_available,
    )


async def list_catalog_items(
    catalog: Catalog, request: empower_pb.ListCatalogItemsRequest
) -> empower_pb.ListCatalogItemsResponse:
    parent = tenancy.parse_parent(request.parent) if request.parent else None
    items, token = await catalog.list_items(
        require_principal(),
        parent,
        request.filter,
        request.query,
        request.page_size,
        request.page_token,
    )
    return empower_pb.ListCatalogItemsResponse(
        catalog_items=[item_to_proto(i) for i in items], next_page_token=token
    )


class CatalogServicer(pb_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def CreateInstallation(
        self, request: pb.CreateInstallationRequest, context: object
    ) -> pb.Installation:
        created = await self.catalog.install(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.installation.catalog_item,
        )
        return installation_to_proto(created)

    async def ListInstallations(
        self, request: pb.ListInstallationsRequest, context: object
    ) -> pb.ListInstallationsResponse:
        found, token = await self.catalog.list_installations(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.page_size,
            request.page_token,
        )
        return pb.ListInstallationsResponse(
            installations=[installation_to_proto(i) for i in found], next_page_token=token
        )

    async def GetAdoption(self, request: pb.GetAdoptionRequest, context: object) -> pb.Adoption:
        parent, _, last = request.name.rpartition("/")
        if last != "adoption":
            raise InvalidArgument.field("name", "must be tenants/{tenant}/adoption")
        tenant = tenancy.parse_parent(parent, "name")
        return adoption_to_proto(await self.catalog.adoption(require_principal(), tenant))

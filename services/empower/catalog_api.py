"""gRPC adapter of the catalog: ListCatalogItems on EmpowerService, and CatalogService."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2, json_format

from grassroots.empower.v1 import catalog_service_pb2 as pb
from grassroots.empower.v1 import catalog_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import empower_service_pb2 as empower_pb
from services.empower.domain.catalog import (
    Adoption,
    Catalog,
    CatalogItem,
    Installation,
    InstallDetails,
    InstalledResource,
    InstallState,
    ItemKind,
)
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


_STATES = {
    InstallState.UNSPECIFIED: pb.Installation.STATE_UNSPECIFIED,
    InstallState.COMPLETE: pb.Installation.STATE_COMPLETE,
    InstallState.INCOMPLETE: pb.Installation.STATE_INCOMPLETE,
}
_STATES_BACK = {v: k for k, v in _STATES.items()}


def installation_to_proto(installation: Installation) -> pb.Installation:
    details = installation.details
    message = pb.Installation(
        name=installation.resource_name,
        catalog_item=installation.catalog_item,
        installer=installation.installer,
        create_time=to_timestamp(installation.create_time),
        update_time=to_timestamp(installation.update_time),
        version=details.version,
        state=_STATES[details.state],
        resources=[
            pb.InstalledResource(
                name=r.name, kind=r.kind, key=r.key, digest=r.digest, owned=r.owned
            )
            for r in details.resources
        ],
    )
    settings: dict[str, Any] = dict(details.settings)
    message.settings.update(settings)
    return message


def details_from_proto(given: pb.Installation) -> InstallDetails:
    state = _STATES_BACK.get(given.state)
    if state is None:
        raise InvalidArgument.field("installation.state", "is not a known state")
    return InstallDetails(
        version=given.version,
        state=state,
        settings=json_format.MessageToDict(given.settings),
        resources=tuple(
            InstalledResource(r.name, r.kind, r.key, r.digest, r.owned) for r in given.resources
        ),
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
            details_from_proto(request.installation),
        )
        return installation_to_proto(created)

    async def GetInstallation(
        self, request: pb.GetInstallationRequest, context: object
    ) -> pb.Installation:
        found = await self.catalog.get_installation(require_principal(), request.name)
        return installation_to_proto(found)

    async def UpdateInstallation(
        self, request: pb.UpdateInstallationRequest, context: object
    ) -> pb.Installation:
        updated = await self.catalog.update_installation(
            require_principal(),
            request.installation.name,
            details_from_proto(request.installation),
            list(request.update_mask.paths),
        )
        return installation_to_proto(updated)

    async def DeleteInstallation(
        self, request: pb.DeleteInstallationRequest, context: object
    ) -> empty_pb2.Empty:
        await self.catalog.delete_installation(require_principal(), request.name)
        return empty_pb2.Empty()

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

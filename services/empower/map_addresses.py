"""The map service's buildings as the datasets' address list, over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import grpc

from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from services.empower.domain.datasets.addresses import AddressBook
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.principal import Principal
from services.kit.status import domain_error_from

SUBJECT = "services/empower"
PAGE = 10_000
_PLACE_KINDS = (map_pb.LAYER_KIND_GRID_CELL, map_pb.LAYER_KIND_BUILDING)


class MapAddresses:
    """Reads every buildings layer of a publisher's subtree: building id -> its village.

    Standardising a register's addresses is the datasets' own work, not the caller's, so
    the calls carry a service principal for the publisher's node with `map:read` only.
    """

    def __init__(self, target: str, timeout: float = 30.0) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = map_grpc.MapServiceStub(self.channel)

    async def address_book(self, tenant: str) -> AddressBook:
        metadata = Principal(
            SUBJECT, tenant, "service", scopes=frozenset({"map:read"})
        ).to_metadata()
        buildings: dict[str, str] = {}
        try:
            layers = await self._layers(tenant, metadata)
            for layer in layers:
                village = tenancy.parse_child_name(layer.name, "layers")[0] or tenant
                token = ""
                while True:
                    page = await self.stub.ListFeatures(
                        map_pb.ListFeaturesRequest(
                            parent=layer.name, page_size=PAGE, page_token=token
                        ),
                        metadata=metadata,
                    )
                    for feature in page.features:
                        # The buildings layer's id field is the building id (`xingming-b0012`).
                        building = feature.name.rsplit("/", 1)[-1]
                        buildings[building.lower()] = village
                    token = page.next_page_token
                    if not token:
                        break
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "map") from None
        return AddressBook(buildings)

    async def outside(
        self, village: str, grid_cells: Collection[str], buildings: Collection[str]
    ) -> tuple[set[str], set[str]]:
        """The grid cells and buildings among these that are not features of the village's
        own grid-cell and buildings layers: one layer listing, then every id at once."""
        metadata = Principal(
            SUBJECT, village, "service", scopes=frozenset({"map:read"})
        ).to_metadata()
        own = tenancy.tenant_name(village) + "/layers/"
        try:
            layers = [
                layer
                for layer in await self._layers(village, metadata, kinds=_PLACE_KINDS)
                if layer.name.startswith(own) and "/" not in layer.name[len(own) :]
            ]
            asked = [(map_pb.LAYER_KIND_GRID_CELL, c) for c in set(grid_cells)] + [
                (map_pb.LAYER_KIND_BUILDING, b) for b in set(buildings)
            ]
            found = await asyncio.gather(
                *(self._has(layers, kind, ref, metadata) for kind, ref in asked)
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "map") from None
        missing = [(kind, ref) for (kind, ref), ok in zip(asked, found, strict=True) if not ok]
        return (
            {ref for kind, ref in missing if kind == map_pb.LAYER_KIND_GRID_CELL},
            {ref for kind, ref in missing if kind == map_pb.LAYER_KIND_BUILDING},
        )

    async def _has(
        self,
        layers: Sequence[map_pb.Layer],
        kind: int,
        ref: str,
        metadata: Sequence[tuple[str, str | bytes]],
    ) -> bool:
        for layer in layers:
            if layer.kind != kind:
                continue
            try:
                await self.stub.GetFeature(
                    map_pb.GetFeatureRequest(name=f"{layer.name}/features/{ref}"),
                    metadata=metadata,
                )
                return True
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise
        return False

    async def _layers(
        self,
        tenant: str,
        metadata: Sequence[tuple[str, str | bytes]],
        kinds: Collection[int] = (map_pb.LAYER_KIND_BUILDING,),
    ) -> list[map_pb.Layer]:
        found: list[map_pb.Layer] = []
        token = ""
        while True:
            page = await self.stub.ListLayers(
                map_pb.ListLayersRequest(
                    parent=tenancy.tenant_name(tenant), page_size=1000, page_token=token
                ),
                metadata=metadata,
            )
            found += [layer for layer in page.layers if layer.kind in kinds]
            token = page.next_page_token
            if not token:
                return found

    async def close(self) -> None:
        await self.channel.close()

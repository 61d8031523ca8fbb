"""gRPC adapter of the map service: messages in, catalog calls, messages out.

Store work (imports, exports) runs on a worker thread; reads come from memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import shapely
from google.protobuf import empty_pb2

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import crs, paging, tenancy, workers
from services.kit.component import ServiceComponent
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument, NotFound
from services.kit.masking import PEOPLE_SCOPE, mask_name
from services.kit.scopes import method_scopes
from services.map import convert, formats
from services.map.domain.grid import GridIndex
from services.map.domain.model import LayerKey
from services.map.domain.service import (
    ImportOptions,
    Intersects,
    MapCatalog,
    Nearest,
    SpatialQuery,
    WithinDistance,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MapService"].full_name
MAX_IMPORT_BYTES = 48 * 1024 * 1024


def _bbox(values: list[float]) -> tuple[float, float, float, float] | None:
    if not values:
        return None
    if len(values) != 4:
        raise InvalidArgument.field("bbox", "needs exactly 4 numbers: min x, min y, max x, max y")
    minx, miny, maxx, maxy = values
    if not np.all(np.isfinite(values)) or minx > maxx or miny > maxy:
        raise InvalidArgument.field("bbox", "must be finite with min <= max")
    return minx, miny, maxx, maxy


class MapServicer(pb_grpc.MapServiceServicer):
    def __init__(self, catalog: MapCatalog, max_batch: int) -> None:
        self.catalog = catalog
        self.max_batch = max_batch
        self._encoded = _EncodedLocations()
        # A new grid is encoded on the thread that built it, before it is swapped in.
        catalog.on_new_grid(self._encoded.prepare)

    async def CreateLayer(self, request, context):  # type: ignore[no-untyped-def]
        parent = tenancy.parse_parent(request.parent)
        layer = convert.layer_from_proto(LayerKey(parent, request.layer_id), request.layer)
        created = await asyncio.to_thread(self.catalog.create_layer, require_principal(), layer)
        return convert.layer_to_proto(created)

    async def GetLayer(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.name)
        return convert.layer_to_proto(self.catalog.get_layer(require_principal(), key))

    async def ListLayers(self, request, context):  # type: ignore[no-untyped-def]
        parent = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        query = {"parent": parent}
        offset = paging.decode_offset(request.page_token, query)
        layers = self.catalog.list_layers(require_principal(), parent)
        page = layers[offset : offset + size]
        more = offset + size if offset + size < len(layers) else None
        return pb.ListLayersResponse(
            layers=[convert.layer_to_proto(layer) for layer in page],
            next_page_token=paging.encode_offset(more, query),
        )

    async def DeleteLayer(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.name)
        await asyncio.to_thread(self.catalog.delete_layer, require_principal(), key)
        return empty_pb2.Empty()

    async def ImportFeatures(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.parent, "parent")
        if not request.data:
            raise InvalidArgument.field("data", "is empty")
        if len(request.data) > MAX_IMPORT_BYTES:
            raise InvalidArgument.field("data", f"exceeds {MAX_IMPORT_BYTES} bytes")
        if request.source_crs:
            crs.normalise_crs(request.source_crs, "source_crs")
        principal = require_principal()
        self.catalog.get_layer(principal, key)

        # Decoding (GDAL, json) holds the GIL for seconds on a big file: in a process of
        # its own it cannot stall this service's event loop and other villages' lookups.
        decoded = await asyncio.get_running_loop().run_in_executor(
            _decoder(),
            functools.partial(
                formats.decode,
                request.data,
                request.format,
                layer=request.source_layer or None,
                lon_field=request.lon_field or "lon",
                lat_field=request.lat_field or "lat",
            ),
        )

        def run():  # type: ignore[no-untyped-def]
            options = ImportOptions(
                source_crs=request.source_crs,
                repair=request.repair_invalid,
                replace=request.replace,
                id_field=request.id_field,
                ignore_unknown_fields=request.ignore_unknown_fields,
            )
            return self.catalog.import_features(principal, key, decoded, options)

        result = await asyncio.to_thread(run)
        return pb.ImportFeaturesResponse(
            layer=convert.layer_to_proto(result.layer),
            imported_count=result.imported,
            repaired_count=result.repaired,
        )

    async def ExportFeatures(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.name)
        target = crs.normalise_crs(request.crs, "crs") if request.crs else crs.STORAGE_CRS
        if request.format == "geojson" and target != crs.STORAGE_CRS:
            raise InvalidArgument.field("crs", "GeoJSON (RFC 7946) is always EPSG:4326")
        if target in (crs.GCJ02, crs.BD09) and request.format != "csv":
            raise InvalidArgument.field("crs", f"{target} can only be exported as CSV")
        principal = require_principal()

        def run() -> tuple[bytes, str]:
            _layer, batch = self.catalog.export(principal, key, target)
            columns = {"id": batch.ids, **batch.columns}
            return formats.encode(
                batch.geometries,
                columns,
                request.format,
                crs=target if target.startswith("EPSG:") else crs.STORAGE_CRS,
                layer_name=key.layer_id.replace("-", "_"),
            )

        data, media_type = await asyncio.to_thread(run)
        return pb.ExportFeaturesResponse(data=data, media_type=media_type)

    async def GetFeature(self, request, context):  # type: ignore[no-untyped-def]
        key, feature_id = convert.parse_feature_name(request.name)
        target = self._target_crs(request.response_crs)
        _layer, batch = self.catalog.get_feature(require_principal(), key, feature_id, target)
        return convert.features_to_proto(key, batch, target, request.geometry_encoding)[0]

    async def ListFeatures(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.parent, "parent")
        size = paging.page_size(request.page_size, default=100, maximum=10_000)
        bbox = _bbox(list(request.bbox))
        if request.bbox_crs:
            crs.normalise_crs(request.bbox_crs, "bbox_crs")
        if request.skip < 0:
            raise InvalidArgument.field("skip", "must not be negative")
        target = self._target_crs(request.response_crs)
        query = {
            "parent": request.parent,
            "filter": request.filter,
            "bbox": bbox,
            "bbox_crs": request.bbox_crs,
        }
        offset = paging.decode_offset(request.page_token, query) + request.skip
        page = self.catalog.list_features(
            require_principal(),
            key,
            filter_text=request.filter,
            bbox=bbox,
            bbox_crs=request.bbox_crs,
            offset=offset,
            limit=size,
            target_crs=target,
            rendered=request.view == pb.FEATURE_VIEW_GEOJSON,
        )
        if page.rendered is not None:
            prefix = convert.layer_name(key) + "/features/"
            features = [
                pb.Feature(name=prefix + str(fid), geojson_feature=text)
                for fid, text in zip(page.batch.ids, page.rendered, strict=True)
            ]
        else:
            features = convert.features_to_proto(key, page.batch, target, request.geometry_encoding)
        return pb.ListFeaturesResponse(
            features=features,
            next_page_token=paging.encode_offset(page.next_offset, query),
            total_size=page.total,
        )

    async def SearchFeatures(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.parent, "parent")
        size = paging.page_size(request.page_size, default=100, maximum=10_000)
        spatial = self._spatial_query(request)
        target = self._target_crs(request.response_crs)
        query = {
            "parent": request.parent,
            "filter": request.filter,
            "q": request.WhichOneof("query"),
            "body": getattr(request, request.WhichOneof("query"))
            .SerializeToString(deterministic=True)
            .hex(),
        }
        offset = paging.decode_offset(request.page_token, query)
        page = self.catalog.search(
            require_principal(),
            key,
            spatial,
            filter_text=request.filter,
            offset=offset,
            limit=size,
            target_crs=target,
        )
        return pb.SearchFeaturesResponse(
            features=convert.features_to_proto(
                key, page.batch, target, request.geometry_encoding, page.distances_m
            ),
            next_page_token=paging.encode_offset(page.next_offset, query),
        )

    async def LocatePoints(self, request, context):  # type: ignore[no-untyped-def]
        principal = require_principal()
        subtree = tenancy.parse_parent(request.parent)
        if not principal.can_see(subtree):
            raise NotFound(f"tenant {request.parent!r} not found")
        lon, lat, source = self._points(request.points)
        lon, lat = crs.to_storage(lon, lat, source)
        grid = self.catalog.grid
        found = grid.locate(lon, lat, subtree)
        # Grid workers' names are people's names: masked without the people scope.
        encoded = self._encoded.for_grid(grid, masked=not principal.has_scope(PEOPLE_SCOPE))
        return pb.LocatePointsResponse.FromString(b"".join(encoded[found.cell_index].tolist()))

    async def CountFeaturesByGridCell(self, request, context):  # type: ignore[no-untyped-def]
        key = convert.parse_layer_name(request.layer, "layer")
        subtree = tenancy.parse_parent(request.parent)
        counts = await asyncio.to_thread(
            self.catalog.count_by_grid_cell, require_principal(), key, subtree
        )
        return pb.CountFeaturesByGridCellResponse(
            counts=[
                pb.GridCellCount(grid_cell=cell.grid_cell_id, village=cell.village, count=n)
                for cell, n in counts
            ]
        )

    async def TransformCoordinates(self, request, context):  # type: ignore[no-untyped-def]
        if not request.target_crs:
            raise InvalidArgument.field("target_crs", "is required")
        target = crs.normalise_crs(request.target_crs, "target_crs")
        lon, lat, source = self._points(request.points)
        lon, lat = crs.to_storage(lon, lat, source)
        x, y = crs.from_storage(lon, lat, target)
        return pb.TransformCoordinatesResponse(
            points=geo_pb2.CoordinateArrays(longitudes=x, latitudes=y, crs=target)
        )

    # -- helpers --------------------------------------------------------------------

    def _points(self, points: geo_pb2.CoordinateArrays) -> tuple[np.ndarray, np.ndarray, str]:
        n = len(points.longitudes)
        if n != len(points.latitudes):
            raise InvalidArgument.field(
                "points.latitudes",
                f"has {len(points.latitudes)} values but points.longitudes has {n}",
            )
        if n > self.max_batch:
            raise InvalidArgument.field(
                "points", f"{n} points exceed the limit of {self.max_batch} per call"
            )
        source = crs.normalise_crs(points.crs, "points.crs")
        lon = np.asarray(points.longitudes, dtype=np.float64)
        lat = np.asarray(points.latitudes, dtype=np.float64)
        crs.check_ranges(lon, lat, "points.longitudes", "points.latitudes", source)
        return lon, lat, source

    @staticmethod
    def _target_crs(value: str) -> str:
        return crs.normalise_crs(value, "response_crs") if value else ""

    @staticmethod
    def _spatial_query(request: pb.SearchFeaturesRequest) -> SpatialQuery:
        which = request.WhichOneof("query")
        if which == "intersects":
            geometry = convert.geometry_from_proto(request.intersects, "intersects")
            return Intersects(geometry, _crs(request.intersects.crs, "intersects.crs"))
        if which == "within_distance":
            query = request.within_distance
            geometry = convert.geometry_from_proto(query.geometry, "within_distance.geometry")
            return WithinDistance(
                geometry,
                query.distance_meters,
                _crs(query.geometry.crs, "within_distance.geometry.crs"),
            )
        if which == "nearest":
            nearest = request.nearest
            if not nearest.k:
                raise InvalidArgument.field("nearest.k", "is required: 1 to 1000")
            source = _crs(nearest.point.crs, "nearest.point.crs")
            crs.check_ranges(
                np.array([nearest.point.longitude]),
                np.array([nearest.point.latitude]),
                "nearest.point.longitude",
                "nearest.point.latitude",
                source or "EPSG:4326",
            )
            return Nearest(
                shapely.Point(nearest.point.longitude, nearest.point.latitude),
                nearest.k,
                nearest.max_distance_meters or None,
                source,
            )
        raise InvalidArgument.field("query", "set one of intersects, within_distance, nearest")


def _crs(value: str, field: str) -> str:
    return crs.normalise_crs(value, field) if value else ""


_decoders: list[concurrent.futures.ProcessPoolExecutor] = []


def _decoder() -> concurrent.futures.ProcessPoolExecutor:
    """One worker process for decoding uploads, started on the first import."""
    if not _decoders:
        _decoders.append(workers.process_pool(1))
    return _decoders[0]


class _EncodedLocations:
    """Each grid cell's PointLocation, encoded once per grid.

    A reply for 10,000 points is then a join of ready-made bytes, parsed once, rather
    than 10,000 messages built one by one (the slow part of LocatePoints). The two
    latest grids are kept: the next one is encoded before the swap, while lookups
    still answer from the current one.
    """

    def __init__(self) -> None:
        self._latest: list[tuple[GridIndex, dict[bool, np.ndarray]]] = []

    def prepare(self, grid: GridIndex) -> None:
        """Encode both tables of a new grid (on the thread that built it)."""
        for masked in (False, True):
            self.for_grid(grid, masked)

    def for_grid(self, grid: GridIndex, masked: bool) -> np.ndarray:
        tables = next((t for known, t in self._latest if known is grid), None)
        if tables is None:
            tables = {}
            self._latest = [*self._latest[-1:], (grid, tables)]  # replaced whole
        if masked not in tables:
            entries = [
                _as_repeated_field(
                    pb.PointLocation(
                        found=True,
                        village=cell.village,
                        grid_cell=cell.grid_cell_id,
                        grid_worker=cell.grid_worker_id,
                        grid_worker_name=(
                            mask_name(cell.grid_worker_name) if masked else cell.grid_worker_name
                        ),
                    ).SerializeToString()
                )
                for cell in grid.cells
            ]
            # The last entry answers index -1: not found.
            entries.append(_as_repeated_field(pb.PointLocation(found=False).SerializeToString()))
            tables[masked] = np.array(entries, dtype=object)
        return tables[masked]


def _as_repeated_field(payload: bytes) -> bytes:
    """Field 1 (`locations`), wire type 2: tag, varint length, bytes."""
    length = len(payload)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            varint.append(byte | 0x80)
        else:
            varint.append(byte)
            break
    return b"\x0a" + bytes(varint) + payload


def build_component(
    catalog: MapCatalog, max_batch: int, closers: Sequence[Callable[[], Any]] = ()
) -> ServiceComponent:
    """`closers` run before the store closes."""
    # Start the decoder now: spawning it and importing GDAL takes seconds on a busy
    # machine, which the first import would otherwise spend inside its deadline.
    _decoder().submit(formats.ready)
    return ServiceComponent(
        [(MapServicer(catalog, max_batch), pb_grpc.add_MapServiceServicer_to_server)],
        [SERVICE_NAME],
        [*closers, catalog.store.close],
        method_scopes=method_scopes(SERVICE_NAME),
    )

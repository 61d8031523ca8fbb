"""The map catalog: layers, imports and queries, with tenancy checked on every call.

Reads are answered from in-memory indexes; writes go to the store in one
transaction, then the layer's index (and the grid, for grid-cell layers) is rebuilt
and swapped in. The grid is rebuilt on the writer's thread, never the reader's: a
lookup in another village during a big grid import answers at once from the grid
before it (ADR 5).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import shapely

from services.kit import tenancy
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound
from services.kit.filtering import parse_equalities
from services.kit.masking import PEOPLE_SCOPE
from services.kit.principal import Principal
from services.map.domain import reproject, schema, visibility
from services.map.domain.geometry import check_geometries
from services.map.domain.grid import GridCell, GridIndex
from services.map.domain.index import Hit, LayerIndex
from services.map.domain.model import FeatureBatch, Layer, LayerKey, LayerKind


class FeatureSource(Protocol):
    """Features decoded from a file (or built in code) before any checks."""

    @property
    def geometries(self) -> np.ndarray: ...

    @property
    def columns(self) -> dict[str, np.ndarray]: ...

    @property
    def crs(self) -> str | None: ...

    @property
    def feature_ids(self) -> np.ndarray | None: ...


class MapStore(Protocol):
    """Durable storage of layers and features; queries never reach it."""

    def list_layers(self) -> list[Layer]: ...

    def create_layer(self, layer: Layer) -> None: ...

    def save_layer(self, layer: Layer) -> None: ...

    def delete_layer(self, key: LayerKey) -> None: ...

    def write_features(self, layer: Layer, batch: FeatureBatch, *, replace: bool) -> None: ...

    def load_features(self, layer: Layer) -> FeatureBatch: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Intersects:
    geometry: shapely.Geometry
    crs: str = ""


@dataclass(frozen=True)
class WithinDistance:
    geometry: shapely.Geometry
    metres: float
    crs: str = ""


@dataclass(frozen=True)
class Nearest:
    geometry: shapely.Geometry
    k: int
    max_distance_m: float | None = None
    crs: str = ""


SpatialQuery = Intersects | WithinDistance | Nearest


@dataclass(frozen=True)
class ImportOptions:
    source_crs: str = ""
    repair: bool = False
    replace: bool = False
    id_field: str = ""
    ignore_unknown_fields: bool = False


@dataclass(frozen=True)
class ImportResult:
    layer: Layer
    imported: int
    repaired: int


@dataclass(frozen=True)
class FeaturePage:
    layer: Layer
    batch: FeatureBatch
    distances_m: list[float | None]
    next_offset: int | None
    total: int
    rendered: list[str] | None = None


class MapCatalog:
    def __init__(self, store: MapStore) -> None:
        self.store = store
        self._write_lock = threading.Lock()
        self.layers: dict[LayerKey, Layer] = {}
        self.indexes: dict[LayerKey, LayerIndex] = {}
        for layer in store.list_layers():
            self.layers[layer.key] = layer
            self.indexes[layer.key] = LayerIndex(store.load_features(layer))
        # Grid changes bump the version under the write lock; a build takes the grid
        # lock, so concurrent writers share one build and readers never wait for it.
        self._grid_lock = threading.Lock()
        self._grid_version = 0
        self._grid_built = 0
        self._grid = _build_grid(self._grid_layers())
        self._grid_listeners: list[Callable[[GridIndex], None]] = []
        self._change_listeners: list[Callable[[LayerKey], None]] = []

    @property
    def grid(self) -> GridIndex:
        """All grid-cell layers in one index: the latest built, without waiting."""
        return self._grid

    def on_new_grid(self, prepare: Callable[[GridIndex], None]) -> None:
        """Call `prepare` with every new grid before it is swapped in (adapters' caches)."""
        self._grid_listeners.append(prepare)

    def on_change(self, listener: Callable[[LayerKey], None]) -> None:
        """Call `listener` with a layer's key after a write to it is stored (other
        replicas hold the layer's index too)."""
        self._change_listeners.append(listener)

    def _changed(self, key: LayerKey) -> None:
        for listener in self._change_listeners:
            listener(key)

    def reload_layer(self, key: LayerKey) -> None:
        """Read one layer again from the store, and the grid if it is a grid layer:
        another replica changed it (blocking, like every store call here)."""
        layer = next((found for found in self.store.list_layers() if found.key == key), None)
        index = None if layer is None else LayerIndex(self.store.load_features(layer))
        with self._write_lock:
            old = self.layers.get(key)
            if layer is None or index is None:
                self.layers.pop(key, None)
                self.indexes.pop(key, None)
            else:
                self.layers[key] = layer
                self.indexes[key] = index
            grid = any(x is not None and x.kind is LayerKind.GRID_CELL for x in (old, layer))
            if grid:
                self._grid_version += 1
        if grid:
            self.refresh_grid()

    def refresh_grid(self) -> GridIndex:
        """Rebuild the grid if a grid layer changed, on this thread, and swap it in.

        Every writer of a grid layer calls this after its write, so it sees its own
        change when it returns; lookups meanwhile answer from the previous grid.
        """
        with self._grid_lock:
            if self._grid_built == self._grid_version:
                return self._grid
            with self._write_lock:
                version, layers = self._grid_version, self._grid_layers()
            grid = _build_grid(layers)
            for prepare in self._grid_listeners:
                prepare(grid)
            self._grid, self._grid_built = grid, version
            return grid

    def _grid_layers(self) -> list[tuple[str, FeatureBatch]]:
        """(village, features) of every grid-cell layer, in a stable order."""
        return [
            (key.tenant, self.indexes[key].batch)
            for key, layer in sorted(self.layers.items(), key=lambda item: str(item[0]))
            if layer.kind is LayerKind.GRID_CELL
        ]

    # -- layers ---------------------------------------------------------------------

    def create_layer(self, principal: Principal, layer: Layer) -> Layer:
        visibility.check_write(principal, layer.key.tenant)
        schema.check_layer(layer)
        now = datetime.now(UTC)
        layer = replace(layer, feature_count=0, extent=None, create_time=now, update_time=now)
        with self._write_lock:
            if layer.key in self.layers:
                raise AlreadyExists(f"layer {layer.key.layer_id!r} already exists")
            self.store.create_layer(layer)
            self.layers[layer.key] = layer
            self.indexes[layer.key] = LayerIndex(FeatureBatch.empty(layer.field_names()))
        self._changed(layer.key)
        return layer

    def get_layer(self, principal: Principal, key: LayerKey) -> Layer:
        layer = self.layers.get(key)
        if layer is None or not visibility.can_read(principal, layer):
            raise visibility.not_found(key)
        return layer

    def list_layers(self, principal: Principal, parent: str) -> list[Layer]:
        if not (principal.can_see(parent) or tenancy.contains(parent, principal.tenant)):
            raise visibility.not_found(LayerKey(parent, "-"))
        layers = [
            layer
            for layer in self.layers.values()
            if visibility.in_listing(layer, parent) and visibility.can_read(principal, layer)
        ]
        return sorted(layers, key=lambda layer: (layer.key.tenant, layer.key.layer_id))

    def delete_layer(self, principal: Principal, key: LayerKey) -> None:
        self.get_layer(principal, key)
        visibility.check_write(principal, key.tenant)
        with self._write_lock:
            self.store.delete_layer(key)
            layer = self.layers.pop(key)
            self.indexes.pop(key, None)
            if layer.kind is LayerKind.GRID_CELL:
                self._grid_version += 1
        if layer.kind is LayerKind.GRID_CELL:
            self.refresh_grid()
        self._changed(key)

    # -- writes ---------------------------------------------------------------------

    def import_features(
        self, principal: Principal, key: LayerKey, source: FeatureSource, options: ImportOptions
    ) -> ImportResult:
        layer = self.get_layer(principal, key)
        visibility.check_write(principal, key.tenant)
        count = len(source.geometries)
        if count == 0:
            raise InvalidArgument.field("file", "holds no features")
        source_crs = options.source_crs or source.crs or "EPSG:4326"
        # Layers are two-dimensional; heights from survey files are dropped, not stored.
        geometries = shapely.force_2d(
            reproject.to_storage(np.asarray(source.geometries, dtype=object), source_crs)
        )
        geometries, repaired = check_geometries(
            geometries, layer.geometry_type, repair=options.repair
        )
        columns = dict(source.columns)
        ids = source.feature_ids
        if options.id_field:
            if options.id_field not in columns:
                raise InvalidArgument.field("id_field", f"no column {options.id_field!r}")
            ids = columns.pop(options.id_field)
        batch = FeatureBatch(
            ids=schema.feature_ids(ids, count),
            geometries=geometries,
            columns=schema.coerce_columns(
                layer, columns, count, ignore_unknown=options.ignore_unknown_fields
            ),
        )
        with self._write_lock:
            current = self.indexes[key]
            if not options.replace:
                clash = [fid for fid in batch.ids if current.row(str(fid)) is not None]
                if clash:
                    raise AlreadyExists(
                        f"feature ids already in the layer: {', '.join(map(str, clash[:5]))}"
                    )
            self.store.write_features(layer, batch, replace=options.replace)
            # The store now holds exactly this; no need to read the layer back.
            index = LayerIndex(batch if options.replace else current.batch.concat(batch))
            layer = layer.with_stats(len(index), index.extent(), datetime.now(UTC))
            self.store.save_layer(layer)
            self.layers[key] = layer
            self.indexes[key] = index
            if layer.kind is LayerKind.GRID_CELL:
                self._grid_version += 1
        if layer.kind is LayerKind.GRID_CELL:
            self.refresh_grid()
        self._changed(key)
        return ImportResult(layer=layer, imported=count, repaired=repaired)

    # -- reads ----------------------------------------------------------------------

    def export(
        self, principal: Principal, key: LayerKey, target_crs: str
    ) -> tuple[Layer, FeatureBatch]:
        layer = self.get_layer(principal, key)
        batch = self._visible_batch(principal, layer, self.indexes[key])
        return layer, FeatureBatch(
            ids=batch.ids,
            geometries=reproject.from_storage(batch.geometries, target_crs),
            columns=batch.columns,
        )

    def get_feature(
        self, principal: Principal, key: LayerKey, feature_id: str, target_crs: str = ""
    ) -> tuple[Layer, FeatureBatch]:
        layer = self.get_layer(principal, key)
        index = self.indexes[key]
        row = index.row(feature_id)
        if row is None:
            raise NotFound(f"feature {feature_id!r} not found")
        batch = self._visible_batch(principal, layer, index)
        return layer, self._output(batch.take(np.array([row])), target_crs)

    def list_features(
        self,
        principal: Principal,
        key: LayerKey,
        *,
        filter_text: str = "",
        bbox: tuple[float, float, float, float] | None = None,
        bbox_crs: str = "",
        offset: int = 0,
        limit: int = 100,
        target_crs: str = "",
        rendered: bool = False,
    ) -> FeaturePage:
        layer = self.get_layer(principal, key)
        index = self.indexes[key]
        equals = parse_equalities(filter_text, layer.field_names())
        self._check_filter(principal, layer, equals)
        mask = index.matching(equals)
        if bbox is not None:
            mask &= index.in_bbox(self._bbox_to_storage(bbox, bbox_crs))
        rows = np.flatnonzero(mask)
        page = rows[offset : offset + limit]
        next_offset = offset + limit if offset + limit < rows.size else None
        visible = self._visible_batch(principal, layer, index)
        if rendered:
            texts = index.rendered(
                page,
                target_crs or "EPSG:4326",
                lambda geoms: reproject.from_storage(geoms, target_crs or "EPSG:4326"),
                None if visible is index.batch else visible,
            )
            return FeaturePage(
                layer,
                FeatureBatch(ids=index.batch.ids[page], geometries=np.array([])),
                [None] * page.size,
                next_offset,
                int(rows.size),
                texts,
            )
        return FeaturePage(
            layer,
            self._output(visible.take(page), target_crs),
            [None] * page.size,
            next_offset,
            int(rows.size),
        )

    def search(
        self,
        principal: Principal,
        key: LayerKey,
        query: SpatialQuery,
        *,
        filter_text: str = "",
        offset: int = 0,
        limit: int = 100,
        target_crs: str = "",
    ) -> FeaturePage:
        """Features meeting a spatial query, then the attribute filter, then the page."""
        layer = self.get_layer(principal, key)
        index = self.indexes[key]
        geometry = reproject.to_storage(np.array([query.geometry]), query.crs)[0]
        hits: list[Hit]
        if isinstance(query, WithinDistance):
            hits = index.within_distance(geometry, query.metres)
        elif isinstance(query, Nearest):
            if not isinstance(geometry, shapely.Point):
                raise InvalidArgument.field("nearest.point", "must be a point")
            hits = index.nearest(geometry, query.k, query.max_distance_m)
        else:
            hits = [Hit(int(r)) for r in index.intersecting(geometry)]
        equals = parse_equalities(filter_text, layer.field_names())
        self._check_filter(principal, layer, equals)
        if equals:
            mask = index.matching(equals)
            hits = [h for h in hits if mask[h.row]]
        page = hits[offset : offset + limit]
        next_offset = offset + limit if offset + limit < len(hits) else None
        rows = np.array([h.row for h in page], dtype=np.int64)
        return FeaturePage(
            layer,
            self._output(self._visible_batch(principal, layer, index).take(rows), target_crs),
            [h.distance_m for h in page],
            next_offset,
            len(hits),
        )

    def count_by_grid_cell(
        self, principal: Principal, key: LayerKey, subtree: str
    ) -> list[tuple[GridCell, int]]:
        """How many features of a layer lie in each grid cell (by a point on each)."""
        self.get_layer(principal, key)
        if not principal.can_see(subtree):
            raise visibility.not_found(LayerKey(subtree, "-"))
        batch = self.indexes[key].batch
        points = shapely.point_on_surface(batch.geometries)
        located = self.grid.locate(shapely.get_x(points), shapely.get_y(points), subtree)
        found = located.cell_index[located.cell_index >= 0]
        counts = np.bincount(found, minlength=len(self.grid.cells))
        visible = self.grid.visible_mask(subtree)
        return [(cell, int(counts[i])) for i, cell in enumerate(self.grid.cells) if visible[i]]

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _visible_batch(principal: Principal, layer: Layer, index: LayerIndex) -> FeatureBatch:
        """The layer's features as this caller may see them: names of people (a grid
        cell's worker) masked without the people scope, as people records are."""
        fields = schema.PERSONAL_FIELDS.get(layer.kind, ())
        if not fields or principal.has_scope(PEOPLE_SCOPE):
            return index.batch
        return index.masked(fields)

    @staticmethod
    def _check_filter(principal: Principal, layer: Layer, equals: Mapping[str, object]) -> None:
        """A masked name must not be found out by filtering on it."""
        hidden = set(schema.PERSONAL_FIELDS.get(layer.kind, ())) & set(equals)
        if hidden and not principal.has_scope(PEOPLE_SCOPE):
            raise InvalidArgument.field(
                "filter", f"filtering on {sorted(hidden)[0]} needs the {PEOPLE_SCOPE!r} scope"
            )

    def _output(self, batch: FeatureBatch, target_crs: str) -> FeatureBatch:
        if not target_crs:
            return batch
        return FeatureBatch(
            ids=batch.ids,
            geometries=reproject.from_storage(batch.geometries, target_crs),
            columns=batch.columns,
        )

    @staticmethod
    def _bbox_to_storage(
        bbox: tuple[float, float, float, float], bbox_crs: str
    ) -> tuple[float, float, float, float]:
        if not bbox_crs:
            return bbox
        box = reproject.to_storage(np.array([shapely.box(*bbox)]), bbox_crs)[0]
        minx, miny, maxx, maxy = shapely.bounds(box)
        return float(minx), float(miny), float(maxx), float(maxy)


def _build_grid(layers: list[tuple[str, FeatureBatch]]) -> GridIndex:
    cells: list[GridCell] = []
    polygons: list[np.ndarray] = []
    for village, batch in layers:
        workers = batch.columns["grid_worker_id"]
        names = batch.columns["grid_worker_name"]
        display = batch.columns.get("name", batch.ids)
        for row in range(len(batch)):
            cells.append(
                GridCell(
                    grid_cell_id=str(batch.ids[row]),
                    name=str(display[row]),
                    village=village,
                    grid_worker_id=str(workers[row]),
                    grid_worker_name=str(names[row]),
                )
            )
        polygons.append(batch.geometries)
    geometry = np.concatenate(polygons) if polygons else np.array([], dtype=object)
    return GridIndex(cells=cells, polygons=geometry)

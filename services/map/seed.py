"""Install the demo town's layers from the demo GeoPackage through the catalog.

`make run` and the tests start from an empty store and import the demo town exactly
as a town GIS officer would import their own files: the same checks, the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import shapely

from services.kit.principal import Principal
from services.map.domain.grid import GridCell, GridIndex
from services.map.domain.model import FieldSpec, FieldType, Layer, LayerKey, LayerKind, Sensitivity
from services.map.domain.service import ImportOptions, MapCatalog
from services.map.formats import DecodedFeatures

GRID_LAYER = "grid_cells"
GRID_FIELDS = ("grid_cell_id", "name", "tenant", "grid_worker_id", "grid_worker_name")
SEED_PRINCIPAL = Principal(
    subject="services/map-seed", tenant="sh", kind="service", scopes=frozenset({"map:write"})
)


@dataclass(frozen=True)
class _Plan:
    source_layer: str
    layer_id: str
    display_name: str
    kind: LayerKind
    geometry_type: str
    id_field: str
    fields: tuple[FieldSpec, ...]
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    shared: bool = False


_S, _I = FieldType.STRING, FieldType.INTEGER
PLANS = (
    _Plan(
        "grid_cells",
        "grid-cells",
        "Grid cells",
        LayerKind.GRID_CELL,
        "Polygon",
        "grid_cell_id",
        (
            FieldSpec("name", _S),
            FieldSpec("grid_worker_id", _S, True),
            FieldSpec("grid_worker_name", _S, True),
        ),
    ),
    _Plan(
        "buildings",
        "buildings",
        "Buildings",
        LayerKind.BUILDING,
        "Polygon",
        "building_id",
        (
            FieldSpec("grid_cell_id", _S),
            FieldSpec("floors", _I),
            FieldSpec("use", _S),
            FieldSpec("households", _I),
        ),
    ),
    _Plan(
        "pois",
        "pois",
        "Points of interest",
        LayerKind.POI,
        "Point",
        "poi_id",
        (FieldSpec("kind", _S), FieldSpec("name", _S)),
        Sensitivity.PUBLIC,
    ),
    # Lines that meet at shared vertices: command dispatches by road over this layer.
    _Plan(
        "roads",
        "roads",
        "Roads",
        LayerKind.ROUTE,
        "LineString",
        "road_id",
        (FieldSpec("name", _S), FieldSpec("kind", _S)),
        Sensitivity.PUBLIC,
    ),
)


def _read(path: Path, layer: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    meta, _fids, geometry, field_data = pyogrio.raw.read(path, layer=layer)
    columns = dict(zip(meta["fields"], field_data, strict=True))
    return shapely.from_wkb(geometry), columns


def seed_demo(catalog: MapCatalog, path: Path | str) -> int:
    """Import the demo town; a no-op when its layers exist. Returns features imported."""
    path = Path(path)
    imported = 0
    geometries, columns = _read(path, "admin_boundaries")
    towns = np.flatnonzero(columns["level"] == "town")
    for row in towns:
        town = str(columns["tenant"][row])
        imported += _install(
            catalog,
            Layer(
                key=LayerKey(town, "boundaries"),
                display_name="Administrative boundaries",
                kind=LayerKind.ADMIN_BOUNDARY,
                geometry_type="MultiPolygon",
                fields=(
                    FieldSpec("tenant", _S, True),
                    FieldSpec("name", _S),
                    FieldSpec("level", _S),
                    FieldSpec("admin_code", _S),
                ),
                sensitivity=Sensitivity.PUBLIC,
                shared=True,
            ),
            DecodedFeatures(
                geometries,
                {k: columns[k] for k in ("tenant", "name", "level", "admin_code")},
                "EPSG:4326",
                np.array([str(t).replace("/", "-") for t in columns["tenant"]], dtype=object),
            ),
        )
    present = {str(name) for name, _ in pyogrio.list_layers(path)}
    for plan in PLANS:
        if plan.source_layer not in present:  # a file older than the layer
            continue
        geometries, columns = _read(path, plan.source_layer)
        for village in sorted(set(columns["tenant"])):
            rows = np.flatnonzero(columns["tenant"] == village)
            wanted = (plan.id_field, *(f.name for f in plan.fields))
            imported += _install(
                catalog,
                Layer(
                    key=LayerKey(str(village), plan.layer_id),
                    display_name=plan.display_name,
                    kind=plan.kind,
                    geometry_type=plan.geometry_type,
                    fields=plan.fields,
                    sensitivity=plan.sensitivity,
                    shared=plan.shared,
                ),
                DecodedFeatures(
                    geometries[rows],
                    {name: columns[name][rows] for name in wanted if name != plan.id_field},
                    "EPSG:4326",
                    columns[plan.id_field][rows],
                ),
            )
    return imported


def _install(catalog: MapCatalog, layer: Layer, source: DecodedFeatures) -> int:
    if layer.key in catalog.layers:
        return 0
    catalog.create_layer(SEED_PRINCIPAL, layer)
    result = catalog.import_features(SEED_PRINCIPAL, layer.key, source, ImportOptions())
    return result.imported


def load_grid_index(path: Path | str) -> GridIndex:
    """The grid straight from a demo file, for benchmarks and tests of the grid alone."""
    geometries, columns = _read(Path(path), GRID_LAYER)
    cells = [
        GridCell(
            grid_cell_id=str(columns["grid_cell_id"][i]),
            name=str(columns["name"][i]),
            village=str(columns["tenant"][i]),
            grid_worker_id=str(columns["grid_worker_id"][i]),
            grid_worker_name=str(columns["grid_worker_name"][i]),
        )
        for i in range(len(geometries))
    ]
    return GridIndex(cells=cells, polygons=geometries)

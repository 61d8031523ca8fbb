"""Read grid cells from a GeoPackage file (the embedded backend).

The file is the source of truth for `make run` and the tests; PostGIS joins it as
the production backend with the map component's issue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import shapely

from services.map.domain.grid import GridCell, GridIndex

GRID_LAYER = "grid_cells"
GRID_FIELDS = ("grid_cell_id", "name", "tenant", "grid_worker_id", "grid_worker_name")


def load_grid_index(path: Path | str) -> GridIndex:
    """Build the grid index from the `grid_cells` layer; fail loudly on a bad file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"map data file {path} does not exist")
    meta, _fids, geometry, field_data = pyogrio.raw.read(
        path, layer=GRID_LAYER, columns=list(GRID_FIELDS)
    )
    crs = (meta.get("crs") or "EPSG:4326").upper()
    if crs not in ("EPSG:4326", "EPSG:4490"):
        raise ValueError(f"{path}:{GRID_LAYER} is in {crs}; expected EPSG:4326")
    columns = dict(zip(meta["fields"], field_data, strict=True))
    missing = [f for f in GRID_FIELDS if f not in columns]
    if missing:
        raise ValueError(f"{path}:{GRID_LAYER} lacks fields {missing}")
    polygons = shapely.from_wkb(geometry)
    invalid = np.flatnonzero(~shapely.is_valid(polygons))
    if invalid.size:
        raise ValueError(f"{path}:{GRID_LAYER} has invalid geometry at rows {invalid[:5]}")
    cells = [
        GridCell(
            grid_cell_id=str(columns["grid_cell_id"][i]),
            name=str(columns["name"][i]),
            village=str(columns["tenant"][i]),
            grid_worker_id=str(columns["grid_worker_id"][i]),
            grid_worker_name=str(columns["grid_worker_name"][i]),
        )
        for i in range(len(polygons))
    ]
    return GridIndex(cells=cells, polygons=polygons)

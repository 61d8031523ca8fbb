"""Layers, their schemas and batches of features: the map's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

import numpy as np


class LayerKind(StrEnum):
    ADMIN_BOUNDARY = "admin_boundary"
    GRID_CELL = "grid_cell"
    BUILDING = "building"
    PARCEL = "parcel"
    POI = "poi"
    ROUTE = "route"
    GEOFENCE = "geofence"
    OTHER = "other"


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


class Sensitivity(StrEnum):
    """Who may read a layer: PUBLIC and INTERNAL by tenancy, SENSITIVE also needs a scope."""

    PUBLIC = "public"
    INTERNAL = "internal"
    SENSITIVE = "sensitive"


GEOMETRY_TYPES = (
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "Geometry",
)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class LayerKey:
    """A layer is addressed by its owning tenant path and its id."""

    tenant: str
    layer_id: str

    def __str__(self) -> str:
        return f"{self.tenant}:{self.layer_id}"


@dataclass(frozen=True)
class Layer:
    key: LayerKey
    display_name: str
    kind: LayerKind
    geometry_type: str
    fields: tuple[FieldSpec, ...]
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    shared: bool = False
    feature_count: int = 0
    extent: tuple[float, float, float, float] | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None

    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def with_stats(
        self,
        count: int,
        extent: tuple[float, float, float, float] | None,
        update_time: datetime,
    ) -> Layer:
        return replace(self, feature_count=count, extent=extent, update_time=update_time)


@dataclass
class FeatureBatch:
    """Features of one layer as columns: ids, shapely geometries (WGS84), properties."""

    ids: np.ndarray
    geometries: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def properties(self, row: int) -> dict[str, object]:
        return {name: _plain(values[row]) for name, values in self.columns.items()}

    def take(self, rows: np.ndarray) -> FeatureBatch:
        return FeatureBatch(
            ids=self.ids[rows],
            geometries=self.geometries[rows],
            columns={name: values[rows] for name, values in self.columns.items()},
        )

    def concat(self, other: FeatureBatch) -> FeatureBatch:
        """This batch followed by `other` (the same fields), as a store would list them."""
        return FeatureBatch(
            ids=np.concatenate([self.ids, other.ids]),
            geometries=np.concatenate([self.geometries, other.geometries]),
            columns={
                name: np.concatenate([values, other.columns[name]])
                for name, values in self.columns.items()
            },
        )

    @classmethod
    def empty(cls, field_names: tuple[str, ...] = ()) -> FeatureBatch:
        return cls(
            ids=np.array([], dtype=object),
            geometries=np.array([], dtype=object),
            columns={name: np.array([], dtype=object) for name in field_names},
        )


def _plain(value: object) -> object:
    """numpy scalars and NaN to plain JSON-friendly values."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN marks a missing number
        return None
    return value

"""Checks on layer definitions, and property values coerced to a layer's declared schema."""

from __future__ import annotations

import math
import re
from datetime import date

import numpy as np

from services.kit.errors import FieldViolation, InvalidArgument
from services.map.domain.model import GEOMETRY_TYPES, FieldSpec, FieldType, Layer, LayerKind

LAYER_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")
FEATURE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
RESERVED_FIELDS = frozenset({"fid", "feature_id", "geom", "id", "geometry"})
MAX_VIOLATIONS = 10

# Kinds whose features other components read by field name.
REQUIRED_FIELDS: dict[LayerKind, tuple[FieldSpec, ...]] = {
    LayerKind.GRID_CELL: (
        FieldSpec("grid_worker_id", FieldType.STRING, required=True),
        FieldSpec("grid_worker_name", FieldType.STRING, required=True),
    ),
}


# Fields that name a person: masked for callers without the people scope.
PERSONAL_FIELDS: dict[LayerKind, tuple[str, ...]] = {LayerKind.GRID_CELL: ("grid_worker_name",)}


def check_layer(layer: Layer, prefix: str = "layer.") -> None:
    violations: list[FieldViolation] = []
    if not LAYER_ID.match(layer.key.layer_id):
        violations.append(
            FieldViolation(
                "layer_id",
                "must be lower-case letters, digits and single hyphens, starting with a letter",
            )
        )
    if not layer.display_name.strip():
        violations.append(FieldViolation(f"{prefix}display_name", "is required"))
    if layer.geometry_type not in GEOMETRY_TYPES:
        violations.append(
            FieldViolation(
                f"{prefix}geometry_type",
                f"{layer.geometry_type!r} is not one of {', '.join(GEOMETRY_TYPES)}",
            )
        )
    seen: set[str] = set()
    for i, spec in enumerate(layer.fields):
        if not FIELD_NAME.match(spec.name) or spec.name in RESERVED_FIELDS:
            violations.append(
                FieldViolation(
                    f"{prefix}fields[{i}].name",
                    f"{spec.name!r} must be lower_snake_case and not one of "
                    f"{', '.join(sorted(RESERVED_FIELDS))}",
                )
            )
        if spec.name in seen:
            violations.append(FieldViolation(f"{prefix}fields[{i}].name", "appears twice"))
        seen.add(spec.name)
    declared = {f.name: f for f in layer.fields}
    for required in REQUIRED_FIELDS.get(layer.kind, ()):
        found = declared.get(required.name)
        if found is None or found.type is not required.type:
            violations.append(
                FieldViolation(
                    f"{prefix}fields",
                    f"a {layer.kind.value} layer needs the {required.type.value} field "
                    f"{required.name!r}",
                )
            )
    if violations:
        raise InvalidArgument(violations)


# Integer fields are stored as 64-bit integers (GeoPackage and PostGIS alike).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _coerce(value: object, spec: FieldSpec) -> object:
    """One value to the field's type; ValueError says why it cannot be."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if spec.type is FieldType.STRING:
        return str(value)
    if spec.type is FieldType.INTEGER:
        if isinstance(value, bool):
            raise ValueError("is a boolean, not an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value} is not a whole number")
        number = int(value)  # type: ignore[call-overload]
        if not INT64_MIN <= number <= INT64_MAX:
            raise ValueError(f"{value} does not fit a 64-bit integer")
        return number
    if spec.type is FieldType.NUMBER:
        if isinstance(value, bool):
            raise ValueError("is a boolean, not a number")
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return number
    if spec.type is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"{value!r} is not a boolean")
    return date.fromisoformat(str(value)[:10]).isoformat()


def coerce_columns(
    layer: Layer, columns: dict[str, np.ndarray], count: int, *, ignore_unknown: bool
) -> dict[str, np.ndarray]:
    """Properties as the layer declares them; every problem reported with its feature."""
    declared = {f.name: f for f in layer.fields}
    unknown = sorted(set(columns) - set(declared))
    if unknown and not ignore_unknown:
        raise InvalidArgument.field(
            "file",
            f"columns {unknown} are not fields of the layer; declare them or set "
            "ignore_unknown_fields",
        )
    violations: list[FieldViolation] = []
    result: dict[str, np.ndarray] = {}
    for name, spec in declared.items():
        source = columns.get(name)
        out = np.empty(count, dtype=object)
        for row in range(count):
            try:
                out[row] = None if source is None else _coerce(source[row], spec)
            except (ValueError, TypeError, OverflowError) as exc:
                violations.append(FieldViolation("file", f"feature {row}, field {name!r}: {exc}"))
                continue
            if out[row] is None and spec.required:
                violations.append(
                    FieldViolation("file", f"feature {row}: required field {name!r} is empty")
                )
            if len(violations) >= MAX_VIOLATIONS:
                raise InvalidArgument(violations)
        result[name] = out
    if violations:
        raise InvalidArgument(violations)
    return result


def feature_ids(ids: np.ndarray | None, count: int) -> np.ndarray:
    """Given ids checked for shape and uniqueness, or generated ones `f1`, `f2`, ..."""
    if ids is None:
        return np.array([f"f{i + 1}" for i in range(count)], dtype=object)
    text = np.array([None if v is None else str(v) for v in ids], dtype=object)
    violations = [
        FieldViolation("file", f"feature {row}: id {value!r} is not a valid feature id")
        for row, value in enumerate(text)
        if value is None or not FEATURE_ID.match(value)
    ][:MAX_VIOLATIONS]
    if violations:
        raise InvalidArgument(violations)
    unique, counts = np.unique(text.astype(str), return_counts=True)
    duplicates = unique[counts > 1]
    if duplicates.size:
        raise InvalidArgument.field(
            "file", f"feature ids repeat: {', '.join(map(str, duplicates[:5]))}"
        )
    return text

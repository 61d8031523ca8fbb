"""Geometry checks on import: present, valid (or repaired on request), of the layer's type."""

from __future__ import annotations

import numpy as np
import shapely

from services.kit.errors import FieldViolation, InvalidArgument

MAX_VIOLATIONS = 10
_FAMILY = {
    "Point": {"Point"},
    "MultiPoint": {"Point", "MultiPoint"},
    "LineString": {"LineString"},
    "MultiLineString": {"LineString", "MultiLineString"},
    "Polygon": {"Polygon"},
    "MultiPolygon": {"Polygon", "MultiPolygon"},
}


def check_geometries(
    geometries: np.ndarray, geometry_type: str, *, repair: bool
) -> tuple[np.ndarray, int]:
    """Return the geometries (repaired where asked) and how many were repaired.

    Anything wrong is INVALID_ARGUMENT naming the feature index and the reason, so a
    town GIS officer can fix the file; nothing is stored when one feature is bad.
    """
    geometries = np.asarray(geometries, dtype=object)
    violations: list[FieldViolation] = []
    missing = np.flatnonzero(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    violations += [FieldViolation("file", f"feature {i}: has no geometry") for i in missing]
    invalid = np.flatnonzero(~shapely.is_valid(geometries) & ~shapely.is_missing(geometries))
    repaired = 0
    if invalid.size and repair:
        fixed = shapely.make_valid(geometries[invalid], method="structure", keep_collapsed=False)
        geometries = geometries.copy()
        geometries[invalid] = fixed
        repaired = int(invalid.size)
        still = invalid[~shapely.is_valid(fixed) | shapely.is_empty(fixed)]
        violations += [FieldViolation("file", f"feature {i}: cannot be repaired") for i in still]
    elif invalid.size:
        reasons = shapely.is_valid_reason(geometries[invalid[:MAX_VIOLATIONS]])
        violations += [
            FieldViolation("file", f"feature {i}: invalid geometry ({reason}); ask for repair")
            for i, reason in zip(invalid, reasons, strict=False)
        ]
    allowed = _FAMILY.get(geometry_type)
    if allowed is not None and not violations:
        types = shapely.get_type_id(geometries)
        names = np.array(
            [
                "Point",
                "LineString",
                "LinearRing",
                "Polygon",
                "MultiPoint",
                "MultiLineString",
                "MultiPolygon",
                "GeometryCollection",
            ]
        )
        wrong = np.flatnonzero(~np.isin(names[types], list(allowed)))
        violations += [
            FieldViolation(
                "file", f"feature {i}: is a {names[types[i]]}, the layer holds {geometry_type}"
            )
            for i in wrong[:MAX_VIOLATIONS]
        ]
    if not violations:
        bounds = shapely.bounds(geometries)
        outside = np.flatnonzero(
            (bounds[:, 0] < -180)
            | (bounds[:, 2] > 180)
            | (bounds[:, 1] < -90)
            | (bounds[:, 3] > 90)
        )
        violations += [
            FieldViolation("file", f"feature {i}: coordinates outside longitude/latitude range")
            for i in outside[:MAX_VIOLATIONS]
        ]
    if violations:
        raise InvalidArgument(violations[:MAX_VIOLATIONS])
    return geometries, repaired

"""Whole geometries between a CRS and storage (WGS84), vectorised over all vertices."""

from __future__ import annotations

import numpy as np
import shapely

from services.kit import crs as crs_module


def to_storage(geometries: np.ndarray, source_crs: str) -> np.ndarray:
    canonical = crs_module.normalise_crs(source_crs, "crs")
    if canonical == crs_module.STORAGE_CRS:
        return geometries

    def convert(xy: np.ndarray) -> np.ndarray:
        lon, lat = crs_module.to_storage(xy[:, 0], xy[:, 1], canonical)
        return np.column_stack([lon, lat])

    return shapely.transform(geometries, convert)


def from_storage(geometries: np.ndarray, target_crs: str) -> np.ndarray:
    canonical = crs_module.normalise_crs(target_crs, "crs")
    if canonical == crs_module.STORAGE_CRS:
        return geometries

    def convert(xy: np.ndarray) -> np.ndarray:
        x, y = crs_module.from_storage(xy[:, 0], xy[:, 1], canonical)
        return np.column_stack([x, y])

    return shapely.transform(geometries, convert)

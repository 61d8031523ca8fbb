"""A map layer's geometries as another component keeps them (no gRPC here, so domain
code may hold one)."""

from __future__ import annotations

from dataclasses import dataclass

import shapely


@dataclass(frozen=True)
class LayerGeometry:
    """A map layer's features as the map service gave them (WGS84), and the layer's
    `update_time` they were read at (milliseconds since the epoch)."""

    layer: str
    geometries: tuple[shapely.Geometry, ...]
    update_ms: int

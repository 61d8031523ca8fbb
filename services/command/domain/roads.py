"""Distance by road over a village's road layer, for choosing the nearest handler.

Across a river or a walled compound the handler nearest as the crow flies may be the
farthest on foot. Where a village keeps a road layer (line features on the map), the
roads become a graph once per layer version: every vertex a node (lines are given a
vertex every ~20 m first; vertices shared by two lines, to 1e-7 degrees, join them),
every segment an edge weighted by its metres.
A dispatch is then one Dijkstra from the event's nearest node, and every candidate's
distance is a lookup: snap to the nearest node + path + snap. Lines that cross without
a shared vertex do not connect, as in any routable road network; candidates the roads
do not reach rank after those they do.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import shapely

from services.command.domain.model import Position
from services.kit.geodesy import equirect_m
from services.kit.layer_geometry import LayerGeometry

_SNAP_DECIMALS = 7
_VERTEX_EVERY_DEG = 0.0002


@dataclass(frozen=True)
class RoadNetwork:
    """A layer's roads as a weighted graph with a spatial index over its nodes."""

    layer: str
    update_ms: int
    graph: nx.Graph
    lon: np.ndarray  # node longitudes, degrees; node i is graph node i
    lat: np.ndarray
    index: shapely.STRtree

    @classmethod
    def of(cls, geometry: LayerGeometry) -> RoadNetwork | None:
        """The network of a layer's line features; None when it has no segment."""
        lines = [
            g
            for g in geometry.geometries
            if g is not None and not g.is_empty and g.geom_type in ("LineString", "MultiLineString")
        ]
        if not lines:
            return None
        # Vertices every ~20 m, so a position snaps to a node close to its nearest road.
        parts = shapely.segmentize(
            shapely.get_parts(np.asarray(lines, dtype=object)), _VERTEX_EVERY_DEG
        )
        coords, owner = shapely.get_coordinates(parts, return_index=True)
        if len(coords) < 2:
            return None
        nodes, node_of = np.unique(np.round(coords, _SNAP_DECIMALS), axis=0, return_inverse=True)
        node_of = node_of.reshape(-1)
        same_line = owner[:-1] == owner[1:]
        u, v = node_of[:-1][same_line], node_of[1:][same_line]
        keep = u != v
        u, v = u[keep], v[keep]
        if not len(u):
            return None
        weight = equirect_m(nodes[u, 0], nodes[u, 1], nodes[v, 0], nodes[v, 1])
        graph = nx.Graph()
        graph.add_weighted_edges_from(
            zip(u.tolist(), v.tolist(), weight.tolist(), strict=True), weight="m"
        )
        lon, lat = nodes[:, 0].copy(), nodes[:, 1].copy()
        index = shapely.STRtree(shapely.points(lon, lat))
        return cls(geometry.layer, geometry.update_ms, graph, lon, lat, index)

    def _snap(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each point's nearest node, and the metres to it."""
        nearest = self.index.query_nearest(shapely.points(lon, lat), all_matches=False)
        node = np.empty(len(lon), dtype=np.int64)
        node[nearest[0]] = nearest[1]
        return node, equirect_m(lon, lat, self.lon[node], self.lat[node])

    def metres_to(
        self,
        where: Position,
        lon: np.ndarray,
        lat: np.ndarray,
        limit_m: float | None = None,
        straight_m: np.ndarray | None = None,
    ) -> np.ndarray:
        """Metres by road from each (lon, lat) in degrees to `where`; inf where the roads
        do not connect them, or (with `limit_m`) where they are farther than that, which
        keeps the search to the neighbourhood the nearest candidates are in."""
        if not len(lon):
            return np.zeros(0)
        (target,), (target_snap,) = self._snap(
            np.array([where.longitude]), np.array([where.latitude])
        )
        result = np.full(len(lon), np.inf)
        rows = np.arange(len(lon))
        if limit_m is not None:
            straight = straight_m  # the caller's straight-line metres, when it has them
            if straight is None:
                here = np.full(len(lon), where.longitude), np.full(len(lon), where.latitude)
                straight = equirect_m(lon, lat, *here)
            rows = np.flatnonzero(straight <= limit_m)
            if not len(rows):
                return result
        lengths = np.full(len(self.lon), np.inf)
        if target in self.graph:
            reached = nx.single_source_dijkstra_path_length(
                self.graph, int(target), cutoff=limit_m, weight="m"
            )
            lengths[np.fromiter(reached, dtype=np.int64)] = np.fromiter(
                reached.values(), dtype=np.float64
            )
        node, snap = self._snap(lon[rows], lat[rows])
        result[rows] = snap + lengths[node] + target_snap
        if limit_m is not None:
            result[result > limit_m] = np.inf
        return result

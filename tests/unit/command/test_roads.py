"""Nearest by road: a river between the event and the nearest handler as the crow flies."""

from __future__ import annotations

from datetime import UTC, datetime

import networkx as nx
import numpy as np
import pytest
import shapely

from services.command.domain.dispatch import Roster, choose, distance_m
from services.command.domain.model import HandlerProfile, Position
from services.command.domain.roads import RoadNetwork
from services.kit.layer_geometry import LayerGeometry

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
# About 95 m per 0.001 degree of longitude and 111 m per 0.001 of latitude here.
LON, LAT = 121.20, 31.30


def at(dx: float, dy: float) -> tuple[float, float]:
    return (LON + dx, LAT + dy)


# A river runs north-south between x = 0.0005 and x = 0.0007. West bank road, east bank
# road, and one bridge 0.010 (about 1.1 km) north.
WEST = shapely.LineString([at(0, -0.005), at(0, 0), at(0, 0.010)])
BRIDGE = shapely.LineString([at(0, 0.010), at(0.0012, 0.010)])
EAST = shapely.LineString([at(0.0012, 0.010), at(0.0012, 0)])
# A lane on an island nobody's road reaches.
ISLAND = shapely.LineString([at(0.05, 0.05), at(0.051, 0.05)])
ROADS = LayerGeometry("tenants/v/layers/roads", (WEST, BRIDGE, EAST, ISLAND), 1)
EVENT = Position(*at(0, 0))


def handler(user: str, dx: float, dy: float) -> HandlerProfile:
    return HandlerProfile("v", user, user, position=Position(*at(dx, dy)))


def test_the_nearest_across_the_river_loses_to_the_nearest_by_road():
    across = handler("across", 0.0012, 0)  # about 115 m east, 2.4 km by road
    south = handler("south", 0, -0.004)  # about 440 m south, on the same bank
    roster = Roster.of([across, south], NOW)
    network = RoadNetwork.of(ROADS)
    assert network is not None

    straight = choose(roster, EVENT)
    assert straight is not None and straight.user == "across" and not straight.by_road

    by_road = choose(roster, EVENT, roads=network)
    assert by_road is not None and by_road.user == "south" and by_road.by_road
    assert by_road.distance_m == pytest.approx(distance_m(south.position, EVENT), abs=25)
    metres = network.metres_to(EVENT, np.array([LON + 0.0012]), np.array([LAT]))
    assert metres[0] == pytest.approx(2 * 1107 + 115, rel=0.02)  # up, over the bridge, down


def test_a_handler_the_roads_do_not_reach_comes_after_every_one_they_do():
    island = handler("island", 0.0505, 0.05)  # off the network's component
    far = handler("far", 0, 0.009)  # 1 km up the west bank
    roster = Roster.of([island, far], NOW)
    network = RoadNetwork.of(ROADS)
    chosen = choose(roster, EVENT, roads=network)
    assert chosen is not None and chosen.user == "far"
    alone = choose(Roster.of([island], NOW), EVENT, roads=network)
    assert alone is not None and alone.user == "island" and not alone.by_road


def test_a_layer_without_lines_makes_no_network():
    points = LayerGeometry("tenants/v/layers/roads", (shapely.Point(at(0, 0)),), 1)
    assert RoadNetwork.of(points) is None
    assert RoadNetwork.of(LayerGeometry("tenants/v/layers/roads", (), 1)) is None


def test_lines_meeting_at_a_shared_vertex_join_and_others_do_not():
    network = RoadNetwork.of(ROADS)
    assert network is not None
    # West, bridge and east share vertices: one component; the island is another.
    assert nx.number_connected_components(network.graph) == 2

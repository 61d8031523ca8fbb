"""Geofence shapes and episodes on their own: a route's line widened to a corridor in
metres on the ground, positions tested as arrays, breaches walked like a threshold."""

from __future__ import annotations

import math

import numpy as np
import shapely

from services.twin.domain.geofence import LayerGeometry, LayerShape
from services.twin.domain.rules import (
    IDLE,
    Cleared,
    Fired,
    Geofence,
    GeofenceMode,
    Phase,
    Rule,
    geofence_walk,
)

LON, LAT = 121.16, 31.29
M_LAT = 110_540.0
M_LON = 111_320.0 * math.cos(math.radians(LAT))
ROUTE = "tenants/sh-jiading-anting-xingming/layers/route"


def test_a_buffered_line_is_a_corridor_in_metres_both_ways():
    line = shapely.LineString([(LON - 0.01, LAT), (LON + 0.01, LAT)])
    shape = LayerShape(LayerGeometry(ROUTE, (line,), 1), buffer_m=50)
    offsets = np.array([0, 45, -45, 55, -55, 300])
    north = shape.covers(np.full(6, LON), LAT + offsets / M_LAT)
    east_end = shape.covers(LON + 0.01 + offsets / M_LON, np.full(6, LAT))
    assert north.tolist() == [True, True, True, False, False, False]
    # Beyond the line's east end the corridor is a round cap; west of it, the line.
    assert east_end.tolist() == [True, True, True, False, True, False]


def test_an_empty_layer_covers_nothing():
    shape = LayerShape(LayerGeometry(ROUTE, (), 0), buffer_m=10)
    assert not shape.covers(np.array([LON]), np.array([LAT])).any()


def test_a_breach_fires_after_its_dwell_and_clears_once():
    rule = Rule(
        "sh/jiading/anting/xingming",
        "parked",
        "Vehicle",
        "position",
        Geofence(ROUTE, GeofenceMode.INSIDE, dwell_ms=300_000, speed_property="speed_kmh"),
        "construction.illegal",
    )
    truck = ("sh/jiading/anting/xingming", "truck-07")
    breach = np.array([True, True, False, True, True, True])
    times = np.array([0, 200_000, 250_000, 260_000, 500_000, 560_000], dtype=np.int64)
    state, out = geofence_walk(rule, truck, IDLE, breach, times)
    assert [type(o) for o in out] == [Fired] and out[0].at_ms == 560_000
    assert state.phase == Phase.ACTIVE and state.since_ms == 260_000
    same, out = geofence_walk(rule, truck, state, np.array([True]), np.array([600_000]))
    assert out == [] and same == state
    state, out = geofence_walk(
        rule, truck, state, np.array([False, False]), np.array([7, 8]) * 10**5
    )
    assert [type(o) for o in out] == [Cleared] and state == IDLE

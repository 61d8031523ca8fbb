"""Waterlogging and flood watch: a gauge at a low point rises past the village's level ->
an event at its grid cell -> the cell's grid worker is offered it and, unanswered, the
town is called in -> the buildings within the affected radius come from the map ->
the residents are told by notice -> the water falls and the alarm clears."""

from __future__ import annotations

import secrets
import time

import shapely

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
RADIUS_M = 150


def test_rising_water_opens_an_event_lists_buildings_and_tells_residents(platform: Platform):
    platform.install("flood-watch", overrides={"alarm_level_cm": 25, "clear_level_cm": 15})
    assert platform.plan("flood-watch").empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    resident = platform.resident(XINGMING, 0)  # an account that should be told
    gauge = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/entities",
        json={
            "entity_id": f"lowpoint-{cell.cell_id.lower()}-{int(time.time())}",
            "entity_type": "WaterLevelGauge",
            "display_name": f"Underpass gauge in {cell.cell_id}",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    gauge_id = str(gauge["name"]).rsplit("/", 1)[-1]

    def level(*readings: float) -> None:
        now_ms = int(time.time() * 1000)
        secretary.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
            json={
                "entities": [gauge_id] * len(readings),
                "properties": ["level_cm"] * len(readings),
                "values": list(readings),
                "observe_times_ms": [
                    now_ms - 100 * (len(readings) - i) for i in range(len(readings))
                ],
            },
        )

    level(5, 28)  # 28 cm: under the default 30, over the village's 25
    event = eventually(
        lambda: next(
            iter(platform.events(category="safety.waterlogging", grid_cell=cell.cell_id)), None
        )
    )
    assert event["source"] == "twin_rule"
    assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
    assert event["severity"] == 4
    task = platform.task_of(event["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/flood-watch-waterlogging")

    town = platform.town_app()
    platform.advance(minutes=16)
    escalated = eventually(
        lambda: (t := town.ok("GET", f"/v1/{task['name']}"))["escalation_level"] == 1 and t
    )
    assert escalated["escalated_to"] == "sh/jiading/anting"

    # The buildings within the radius, nearest first, each truly within it.
    found = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/layers/buildings/features:search",
        json={
            "within_distance": {
                "geometry": {"type": "Point", "coordinates": [cell.lon, cell.lat]},
                "distance_meters": RADIUS_M,
            },
            "page_size": 500,
        },
    )["features"]
    assert found
    distances = [f["distance_meters"] for f in found]
    assert distances == sorted(distances) and distances[-1] <= RADIUS_M
    centre = shapely.Point(cell.lon, cell.lat)
    assert all(
        shapely.geometry.shape(f["geometry"]).distance(centre) < RADIUS_M / 80_000 for f in found
    )

    notice = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/notices",
        json={
            "title": "Waterlogging at the underpass",
            "body": f"Water is rising near {len(found)} buildings; avoid the underpass.",
            "audience": {"role": "resident"},
            "channels": ["in_app"],
            "request_id": secrets.token_hex(8),
        },
    )
    me = resident.ok("GET", "/v1/me")
    deliveries = eventually(
        lambda: secretary.ok("GET", f"/v1/{notice['name']}/deliveries", params={"page_size": 500})[
            "deliveries"
        ]
    )
    mine = [d for d in deliveries if d["recipient"] == me["subject"]]
    assert [d["channel"] for d in mine] == ["in_app"]
    assert mine[0]["read_time"] is None  # told, not yet read

    level(10)  # the water falls below 15 cm: the alarm clears on the event
    eventually(
        lambda: any(
            "Cleared" in c.get("text", "")
            for c in secretary.ok("GET", f"/v1/{event['name']}")["comments"]
        )
    )

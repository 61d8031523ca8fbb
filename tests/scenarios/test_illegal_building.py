"""Illegal construction: the village's permitted parcels are imported into the layer the
scenario made -> a grid worker's finding inside a permitted parcel is checked and left
alone -> one outside every parcel becomes an event in its grid cell for urban management
(the cell's grid worker) -> the rectification deadline passes and the town is called in."""

from __future__ import annotations

import json
import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
LAYER = f"/v1/tenants/{VILLAGE_ID}/layers/permitted-parcels"
D = 0.0002  # about 20 m


def square(lon: float, lat: float) -> list[list[list[float]]]:
    return [
        [
            [lon - D, lat - D],
            [lon + D, lat - D],
            [lon + D, lat + D],
            [lon - D, lat + D],
            [lon - D, lat - D],
        ]
    ]


def test_work_outside_permitted_parcels_is_dispatched_with_a_deadline(platform: Platform):
    platform.install("illegal-building", overrides={"rectification_hours": 72})
    assert platform.plan("illegal-building").empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    permit = f"JD-{secrets.token_hex(3)}"
    parcels = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": f"parcel-{permit}",
                "properties": {"permit_no": permit, "holder": "Zhang family"},
                "geometry": {"type": "Polygon", "coordinates": square(cell.lon, cell.lat)},
            }
        ],
    }
    secretary.ok(
        "POST",
        f"{LAYER}/features:import",
        files={"file": ("parcels.geojson", json.dumps(parcels), "application/geo+json")},
        data={"format": "geojson"},
    )

    def permitted(lon: float, lat: float) -> list[dict]:
        found = secretary.ok(
            "POST",
            f"{LAYER}/features:search",
            json={
                "within_distance": {
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "distance_meters": 0,
                }
            },
        )["features"]
        return found

    inside = permitted(cell.lon, cell.lat)
    assert [f["properties"]["permit_no"] for f in inside] == [permit]
    # 40 m east: outside the permitted parcel, still in the cell.
    lon, lat = cell.lon + 2 * D, cell.lat
    assert permitted(lon, lat) == []

    worker = platform.user(cell.grid_worker)
    finding = worker.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/events",
        json={
            "category": "urban.illegal_building",
            "description": "A second storey going up on a shed, no permit on the parcel layer",
            "location": {"longitude": lon, "latitude": lat},
            "source": "grid_patrol",
            "request_id": secrets.token_hex(8),
        },
    )
    assert (finding["village"], finding["grid_cell"]) == (XINGMING, cell.cell_id)
    task = platform.task_of(finding["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/illegal-building-rectification")
    for step in ("accept", "start"):
        worker.ok("POST", f"/v1/{task['name']}:{step}", json={})

    town = platform.town_app()

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    platform.advance(minutes=60 * 60)  # 60 h: within the 72 h deadline
    assert current()["escalation_level"] == 0
    platform.advance(minutes=13 * 60)
    escalated = eventually(lambda: (t := current())["escalation_level"] >= 1 and t)
    assert escalated["escalated_to"] == "sh/jiading/anting"
    assert escalated["handler"] == task["handler"]

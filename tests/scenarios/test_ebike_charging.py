"""E-bike indoor charging: a stairwell socket drawing an e-bike's current -> an event at
its grid cell -> the cell's grid worker offered the inspection -> no answer in the
village's 20 minutes -> the town is called in; a socket below the threshold stays quiet."""

from __future__ import annotations

import time

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)


def test_indoor_charging_opens_an_inspection_for_the_cells_grid_worker(platform: Platform):
    platform.install("ebike-charging", overrides={"charging_watts": 150, "response_minutes": 20})
    assert platform.plan("ebike-charging").empty

    cell = platform.cell(XINGMING)
    quiet_cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")

    def socket(where, suffix: str) -> str:
        made = secretary.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}/entities",
            json={
                "entity_id": f"socket-{where.cell_id.lower()}-{suffix}",
                "entity_type": "StairwellSocket",
                "display_name": f"Stairwell socket in {where.cell_id}",
                "location": {"longitude": where.lon, "latitude": where.lat},
            },
        )
        return str(made["name"]).rsplit("/", 1)[-1]

    charging, lamp = socket(cell, "a"), socket(quiet_cell, "b")
    now_ms = int(time.time() * 1000)
    secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
        json={
            "entities": [charging, charging, lamp, lamp],
            "properties": ["watts"] * 4,
            # 120 W would charge under the default 100 W; the village chose 150 W.
            "values": [5, 480, 5, 120],
            "observe_times_ms": [now_ms - 1000, now_ms, now_ms - 1000, now_ms],
        },
    )

    event = eventually(
        lambda: next(
            iter(platform.events(category="safety.ebike_indoor_charging", grid_cell=cell.cell_id)),
            None,
        )
    )
    assert event["source"] == "twin_rule"
    assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
    assert event["severity"] == 3

    task = platform.task_of(event["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/ebike-charging-inspection")
    assert task["state"] == "assigned"

    town = platform.town_app()

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    platform.advance(minutes=21)
    escalated = eventually(lambda: (t := current())["escalation_level"] == 1 and t)
    assert escalated["escalated_to"] == "sh/jiading/anting"
    assert escalated["handler"] == task["handler"]

    assert (
        platform.events(category="safety.ebike_indoor_charging", grid_cell=quiet_cell.cell_id) == []
    )

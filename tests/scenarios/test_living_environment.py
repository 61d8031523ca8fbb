"""Rural living environment: a waste transfer station near full and a farm's effluent
over the village's limit each become an event at their place -> the grid worker of the
cell is offered both -> unanswered past the response time, the town is called in;
a station below the threshold raises nothing."""

from __future__ import annotations

import time

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)


def test_station_and_farm_problems_become_events_for_the_cells_grid_worker(platform: Platform):
    platform.install("living-environment", overrides={"effluent_cod_limit": 300})
    assert platform.plan("living-environment").empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    stamp = int(time.time())

    def entity(kind: str, prefix: str, dx: float) -> str:
        made = secretary.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}/entities",
            json={
                "entity_id": f"{prefix}-{cell.cell_id.lower()}-{stamp}",
                "entity_type": kind,
                "display_name": f"{kind} in {cell.cell_id}",
                "location": {"longitude": cell.lon + dx, "latitude": cell.lat},
            },
        )
        return str(made["name"]).rsplit("/", 1)[-1]

    station = entity("WasteTransferStation", "station", 0.0)
    farm = entity("LivestockFarm", "farm", 0.0001)
    now_ms = int(time.time() * 1000)
    secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
        json={
            "entities": [station, station, farm, farm],
            "properties": ["fill_percent", "fill_percent", "effluent_cod", "effluent_cod"],
            # 350 mg/L passes the default 400 but not the village's 300.
            "values": [40, 96, 120, 350],
            "observe_times_ms": [now_ms - 1000, now_ms] * 2,
        },
    )

    worker = platform.handler_user(XINGMING, cell.grid_worker)
    tasks = {}
    for category in ("settlement.station_full", "settlement.farm_effluent"):
        event = eventually(
            lambda c=category: next(iter(platform.events(category=c, grid_cell=cell.cell_id)), None)
        )
        assert event["source"] == "twin_rule"
        assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
        task = platform.task_of(event["name"])
        assert task["handler"] == worker
        assert task["routing"]["routing_rule"].endswith("/routingRules/living-environment-problems")
        tasks[category] = task
    assert (
        platform.events(category="settlement.farm_effluent", grid_cell=cell.cell_id)[0]["severity"]
        == 3
    )

    town = platform.town_app()
    platform.advance(minutes=121)
    for task in tasks.values():
        escalated = eventually(
            lambda t=task: (c := town.ok("GET", f"/v1/{t['name']}"))["escalation_level"] == 1 and c
        )
        assert escalated["escalated_to"] == "sh/jiading/anting"
        assert escalated["handler"] == worker

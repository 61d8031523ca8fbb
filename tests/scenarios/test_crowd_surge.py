"""Crowd surge early warning: a hotspot's headcount climbs past the village's bounds ->
the emergency plan opens level 3, then 2 (teams dispatched, checklist, notices) and an
event opens at the hotspot's grid cell for its grid worker -> the crowd thins -> the plan
stands down and closes what its levels opened."""

from __future__ import annotations

import time

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
PLAN_TITLE = "Crowd surge at a hotspot (scenario)"


def test_headcount_raises_the_plan_level_by_level_and_stands_it_down(platform: Platform):
    # A small square: 300 / 800 / 1,500 people instead of the lakeside's thousands.
    platform.install(
        "crowd-surge",
        overrides={
            "level3_headcount": 300,
            "level2_headcount": 800,
            "level1_headcount": 1500,
            "hysteresis": 50,
        },
    )
    assert platform.plan("crowd-surge").empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    counter = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/entities",
        json={
            "entity_id": f"crowd-{cell.cell_id.lower()}-{int(time.time())}",
            "entity_type": "CrowdCounter",
            "display_name": f"People counter at the square in {cell.cell_id}",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    counter_id = str(counter["name"]).rsplit("/", 1)[-1]
    plans = secretary.ok("GET", f"/v1/tenants/{VILLAGE_ID}/emergencyPlans")["emergency_plans"]
    plan = next(p for p in plans if p["display_name"] == PLAN_TITLE)
    assert plan["signal"] == f"tenants/{VILLAGE_ID}/rules/crowd-surge-headcount"

    def count(people: int) -> None:
        secretary.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
            json={
                "entities": [counter_id],
                "properties": ["count"],
                "values": [people],
                "observe_times_ms": [int(time.time() * 1000)],
            },
        )

    def level(wanted: int) -> dict:
        return eventually(
            lambda: (
                (p := secretary.ok("GET", f"/v1/{plan['name']}"))["current_level"] == wanted and p
            )
        )

    count(100)
    count(450)
    at_watch = level(3)
    assert {i["level"] for i in at_watch["items"] if i["state"] == "open"} == {3}
    # Level 3 does not raise an event; level 2 does.
    assert platform.events(category="safety.crowd_surge", grid_cell=cell.cell_id) == []

    time.sleep(0.01)  # the next reading is strictly newer
    count(950)
    managing = level(2)
    open_items = [i for i in managing["items"] if i["state"] == "open"]
    assert {i["level"] for i in open_items} == {3, 2}
    assert {i["kind"] for i in open_items if i["level"] == 2} == {
        "dispatch",
        "checklist",
        "notice",
    }
    # Level 2 sends volunteers (any of the village's, by default): its dispatch tasks
    # are offered to handlers holding the role, not left waiting for a team nobody holds.
    volunteers = {
        h["user"]
        for h in secretary.ok(
            "GET",
            f"/v1/tenants/{VILLAGE_ID}/handlers",
            params={"role": "volunteer", "page_size": 100},
        )["handlers"]
    }

    def offered_to_volunteers() -> list[dict] | None:
        now = secretary.ok("GET", f"/v1/{plan['name']}")
        [dispatch] = [i for i in now["items"] if i["level"] == 2 and i["kind"] == "dispatch"]
        tasks = [secretary.ok("GET", f"/v1/{name}") for name in dispatch["tasks"]]
        assigned = [t for t in tasks if t["state"] == "assigned"]
        return assigned or None

    assert volunteers
    assert {t["handler"] for t in eventually(offered_to_volunteers)} <= volunteers
    event = eventually(
        lambda: next(
            iter(platform.events(category="safety.crowd_surge", grid_cell=cell.cell_id)), None
        )
    )
    assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
    task = platform.task_of(event["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/crowd-surge-hotspot")

    time.sleep(0.01)
    count(120)
    stood_down = level(0)
    assert stood_down["items"]
    assert all(i["state"] == "closed" for i in stood_down["items"] if i["level"] in (2, 3))
    log = secretary.ok(
        "GET", f"/v1/tenants/{VILLAGE_ID}/commandLogEntries", params={"page_size": 50}
    )["command_log_entries"]
    assert any(e["resource"] == plan["name"] and e["actor"].startswith("signal:") for e in log)

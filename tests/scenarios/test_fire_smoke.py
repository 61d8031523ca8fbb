"""Smoke alarm in old buildings: a detector's alarm -> an event at its grid cell -> the
cell's grid worker offered the task -> no answer in 5 minutes -> the town is called in."""

from __future__ import annotations

import time

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)


def test_an_alarm_reaches_the_cells_grid_worker_and_escalates_after_five_minutes(
    platform: Platform,
):
    platform.install("fire-smoke")
    assert platform.plan("fire-smoke").empty  # installing twice changes nothing

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    detector = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/entities",
        json={
            "entity_id": f"smoke-{cell.cell_id.lower()}",
            "entity_type": "SmokeDetector",
            "display_name": f"Stairwell smoke detector in {cell.cell_id}",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    now_ms = int(time.time() * 1000)
    secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
        json={
            "entities": [detector["name"].rsplit("/", 1)[-1]] * 2,
            "properties": ["smoke", "smoke"],
            "values": [0, 1],
            "observe_times_ms": [now_ms - 1000, now_ms],
        },
    )

    town = platform.town_app()
    event = eventually(
        lambda: next(
            iter(platform.events(category="safety.smoke_alarm", grid_cell=cell.cell_id)), None
        )
    )
    assert event["source"] == "twin_rule"
    assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
    assert event["severity"] == 5

    task = platform.task_of(event["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["state"] == "assigned"  # offered, not yet accepted
    assert task["routing"]["routing_rule"].endswith("/routingRules/fire-smoke-alarm")
    assert task["escalation_level"] == 0

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    # Four minutes without an answer: at risk (80 % of five), not yet escalated.
    platform.advance(minutes=4)
    assert eventually(lambda: current()["sla_status"] == "at_risk")
    assert current()["escalation_level"] == 0
    # Past five: the town is called in, the grid worker keeps the offer.
    platform.advance(minutes=2)
    escalated = eventually(lambda: (t := current())["escalation_level"] == 1 and t)
    assert escalated["escalated_to"] == "sh/jiading/anting"
    assert escalated["supervisor"] == platform.handler_user("sh/jiading/anting", "anting.officer")
    assert escalated["handler"] == task["handler"]

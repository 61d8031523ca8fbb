"""Dispute mediation: a dispute registered at its place -> the cell's mediator (the
grid worker, by the village's choice) takes it and records sessions -> unresolved at
the village's deadline, the town's mediation office is called in -> the outcome closes
it; the parties' phone is masked for a volunteer, who has no business with it."""

from __future__ import annotations

import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
PHONE = "13900001111"


def test_a_dispute_is_mediated_escalated_when_overdue_and_settled(platform: Platform):
    platform.install("dispute-mediation", overrides={"resolution_hours": 72})
    assert platform.plan("dispute-mediation").empty

    cell = platform.cell(XINGMING)
    resident = platform.resident(XINGMING, 0)
    dispute = resident.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/events",
        json={
            "category": "dispute.neighbours",
            "description": "Water leaking from the flat above for a month; neighbours argue",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
            "reporter_contact": PHONE,
            "request_id": secrets.token_hex(8),
        },
    )
    assert (dispute["village"], dispute["grid_cell"]) == (XINGMING, cell.cell_id)

    task = platform.task_of(dispute["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/dispute-mediation-neighbours")
    mediator = platform.user(cell.grid_worker)
    for step in ("accept", "start"):
        mediator.ok("POST", f"/v1/{task['name']}:{step}", json={})
    for session in ("Session 1: both families heard", "Session 2: plumber's report shared"):
        mediator.ok("POST", f"/v1/{dispute['name']}/comments", json={"text": session})

    town = platform.town_app()

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    # Two days in: still the village's; past three days unresolved: the town joins.
    platform.advance(minutes=48 * 60)
    assert current()["escalation_level"] == 0
    platform.advance(minutes=25 * 60)
    escalated = eventually(lambda: (t := current())["escalation_level"] >= 1 and t)
    assert escalated["escalated_to"] == "sh/jiading/anting"
    assert escalated["handler"] == task["handler"]

    mediator.ok(
        "POST", f"/v1/{task['name']}:resolve", json={"note": "Agreement signed: upstairs pays"}
    )
    settled = eventually(
        lambda: (e := resident.ok("GET", f"/v1/{dispute['name']}"))["state"] == "resolved" and e
    )
    assert settled["reporter_contact"] == PHONE

    volunteer_id = next(
        h["id"]
        for h in town.ok("GET", f"/v1/tenants/{VILLAGE_ID}/handlers", params={"page_size": 500})[
            "handlers"
        ]
        if "volunteer" in h["roles"]
    )
    seen = platform.user(volunteer_id).get(f"/v1/{dispute['name']}")
    if seen.status_code == 200:
        assert seen.json()["reporter_contact"] != PHONE
    else:
        assert seen.status_code in (403, 404)

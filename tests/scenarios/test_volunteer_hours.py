"""Volunteer service: the village publishes a task -> the nearest volunteer on duty is
offered it -> accepts and does it -> the resolved task pays the village's points, once."""

from __future__ import annotations

import math
import secrets
import time

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)


def metres(a: dict, lon: float, lat: float) -> float:
    dx = (a["longitude"] - lon) * 111_320 * math.cos(math.radians(lat))
    return math.hypot(dx, (a["latitude"] - lat) * 110_540)


def test_a_volunteer_task_goes_to_the_nearest_volunteer_and_pays_points_once(
    platform: Platform,
):
    platform.install("volunteer-hours", overrides={"points_per_task": 15})
    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    town = platform.town_app()
    volunteers = [
        h
        for h in town.ok("GET", f"/v1/tenants/{VILLAGE_ID}/handlers", params={"page_size": 500})[
            "handlers"
        ]
        if "volunteer" in h["roles"] and h["on_duty"]
    ]
    nearest = min(volunteers, key=lambda h: metres(h["position"], cell.lon, cell.lat))

    event = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/events",
        json={
            "category": "volunteer.task",
            "description": "Help an elderly resident carry shopping upstairs",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
            "request_id": secrets.token_hex(8),
        },
    )
    task = platform.task_of(event["name"])
    assert task["handler"] == nearest["user"]
    assert task["handler_role"] == "volunteer"

    def account() -> dict | None:
        found = secretary.ok(
            "GET",
            f"/v1/tenants/{VILLAGE_ID}/pointsAccounts",
            params={"holder": nearest["user"]},
        )["points_accounts"]
        return found[0] if found else None

    before = (account() or {"balance": 0})["balance"]
    volunteer = platform.user(nearest["id"])
    for step in ("accept", "start"):
        volunteer.ok("POST", f"/v1/{task['name']}:{step}", json={})
    volunteer.ok("POST", f"/v1/{task['name']}:resolve", json={"note": "Done"})

    credited = eventually(lambda: (a := account()) and a["balance"] == before + 15 and a)

    def entries_of_task() -> list[dict]:
        entries = secretary.ok(
            "GET", f"/v1/{credited['name']}/ledgerEntries", params={"page_size": 200}
        )["ledger_entries"]
        return [e for e in entries if task["id"] in e["idempotency_key"]]

    assert [e["amount"] for e in entries_of_task()] == [15]
    time.sleep(1.0)  # facts may arrive again; the ledger keys them, so nothing more is paid
    assert [e["amount"] for e in entries_of_task()] == [15]
    assert account()["balance"] == before + 15

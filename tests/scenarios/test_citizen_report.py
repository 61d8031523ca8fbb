"""Report it with a photo: a resident's GCJ-02 report -> located in its grid cell -> a
repeat nearby merges into it -> the cell's grid worker accepts, works and resolves ->
the resident rates it and it closes; the reporter's phone is masked for the grid worker."""

from __future__ import annotations

import secrets

import numpy as np

from services.kit import tenancy
from services.kit.crs import wgs84_to_gcj02
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
PHONE = "13812345678"


def gcj02(lon: float, lat: float) -> dict[str, object]:
    x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    return {"longitude": float(x[0]), "latitude": float(y[0]), "crs": "GCJ-02"}


def report(api, lon: float, lat: float, text: str) -> dict:
    return api.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/events",
        json={
            "category": "environment.garbage",
            "description": text,
            "location": gcj02(lon, lat),
            "media_uris": ["https://photos.example/garbage.jpg"],
            "reporter_contact": PHONE,
            "request_id": secrets.token_hex(8),
        },
    )


def test_a_residents_report_is_located_merged_handled_rated_and_masked(platform: Platform):
    platform.install("citizen-report", overrides={"duplicate_radius_m": 80})
    assert platform.plan("citizen-report").empty  # overrides are remembered: nothing to do

    cell = platform.cell(XINGMING)
    resident = platform.resident(XINGMING, 0)
    neighbour = platform.resident(XINGMING, 1)
    first = report(resident, cell.lon, cell.lat, "Bags of rubbish dumped by the path")
    assert (first["village"], first["grid_cell"]) == (XINGMING, cell.cell_id)
    # About 40 m away, within the village's 80 m: the same problem.
    again = report(neighbour, cell.lon + 0.0004, cell.lat, "Rubbish by the path again")
    assert again["state"] == "duplicate"
    assert again["duplicate_of"] in (first["name"], first["id"])

    task = platform.task_of(first["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/citizen-report-environment")

    worker = platform.user(cell.grid_worker)
    seen_by_worker = worker.ok("GET", f"/v1/{first['name']}")
    assert seen_by_worker["reporter_contact"] != PHONE
    assert seen_by_worker["reporter_contact"].endswith(PHONE[-4:])
    assert "*" in seen_by_worker["reporter_contact"]
    seen_by_secretary = platform.user("xingming.secretary").ok("GET", f"/v1/{first['name']}")
    assert seen_by_secretary["reporter_contact"] == PHONE
    assert resident.ok("GET", f"/v1/{first['name']}")["reporter_contact"] == PHONE

    for step in ("accept", "start"):
        worker.ok("POST", f"/v1/{task['name']}:{step}", json={})
    worker.ok("POST", f"/v1/{task['name']}:resolve", json={"note": "Cleared; bin added"})
    eventually(lambda: resident.ok("GET", f"/v1/{first['name']}")["state"] == "resolved")

    rated = resident.ok("POST", f"/v1/{first['name']}:evaluate", json={"score": 5, "text": "Quick"})
    assert rated["state"] == "closed"
    assert rated["evaluation"]["score"] == 5

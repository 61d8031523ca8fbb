"""Fill once, report many: a grid worker enters each premises inspection once -> the
fire, work-safety and health departments' reports each come out of the same records
with their own numbers; a bad record is refused naming its fields; a hazard found on
an inspection is an event in the premises' grid cell."""

from __future__ import annotations

import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform

VILLAGE_ID = tenancy.path_to_id(XINGMING)
FORM = f"/v1/tenants/{VILLAGE_ID}/forms/premises-inspection/records"

INSPECTIONS = (
    # premises, kind, extinguishers, exits, hazards, kitchen
    ("Wang's noodle shop", "restaurant", "true", "true", "1", "true"),
    ("Li's hot pot", "restaurant", "false", "true", "3", "false"),
    ("Bicycle repair workshop", "workshop", "true", "false", "4", ""),
    ("Corner grocery", "shop", "true", "true", "0", ""),
)


def test_one_inspection_record_feeds_three_departments_reports(platform: Platform):
    platform.install("fill-once-reports")
    assert platform.plan("fill-once-reports").empty

    cell = platform.cell(XINGMING)
    worker = platform.user(cell.grid_worker)
    where = f"{cell.lon:.6f},{cell.lat:.6f}"
    for premises, kind, extinguishers, exits, hazards, kitchen in INSPECTIONS:
        values = {
            "premises": premises,
            "kind": kind,
            "location": where,
            "extinguishers_ok": extinguishers,
            "exits_clear": exits,
            "hazards": hazards,
        }
        if kitchen:
            values["kitchen_clean"] = kitchen
        worker.ok(
            "POST",
            FORM,
            json={"values": values, "grid_cell": cell.cell_id, "request_id": secrets.token_hex(8)},
        )
    bad = worker.post(
        FORM,
        json={
            "values": {
                "premises": "Tea house",
                "kind": "teahouse",
                "location": where,
                "extinguishers_ok": "true",
                "exits_clear": "true",
                "hazards": "-1",
            },
            "grid_cell": cell.cell_id,
            "request_id": secrets.token_hex(8),
        },
    )
    assert bad.status_code == 400
    assert {v["field"] for v in bad.json()["error"]["field_violations"]} >= {
        "record.values.kind",
        "record.values.hazards",
    }

    secretary = platform.user("xingming.secretary")

    def run(template: str) -> dict:
        return secretary.ok(
            "POST", f"/v1/tenants/{VILLAGE_ID}/reportTemplates/{template}:run", json={}
        )

    fire = run("fill-once-fire")
    assert fire["headings"] == [
        "Grid cell",
        "Premises inspected",
        "Extinguishers in date",
        "Escape routes clear",
    ]
    assert {r[0]: r[1:] for r in fire["rows"]}[cell.cell_id] == ["4", "3", "3"]

    safety = run("fill-once-safety")
    by_kind = {(r[0], r[1]): r[2:] for r in safety["rows"]}
    assert by_kind[(cell.cell_id, "restaurant")] == ["2", "4", "3"]
    assert by_kind[(cell.cell_id, "workshop")] == ["1", "4", "4"]
    assert by_kind[(cell.cell_id, "shop")] == ["1", "0", "0"]

    health = run("fill-once-health")
    assert {r[0]: r[1:] for r in health["rows"]}[cell.cell_id] == ["2", "1"]
    # Every report read the same records: entered once, not per department.
    assert fire["record_count"] == safety["record_count"] == health["record_count"] >= 4

    hazard = worker.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/events",
        json={
            "category": "inspection.hazard",
            "description": "Gas cylinders stored by the workshop's only exit",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
            "source": "grid_patrol",
            "request_id": secrets.token_hex(8),
        },
    )
    assert (hazard["village"], hazard["grid_cell"]) == (XINGMING, cell.cell_id)

"""Grid patrol: a grid worker records patrols once -> a finding becomes an event routed
back to the cell's grid worker -> the coverage report counts patrols, findings and
minutes per grid cell with a total."""

from __future__ import annotations

import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform

VILLAGE_ID = tenancy.path_to_id(XINGMING)


def test_patrols_are_recorded_once_findings_dispatched_and_coverage_reported(
    platform: Platform,
):
    platform.install("grid-patrol")
    cell = platform.cell(XINGMING)
    worker = platform.user(cell.grid_worker)
    where = f"{cell.lon:.6f},{cell.lat:.6f}"
    for finding, minutes in (("false", "30"), ("true", "15")):
        worker.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}/forms/grid-patrol/records",
            json={
                "values": {"location": where, "finding": finding, "minutes": minutes},
                "grid_cell": cell.cell_id,
                "request_id": secrets.token_hex(8),
            },
        )
    bad = worker.post(
        f"/v1/tenants/{VILLAGE_ID}/forms/grid-patrol/records",
        json={
            "values": {"location": where, "finding": "maybe", "minutes": "0"},
            "grid_cell": cell.cell_id,
            "request_id": secrets.token_hex(8),
        },
    )
    assert bad.status_code == 400
    assert {v["field"] for v in bad.json()["error"]["field_violations"]} >= {
        "record.values.finding",
        "record.values.minutes",
    }

    finding = worker.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/events",
        json={
            "category": "patrol.finding",
            "description": "Blocked fire lane behind the market",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
            "source": "grid_patrol",
            "request_id": secrets.token_hex(8),
        },
    )
    assert finding["grid_cell"] == cell.cell_id
    task = platform.task_of(finding["name"])
    assert task["handler"] == platform.handler_user(XINGMING, cell.grid_worker)
    assert task["routing"]["routing_rule"].endswith("/routingRules/grid-patrol-findings")

    secretary = platform.user("xingming.secretary")
    run = secretary.ok(
        "POST", f"/v1/tenants/{VILLAGE_ID}/reportTemplates/grid-patrol-coverage:run", json={}
    )
    assert run["headings"] == ["Grid cell", "Patrols", "Findings", "Minutes"]
    rows = {row[0]: row[1:] for row in run["rows"]}
    assert rows[cell.cell_id] == ["2", "1", "45"]
    total = next(
        row for label, row in rows.items() if label not in {c.cell_id for c in platform.cells}
    )
    assert int(total[0]) == run["record_count"] >= 2

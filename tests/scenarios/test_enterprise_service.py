"""Enterprise service desk: the village's enterprises on the map -> each profile entered
once -> the report matches every enterprise to the policies it qualifies for -> an
enterprise's request is an event in its grid cell offered to the enterprise desk -> a
missed answer time brings in the town -> the desk's answer reaches the enterprise."""

from __future__ import annotations

import json
import secrets

from services.kit import tenancy
from tests.scenarios.harness import TOWN, XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
LAYER = f"{V}/layers/enterprises"


def test_enterprises_are_matched_to_policies_and_their_requests_reach_the_desk(
    platform: Platform,
):
    platform.install("enterprise-service", overrides={"response_minutes": 60})
    assert platform.plan("enterprise-service", overrides={"response_minutes": 60}).empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    tag = secrets.token_hex(3)
    mill = f"Xingming Rice Mill {tag}"
    studio = f"Lakeside Design Studio {tag}"
    places = {mill: (cell.lon, cell.lat), studio: (cell.lon + 0.0004, cell.lat)}
    secretary.ok(
        "POST",
        f"{LAYER}/features:import",
        files={
            "file": (
                "enterprises.geojson",
                json.dumps(
                    {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "id": f"ent-{n}-{tag}",
                                "properties": {"enterprise": name},
                                "geometry": {"type": "Point", "coordinates": list(at)},
                            }
                            for n, (name, at) in enumerate(places.items())
                        ],
                    }
                ),
                "application/geo+json",
            )
        },
        data={"format": "geojson"},
    )
    nearby = secretary.ok(
        "POST",
        f"{LAYER}/features:search",
        json={
            "within_distance": {
                "geometry": {"type": "Point", "coordinates": [cell.lon, cell.lat]},
                "distance_meters": 60,
            }
        },
    )["features"]
    assert {f["properties"]["enterprise"] for f in nearby} >= {mill, studio}

    # The grid worker enters each profile once; the report matches them to policies.
    worker = platform.user(cell.grid_worker)
    for name, industry, size, employees, high_tech, locals_ in (
        (mill, "manufacturing", "small", "38", "false", "true"),
        (studio, "services", "micro", "6", "true", "false"),
    ):
        worker.ok(
            "POST",
            f"{V}/forms/enterprise-profile/records",
            json={
                "values": {
                    "enterprise": name,
                    "industry": industry,
                    "size": size,
                    "employees": employees,
                    "high_tech": high_tech,
                    "hires_locals": locals_,
                },
                "grid_cell": cell.cell_id,
                "request_id": secrets.token_hex(8),
            },
        )
    report = secretary.ok("POST", f"{V}/reportTemplates/enterprise-policy-matches:run", json={})
    assert report["headings"][1:5] == [
        "High-tech tax relief",
        "Small business loan subsidy",
        "Equipment upgrade grant",
        "Local hiring subsidy",
    ]
    rows = {r[0]: r[1:] for r in report["rows"]}
    assert rows[mill] == ["0", "1", "1", "1", "38"]
    assert rows[studio] == ["1", "0", "0", "0", "6"]

    # The village's enterprise desk.
    clerk = platform.user(platform.new_user(XINGMING, ["grid_worker"], kind="staff"))
    clerk_subject = clerk.ok("GET", "/v1/me")["subject"]
    secretary.ok(
        "POST",
        f"{V}/handlers",
        json={
            "user": clerk_subject,
            "roles": ["enterprise_desk"],
            "position": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    contact = platform.resident(XINGMING, 1)  # the mill's manager
    request = contact.ok(
        "POST",
        f"{V}/events",
        json={
            "category": "enterprise.request",
            "source": "enterprise",
            "description": f"{mill}: three-phase power for a new husking line",
            "location": {"longitude": places[mill][0], "latitude": places[mill][1]},
            "request_id": secrets.token_hex(8),
        },
    )
    assert request["source"] == "enterprise"
    assert (request["village"], request["grid_cell"]) == (XINGMING, cell.cell_id)
    task = platform.task_of(request["name"])
    assert task["handler"] == clerk_subject
    assert task["routing"]["routing_rule"].endswith("/routingRules/enterprise-service-desk")

    town = platform.town_app()
    platform.advance(minutes=59)
    assert town.ok("GET", f"/v1/{task['name']}")["escalation_level"] == 0
    platform.advance(minutes=2)
    escalated = eventually(
        lambda: (t := town.ok("GET", f"/v1/{task['name']}"))["escalation_level"] == 1 and t
    )
    assert escalated["escalated_to"] == TOWN

    for step in ("accept", "start"):
        clerk.ok("POST", f"/v1/{task['name']}:{step}", json={})
    answer = "Grid company booked for Thursday; the line subsidy form is on its way"
    clerk.ok("POST", f"/v1/{task['name']}:resolve", json={"note": answer})
    seen = eventually(
        lambda: (e := contact.ok("GET", f"/v1/{request['name']}"))["state"] == "resolved" and e
    )
    assert seen["timeline"][-1]["note"] == answer

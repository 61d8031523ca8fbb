"""Welfare of the elderly living alone: a home sensor's activity keeps the check away ->
a day of silence (the twin's clock, moved, not slept through) opens a welfare check in
the home's grid cell -> the nearest volunteer on duty is offered it and escalates to the
town when unanswered -> the person's record reads unmasked only for their carer."""

from __future__ import annotations

import math
import secrets
import time

from services.kit import gb11643, tenancy
from tests.scenarios.harness import XINGMING, Api, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
CATEGORY = "care.welfare_check"


def metres(a: dict, lon: float, lat: float) -> float:
    dx = (a["longitude"] - lon) * 111_320 * math.cos(math.radians(lat))
    return math.hypot(dx, (a["latitude"] - lat) * 110_540)


def an_id_number(born: str = "19400312") -> str:
    body = f"310114{born}{secrets.randbelow(900) + 100}"
    return body + gb11643.check_character(body)


def test_a_silent_home_sends_the_nearest_volunteer_and_only_the_carer_reads_the_person(
    platform: Platform,
):
    platform.install("lone-elderly")
    assert platform.plan("lone-elderly").empty  # installing twice changes nothing

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    town = platform.town_app()
    carer = platform.handler_user(XINGMING, "xingming.carer")

    # The village registers her, naming her carer; the answer to a write is masked.
    person = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/people",
        json={
            "display_name": "王秀英",
            "id_number": an_id_number(),
            "phone": "13800138000",
            "kind": "elderly_alone",
            "address": f"No. 12, {cell.cell_id}",
            "grid_cell": cell.cell_id,
            "tags": ["lives-alone"],
            "carer": carer,
        },
    )
    assert person["masked"] and person["carer"] == carer

    sensor = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/entities",
        json={
            "entity_id": f"home-{cell.cell_id.lower()}-{secrets.token_hex(2)}",
            "entity_type": "ElderlyHomeSensor",
            "display_name": f"Home of No. 12, {cell.cell_id}",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    sensor_id = sensor["name"].rsplit("/", 1)[-1]

    def activity() -> None:
        secretary.ok(
            "POST",
            f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
            json={
                "entities": [sensor_id],
                "properties": ["activity"],
                "values": [1],
                "observe_times_ms": [platform.now_ms()],
            },
        )

    def welfare_checks() -> list[dict]:
        return [
            e
            for e in platform.events(category=CATEGORY, grid_cell=cell.cell_id)
            if sensor_id in e["description"] or e["source"] == "twin_rule"
        ]

    activity()
    # 23 hours quiet, then the tap runs: the silence starts again.
    platform.advance(hours=23)
    time.sleep(2.0)  # the twin looks every second
    assert welfare_checks() == []
    activity()
    platform.advance(hours=23)
    time.sleep(2.0)
    assert welfare_checks() == []
    # A whole day without a sign of life: a welfare check at her home.
    platform.advance(hours=1, minutes=5)
    event = eventually(lambda: next(iter(welfare_checks()), None))
    assert event["source"] == "twin_rule"
    assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
    assert event["severity"] == 3

    volunteers = [
        h
        for h in town.ok("GET", f"/v1/tenants/{VILLAGE_ID}/handlers", params={"page_size": 500})[
            "handlers"
        ]
        if "volunteer" in h["roles"] and h["on_duty"]
    ]
    nearest = min(volunteers, key=lambda h: metres(h["position"], cell.lon, cell.lat))
    task = platform.task_of(event["name"])
    assert task["handler"] == nearest["user"]
    assert task["handler_role"] == "volunteer"
    assert task["routing"]["routing_rule"].endswith("/routingRules/lone-elderly-welfare-check")

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    # Thirty minutes to answer: at 25 not yet escalated, past 30 the town is called in.
    platform.advance(minutes=25)
    assert eventually(lambda: current()["sla_status"] == "at_risk")
    assert current()["escalation_level"] == 0
    platform.advance(minutes=6)
    escalated = eventually(lambda: (t := current())["escalation_level"] == 1 and t)
    assert escalated["escalated_to"] == "sh/jiading/anting"
    assert escalated["handler"] == nearest["user"]

    # Who reads her record: only the carer (with a purpose, audited) sees it whole.
    path = f"/v1/{person['name']}"
    purpose = {"purpose": "welfare check: no activity for a day"}

    def read(api: Api) -> dict:
        return api.ok("GET", path, params=purpose)

    volunteer = platform.user(nearest["id"])
    refused = volunteer.get(path, params=purpose)
    assert refused.status_code == 403, refused.text  # volunteers do not read the registry
    worker = read(platform.user(cell.grid_worker))
    assert worker["masked"] and worker["display_name"] != "王秀英"
    assert worker["phone"] != "13800138000"
    another_carer = platform.user(platform.new_user(XINGMING, ["carer"]))
    assert read(another_carer)["masked"]
    listed = another_carer.ok(
        "GET", f"/v1/tenants/{VILLAGE_ID}/people", params={**purpose, "page_size": 1000}
    )["people"]
    assert [p["masked"] for p in listed if p["name"] == person["name"]] == [True]
    theirs = platform.user("xingming.carer")
    assert theirs.ok("GET", path)["masked"]  # no purpose stated: masked like anyone's
    whole = read(theirs)
    assert not whole["masked"]
    assert (whole["display_name"], whole["phone"]) == ("王秀英", "13800138000")
    audit = platform.user("district.auditor").ok(
        "GET",
        f"/v1/tenants/{VILLAGE_ID}/auditEntries",
        params={"filter": f'record = "{person["name"]}"'},
    )["audit_entries"]
    assert [(a["subject"], a["purpose"]) for a in audit if a["subject"] == carer] == [
        (carer, purpose["purpose"])
    ]

    # The volunteer visits and resolves; the check is done.
    for step in ("accept", "start"):
        volunteer.ok("POST", f"/v1/{task['name']}:{step}", json={})
    volunteer.ok("POST", f"/v1/{task['name']}:resolve", json={"note": "She is well; phone was off"})
    assert eventually(lambda: current()["state"] == "done")

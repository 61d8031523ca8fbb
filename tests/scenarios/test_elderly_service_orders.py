"""Elderly care service orders: an elderly resident's care plan -> a service order for
the village's nearest carer on duty (not the nearer one off duty) -> the carer checks in
at the home (refused from across the village) and out with a note; an extra visit the
family asks for -> an event in the home's grid cell -> the nearest carer offered it ->
the town called in when nobody answers in time -> done, points paid once; the resident's
name and phone are masked for a grid worker and shown to the carer, who is audited."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from services.kit import gb11643, tenancy
from tests.scenarios.harness import TOWN, XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"


def id_number(born: str) -> str:
    """A valid (GB 11643) invented ID number, new on every run of an attached platform."""
    return gb11643.with_check_character(f"310114{born}{secrets.randbelow(1000):03d}")


def test_a_care_plan_sends_the_nearest_carer_on_duty_who_checks_in_and_out(platform: Platform):
    platform.install("elderly-service-orders", overrides={"response_minutes": 10})
    assert platform.plan("elderly-service-orders", overrides={"response_minutes": 10}).empty

    cell = platform.cell(XINGMING)
    home = {"longitude": cell.lon + 0.0003, "latitude": cell.lat}
    secretary = platform.user("xingming.secretary")
    username = platform.new_user(XINGMING, ["carer"], kind="volunteer")
    carer = platform.user(username)
    carer_subject = carer.ok("GET", "/v1/me")["subject"]
    elder = secretary.ok(
        "POST",
        f"{V}/people",
        json={
            "display_name": "Zhou Guilan",
            "id_number": id_number("19400312"),
            "phone": "13912345678",
            "kind": "elderly_alone",
            "address": f"Lane 3, house {secrets.randbelow(90) + 10}",
            "grid_cell": cell.cell_id,
            "tags": ["lives-alone"],
            "carer": carer_subject,  # the one carer who reads her unmasked
        },
    )

    # The village's carers: one just down the lane, one at the very door but off duty.
    secretary.ok(
        "POST",
        f"{V}/handlers",
        json={
            "user": carer_subject,
            "roles": ["carer"],
            "position": {"longitude": home["longitude"] + 0.0001, "latitude": home["latitude"]},
        },
    )
    off_duty = f"carer-off-{secrets.token_hex(3)}"
    _, off_duty_user = platform.new_handler_user(XINGMING, ["carer"])
    secretary.ok(
        "POST",
        f"{V}/handlers",
        json={
            "user": off_duty_user,
            "handler_id": off_duty,
            "roles": ["carer"],
            "on_duty": False,
            "position": home,
        },
    )

    # The care plan: a visit every Monday, the first one in a few minutes.
    start = (platform.now() + timedelta(minutes=2)).replace(microsecond=0)
    plan = secretary.ok(
        "POST",
        f"{V}/servicePlans",
        json={
            "display_name": f"Care plan of {elder['id']}",
            "recurrence": "FREQ=WEEKLY",
            "start_time": start.isoformat(),
            "visit_minutes": 60,
            "handler_role": "carer",
            "max_check_in_distance_meters": 50,
            "targets": [{"id": elder["id"], "display_name": elder["address"], "location": home}],
            "request_id": secrets.token_hex(8),
        },
    )
    assert plan["carers"] == []  # the village's carers on duty, not a list kept by hand

    def orders() -> list[dict]:
        return secretary.ok(
            "GET", f"{V}/serviceOrders", params={"service_plan": plan["id"], "page_size": 50}
        )["service_orders"]

    order = eventually(lambda: next(iter(orders()), None))
    assert order["handler"] == carer_subject
    assert order["state"] == "assigned"
    assert order["target_display_name"] == elder["address"]  # an address, not a name
    assert order["scheduled_time"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert len(orders()) == 1  # one order per target per occurrence
    mine = carer.ok("GET", f"{V}/serviceOrders", params={"handler": carer_subject})
    assert order["id"] in {o["id"] for o in mine["service_orders"]}

    # Checking in from the village square is refused, naming the place.
    far = carer.post(
        f"/v1/{order['name']}:checkIn",
        json={"location": {"longitude": home["longitude"] + 0.005, "latitude": home["latitude"]}},
    )
    assert far.status_code == 400
    assert far.json()["error"]["field_violations"][0]["field"] == "location"
    # Another carer may not check in to it.
    other = platform.user("xingming.carer").post(
        f"/v1/{order['name']}:checkIn", json={"location": home}
    )
    assert other.status_code == 403
    checked_in = carer.ok("POST", f"/v1/{order['name']}:checkIn", json={"location": home})
    assert checked_in["state"] == "checked_in"
    done = carer.ok(
        "POST",
        f"/v1/{order['name']}:checkOut",
        json={"location": home, "note": "Medicine taken; fridge stocked"},
    )
    assert (done["state"], done["note"]) == ("done", "Medicine taken; fridge stocked")
    log = secretary.ok("GET", f"{V}/commandLogEntries", params={"resource": order["name"]})[
        "command_log_entries"
    ]
    assert [e["action"] for e in log] == [
        "service_order.checked_out",
        "service_order.checked_in",
        "service_order.check_in_refused",
        "service_order.assigned",
    ]

    # The family asks for an extra visit: an event at the home, for the nearest carer.
    family = platform.resident(XINGMING)
    event = family.ok(
        "POST",
        f"{V}/events",
        json={
            "category": "care.extra_visit",
            "description": "Mother has a fever; please look in today",
            "location": home,
            "request_id": secrets.token_hex(8),
        },
    )
    assert (event["village"], event["grid_cell"]) == (XINGMING, cell.cell_id)
    task = platform.task_of(event["name"])
    assert task["handler"] == carer_subject
    assert task["routing"]["routing_rule"].endswith("/routingRules/elderly-care-extra-visit")
    town = platform.town_app()

    def current() -> dict:
        return town.ok("GET", f"/v1/{task['name']}")

    platform.advance(minutes=9)
    assert eventually(lambda: current()["sla_status"] == "at_risk")
    assert current()["escalation_level"] == 0
    platform.advance(minutes=2)
    escalated = eventually(lambda: (t := current())["escalation_level"] == 1 and t)
    assert escalated["escalated_to"] == TOWN
    assert escalated["supervisor"] == platform.handler_user(TOWN, "anting.officer")

    def account() -> dict | None:
        found = secretary.ok("GET", f"{V}/pointsAccounts", params={"holder": carer_subject})
        return next(iter(found["points_accounts"]), None)

    for step in ("accept", "start"):
        carer.ok("POST", f"/v1/{task['name']}:{step}", json={})
    carer.ok("POST", f"/v1/{task['name']}:resolve", json={"note": "Fever down; doctor called"})
    paid = eventually(lambda: (a := account()) and a["balance"] == 5 and a)
    time.sleep(1.0)  # a fact delivered again pays nothing more
    entries = secretary.ok("GET", f"/v1/{paid['name']}/ledgerEntries")["ledger_entries"]
    assert [e["amount"] for e in entries] == [5]

    # Personal data: masked for a grid worker, shown to the carer with a purpose, audited.
    seen_by_worker = platform.user(cell.grid_worker).ok("GET", f"/v1/{elder['name']}")
    assert seen_by_worker["masked"] is True
    assert "Zhou Guilan" not in seen_by_worker["display_name"]
    assert seen_by_worker["phone"] != "13912345678"
    another_carer = platform.user("xingming.carer")
    assert another_carer.ok("GET", f"/v1/{elder['name']}", params={"purpose": "curious"})["masked"]
    seen_by_carer = carer.ok("GET", f"/v1/{elder['name']}", params={"purpose": "extra care visit"})
    assert (seen_by_carer["masked"], seen_by_carer["display_name"]) == (False, "Zhou Guilan")
    audit = platform.user("district.auditor").ok(
        "GET", f"{V}/auditEntries", params={"filter": f'record = "{elder["name"]}"'}
    )["audit_entries"]
    assert [(a["subject"], a["purpose"]) for a in audit if a["action"] == "people.read"] == [
        (carer_subject, "extra care visit")
    ]

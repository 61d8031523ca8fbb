"""Chronic disease follow-up: the clinic's follow-up plan for two patients -> an order
each for the carer -> the carer visits one patient, checks in and out and records the
visit once on the form -> the other follow-up is missed: at its due time it goes to the
nearest doctor of the village clinic, who visits and records it -> the clinic's report
counts both, one done by the clinic."""

from __future__ import annotations

import secrets
from datetime import timedelta

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
FORM = f"{V}/forms/chronic-followup-visit/records"


def test_a_missed_follow_up_escalates_to_the_village_clinic(platform: Platform):
    platform.install("chronic-followup")
    assert platform.plan("chronic-followup").empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    carer = platform.user("xingming.carer")
    carer_subject = platform.handler_user(XINGMING, "xingming.carer")
    # The clinic: a doctor at the clinic near the cell, another across the village.
    doctor = platform.user(platform.new_user(XINGMING, ["carer"], kind="staff"))
    doctors = {"near": doctor.ok("GET", "/v1/me")["subject"]}
    far = f"doctor-far-{secrets.token_hex(3)}"
    _, doctors["far"] = platform.new_handler_user(XINGMING, ["carer"])
    for user, handler_id, dx in ((doctors["near"], None, 0.0006), (doctors["far"], far, 0.02)):
        secretary.ok(
            "POST",
            f"{V}/handlers",
            json={
                "user": user,
                "handler_id": handler_id,
                "roles": ["village_doctor"],
                "position": {"longitude": cell.lon + dx, "latitude": cell.lat},
            },
        )
    homes = {
        "p-wang": {"longitude": cell.lon + 0.0002, "latitude": cell.lat},
        "p-chen": {"longitude": cell.lon + 0.0004, "latitude": cell.lat + 0.0001},
    }
    start = (platform.now() + timedelta(minutes=2)).replace(microsecond=0)
    plan = secretary.ok(
        "POST",
        f"{V}/servicePlans",
        json={
            "display_name": f"Hypertension follow-ups, {cell.cell_id}",
            "recurrence": "FREQ=MONTHLY",
            "start_time": start.isoformat(),
            "visit_minutes": 120,
            "handler_role": "carer",
            "carers": [carer_subject],
            "max_check_in_distance_meters": 50,
            "targets": [
                {"id": pid, "display_name": f"Patient {pid}", "location": at}
                for pid, at in homes.items()
            ],
            "escalation_role": "village_doctor",
            "request_id": secrets.token_hex(8),
        },
    )
    assert plan["escalation_role"] == "village_doctor"

    def orders() -> dict[str, dict]:
        listed = secretary.ok(
            "GET", f"{V}/serviceOrders", params={"service_plan": plan["id"], "page_size": 50}
        )["service_orders"]
        return {o["target"]: o for o in listed}

    made = eventually(lambda: (o := orders()) and len(o) == 2 and o)
    assert {o["handler"] for o in made.values()} == {carer_subject}

    def record(by: object, patient: str, **values: str) -> dict:
        return by.ok(  # type: ignore[attr-defined]
            "POST",
            FORM,
            json={
                "values": {"patient": patient, "condition": "hypertension", **values},
                "grid_cell": cell.cell_id,
                "request_id": secrets.token_hex(8),
            },
        )

    # The carer calls on Wang in time and records the visit once.
    wang = made["p-wang"]
    carer.ok("POST", f"/v1/{wang['name']}:checkIn", json={"location": homes["p-wang"]})
    carer.ok(
        "POST",
        f"/v1/{wang['name']}:checkOut",
        json={"location": homes["p-wang"], "note": "138/88, tablets taken"},
    )
    record(
        carer, "p-wang", systolic="138", diastolic="88", medication_taken="true", controlled="true"
    )

    # Nobody calls on Chen: a minute before the due time nothing moves, at it the clinic's
    # nearest doctor has it.
    platform.advance(minutes=121)
    assert orders()["p-chen"]["handler"] == carer_subject
    platform.advance(minutes=2)
    chen = eventually(lambda: (o := orders()["p-chen"])["escalated_from"] and o)
    assert chen["handler"] == doctors["near"]
    assert chen["escalated_from"] == carer_subject
    assert chen["state"] == "assigned"
    assert orders()["p-wang"]["state"] == "done" and not orders()["p-wang"]["escalated_from"]
    log = secretary.ok("GET", f"{V}/commandLogEntries", params={"resource": chen["name"]})
    escalated = log["command_log_entries"][0]
    assert escalated["action"] == "service_order.escalated"
    assert escalated["detail"] == f"{carer_subject} -> {doctors['near']}"
    # The carer can no longer check in to it.
    late = carer.post(f"/v1/{chen['name']}:checkIn", json={"location": homes["p-chen"]})
    assert late.status_code == 403

    # The doctor visits and records it; the clinic's report counts both follow-ups.
    doctor.ok("POST", f"/v1/{chen['name']}:checkIn", json={"location": homes["p-chen"]})
    done = doctor.ok(
        "POST",
        f"/v1/{chen['name']}:checkOut",
        json={"location": homes["p-chen"], "note": "171/102; medication restarted"},
    )
    assert done["state"] == "done"
    record(
        doctor,
        "p-chen",
        systolic="171",
        diastolic="102",
        medication_taken="false",
        controlled="false",
        by_clinic="true",
    )
    report = secretary.ok("POST", f"{V}/reportTemplates/chronic-followup-monthly:run", json={})
    assert report["headings"] == [
        "Grid cell",
        "Condition",
        "Follow-ups",
        "Under control",
        "Taking medication",
        "Done by the clinic",
        "Highest systolic",
    ]
    rows = {(r[0], r[1]): r[2:] for r in report["rows"]}
    assert rows[(cell.cell_id, "hypertension")] == ["2", "1", "1", "1", "171"]

""" "One thing" joint handling: a resident applies once for a birth -> the application
and one part per department are recorded in the home's grid cell -> each part is
offered to its own department's desk -> a desk that does not answer in time brings in
the town -> the last department's answer resolves the application with all three
answers -> the applicant rates it once; a desk sees the applicant's phone masked."""

from __future__ import annotations

import secrets

from services.kit import tenancy
from tests.scenarios.harness import TOWN, XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
DESKS = {
    "onething.birth.household": "household",
    "onething.birth.insurance": "medical_insurance",
    "onething.birth.allowance": "civil_affairs",
}


def test_one_application_fans_out_to_three_desks_and_returns_one_answer(platform: Platform):
    platform.install("one-thing", overrides={"response_minutes": 30})
    assert platform.plan("one-thing", overrides={"response_minutes": 30}).empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    # Each department's desk: a clerk with a handler profile in the department's team.
    clerks = {}
    for category, team in DESKS.items():
        clerk = platform.user(platform.new_user(XINGMING, ["grid_worker"], kind="staff"))
        subject = clerk.ok("GET", "/v1/me")["subject"]
        secretary.ok(
            "POST",
            f"{V}/handlers",
            json={
                "user": subject,
                "roles": ["department_desk"],
                "teams": [team],
                "position": {"longitude": cell.lon, "latitude": cell.lat},
            },
        )
        clerks[category] = (clerk, subject)

    applicant = platform.resident(XINGMING)
    application = applicant.ok(
        "POST",
        f"{V}/events",
        json={
            "category": "onething.birth",
            "description": "Birth of Chen Xiaoyu on 1 December; register, insure, allowance",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
            "reporter_contact": "13987654321",
            "request_id": secrets.token_hex(8),
        },
    )
    assert (application["village"], application["grid_cell"]) == (XINGMING, cell.cell_id)
    app_id = application["name"].rsplit("/", 1)[-1]
    parts = eventually(lambda: (p := platform.events(parent=app_id)) and len(p) == 3 and p)
    assert {p["category"] for p in parts} == set(DESKS)
    assert {(p["parent"], p["grid_cell"]) for p in parts} == {(app_id, cell.cell_id)}
    # The applicant follows the parts of their own application too.
    mine = applicant.ok("GET", f"{V}/events", params={"parent": app_id})["events"]
    assert len(mine) == 3

    tasks = {p["category"]: platform.task_of(p["name"]) for p in parts}
    for category, task in tasks.items():
        assert task["handler"] == clerks[category][1], category
        assert task["team"] == DESKS[category]
    # The household and insurance desks take theirs at once; the allowance desk does not.
    for category in ("onething.birth.household", "onething.birth.insurance"):
        clerk = clerks[category][0]
        for step in ("accept", "start"):
            clerk.ok("POST", f"/v1/{tasks[category]['name']}:{step}", json={})
    town = platform.town_app()
    slow = tasks["onething.birth.allowance"]
    platform.advance(minutes=31)
    escalated = eventually(
        lambda: (t := town.ok("GET", f"/v1/{slow['name']}"))["escalation_level"] == 1 and t
    )
    assert escalated["escalated_to"] == TOWN
    for category in ("onething.birth.household", "onething.birth.insurance"):
        assert town.ok("GET", f"/v1/{tasks[category]['name']}")["escalation_level"] == 0

    # A desk sees the applicant's phone masked.
    seen = clerks["onething.birth.household"][0].ok("GET", f"/v1/{application['name']}")
    assert seen["reporter_contact"] != "13987654321" and "****" in seen["reporter_contact"]
    assert applicant.ok("GET", f"/v1/{application['name']}")["reporter_contact"] == "13987654321"

    answers = {
        "onething.birth.household": "Registered in the household register",
        "onething.birth.insurance": "Insured from birth",
        "onething.birth.allowance": "Allowance of 1,000 yuan approved",
    }
    clerk = clerks["onething.birth.allowance"][0]
    for step in ("accept", "start"):
        clerk.ok("POST", f"/v1/{slow['name']}:{step}", json={})

    def part_state(category: str) -> str:
        part = next(p for p in parts if p["category"] == category)
        return str(applicant.ok("GET", f"/v1/{part['name']}")["state"])

    for i, (category, note) in enumerate(answers.items()):
        clerk = clerks[category][0]
        clerk.ok("POST", f"/v1/{tasks[category]['name']}:resolve", json={"note": note})
        if i < 2:  # answered parts do not answer the application: the last one does
            eventually(lambda category=category: part_state(category) == "resolved")
            assert applicant.ok("GET", f"/v1/{application['name']}")["state"] == "reported"

    def answered() -> dict | None:
        found = applicant.ok("GET", f"/v1/{application['name']}")
        return found if found["state"] == "resolved" else None

    one = eventually(answered)
    last = one["timeline"][-1]
    assert last["actor"] == "services/events/joint"
    for category, note in answers.items():
        assert f"{category}: resolved ({note})" in last["note"]
    closed = applicant.ok(
        "POST", f"/v1/{application['name']}:evaluate", json={"score": 5, "text": "One visit"}
    )
    assert closed["state"] == "closed"

"""An emergency level's tasks through the gateway on the demo town, as `make run` has it:
the plan raised over REST, its tasks listed, offered to the nearest grid workers (by the
demo's roads), accepted and resolved by one of them with their own sign-in, counted on
the board, and cancelled when the plan stands down."""

from __future__ import annotations

import time
from collections import Counter

import httpx

from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack

VILLAGE = "sh-jiading-anting-xingming"
V = f"/v1/tenants/{VILLAGE}"
WORKER = "gw-xingming-03"


def _signed_in(stack: Stack, username: str) -> dict[str, str]:
    credentials = DemoCredentials.load(stack.credentials_file)
    account = credentials.account(username)
    answer = httpx.post(
        f"{stack.config.gateway_url}/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": account.password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_raised_level_opens_tasks_that_handlers_take_over_rest(stack: Stack) -> None:
    stack.install_demo_command()  # the demo's handler profiles, at their grid cells
    desk = _signed_in(stack, "xingming.secretary")
    worker = _signed_in(stack, WORKER)
    with httpx.Client(base_url=stack.config.gateway_url, timeout=30) as api:
        profile = api.get(f"{V}/handlers/{WORKER}", headers=desk).json()
        at = profile["position"]
        created = api.post(
            f"{V}/emergencyPlans",
            headers=desk,
            json={
                "display_name": "Flooded underpass",
                "location": {"longitude": at["longitude"], "latitude": at["latitude"]},
                "levels": [
                    {"level": 3, "dispatches": [{"role": "grid_worker", "count": 2}]},
                    {"level": 2, "checklist": ["Close the underpass"]},
                    {"level": 1, "checklist": ["Call the town's pumps"]},
                ],
                "request_id": "it-plan-tasks-underpass",
            },
        )
        assert created.status_code == 201, created.text
        plan = created.json()
        assert plan["location"]["longitude"] == at["longitude"]
        raised = api.post(
            f"{V}/emergencyPlans/{plan['id']}:changeLevel",
            headers=desk,
            json={"level": 2, "reason": "water 40 cm deep"},
        )
        assert raised.status_code == 200, raised.text
        named = sorted(n for item in raised.json()["items"] for n in item["tasks"])
        assert len(named) == 3

        listed = api.get(f"{V}/tasks", headers=desk, params={"emergency_plan": plan["name"]})
        assert listed.status_code == 200, listed.text
        tasks = listed.json()["tasks"]
        assert sorted(t["name"] for t in tasks) == named
        assert all(t["event"] == "" and t["emergency_plan"] == plan["name"] for t in tasks)
        sent = [t for t in tasks if t["handler_role"] == "grid_worker"]
        assert len({t["handler"] for t in sent}) == 2
        mine = next(t for t in sent if t["handler"] == profile["user"])  # the nearest
        assert mine["state"] == "assigned" and mine["distance_meters"] < 60
        (waiting,) = [t for t in tasks if t["state"] == "waiting"]
        assert waiting["description"].endswith("Close the underpass")

        board = api.get(f"{V}/commandBoard", headers=desk).json()
        assert board["by_state"].get("assigned", 0) >= 2
        assert board["by_state"].get("waiting", 0) >= 1

        accepted = api.post(f"{V}/tasks/{mine['id']}:accept", headers=worker)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["state"] == "accepted"
        refused = api.post(f"{V}/tasks/{mine['id']}:accept", headers=worker)
        assert refused.status_code == 400, refused.text
        done = api.post(
            f"{V}/tasks/{mine['id']}:resolve", headers=worker, json={"note": "barrier up"}
        )
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "done"

        down = api.post(
            f"{V}/emergencyPlans/{plan['id']}:changeLevel",
            headers=desk,
            json={"level": 0, "reason": "water gone"},
        )
        assert down.status_code == 200, down.text
        after = api.get(f"{V}/tasks", headers=desk, params={"emergency_plan": plan["name"]}).json()[
            "tasks"
        ]
        assert Counter(t["state"] for t in after) == Counter({"done": 1, "cancelled": 2})


def test_the_demo_crowd_plan_sends_its_volunteers_and_its_notices_reach_the_village(
    stack: Stack,
) -> None:
    stack.install_demo_command()
    plan_name, _visits = stack.install_demo_plans()
    desk = _signed_in(stack, "xingming.secretary")
    plan_id = plan_name.rsplit("/", 1)[-1]
    with httpx.Client(base_url=stack.config.gateway_url, timeout=30) as api:
        raised = api.post(
            f"{V}/emergencyPlans/{plan_id}:changeLevel",
            headers=desk,
            json={"level": 2, "reason": "5,412 people counted on the square"},
        )
        assert raised.status_code == 200, raised.text
        tasks = api.get(f"{V}/tasks", headers=desk, params={"emergency_plan": plan_name}).json()[
            "tasks"
        ]
        volunteers = [t for t in tasks if t["handler_role"] == "volunteer"]
        assert len(volunteers) == 2
        assert {t["state"] for t in volunteers} == {"assigned"}
        assert len({t["handler"] for t in volunteers}) == 2
        for task in volunteers:
            assert "offered to the nearest available volunteer" in task["routing"]["explanation"]
        bodies: set[str] = set()
        for _ in range(100):
            listed = api.get(f"{V}/notices", headers=desk, params={"page_size": 50})
            assert listed.status_code == 200, listed.text
            bodies = {n["body"] for n in listed.json()["notices"]}
            if {"Crowd building on the square", "Avoid the village square"} <= bodies:
                break
            time.sleep(0.2)
        assert {"Crowd building on the square", "Avoid the village square"} <= bodies
        down = api.post(
            f"{V}/emergencyPlans/{plan_id}:changeLevel",
            headers=desk,
            json={"level": 0, "reason": "square empty again"},
        )
        assert down.status_code == 200, down.text

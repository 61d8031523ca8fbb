"""An emergency level's tasks over REST: the gateway as `python -m gateway` builds it, in
front of the command service on each store. A commander raises the plan and sees its
tasks, a grid worker accepts and resolves the one offered to them, and the stand-down
cancels the rest."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from gateway.app import create_app
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.principal import Principal
from tests.conftest import XINGMING
from tests.unit.command_plans.conftest import COMMANDER
from tests.unit.command_plans.test_plan_tasks import NEAR, SQUARE, WORKER, people

V = f"/v1/tenants/{XINGMING.replace('/', '-')}"


def rest(command: Any, subject: str, scopes: frozenset[str]) -> httpx.AsyncClient:
    """A client of the gateway, acting as `subject` of the village."""
    settings = GatewaySettings(**{f"{n}_address": command.address for n in NAMES})
    who = Principal(subject=subject, tenant=XINGMING, kind="user", scopes=scopes)
    app = create_app(settings, fixed_caller=Caller(who, None))
    app.state.upstreams = Upstreams(StaticDiscovery(settings.addresses()), NAMES, timeout=10.0)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"X-API-Key": "grk_app_secret"},  # any: the caller is fixed
    )


async def test_a_level_raised_over_rest_opens_tasks_a_handler_takes(command) -> None:
    await people(command)
    desk = rest(command, "users/commander", COMMANDER)
    worker = rest(command, NEAR, WORKER)
    try:
        created = await desk.post(
            f"{V}/emergencyPlans",
            json={
                "display_name": "Flooded underpass",
                "location": {"longitude": SQUARE[0], "latitude": SQUARE[1]},
                "levels": [
                    {"level": 3, "dispatches": [{"role": "grid_worker", "count": 2}]},
                    {"level": 2, "checklist": ["Close the underpass"]},
                    {"level": 1, "checklist": ["Call the town's pumps"]},
                ],
            },
        )
        assert created.status_code == 201, created.text
        plan = created.json()
        assert plan["location"]["longitude"] == SQUARE[0]
        raised = await desk.post(
            f"{V}/emergencyPlans/{plan['id']}:changeLevel",
            json={"level": 2, "reason": "water 40 cm deep"},
        )
        assert raised.status_code == 200, raised.text
        named = sorted(n for item in raised.json()["items"] for n in item["tasks"])
        assert len(named) == 3

        listed = await desk.get(f"{V}/tasks", params={"emergency_plan": plan["name"]})
        assert listed.status_code == 200, listed.text
        tasks = listed.json()["tasks"]
        assert sorted(t["name"] for t in tasks) == named
        assert all(t["event"] == "" and t["emergency_plan"] == plan["name"] for t in tasks)
        mine = next(t for t in tasks if t["handler"] == NEAR)  # the nearest grid worker
        assert mine["state"] == "assigned" and mine["distance_meters"] < 200
        (waiting,) = [t for t in tasks if t["state"] == "waiting"]
        assert waiting["description"].endswith("Close the underpass")
        board = (await desk.get(f"{V}/commandBoard")).json()
        # One name for an offered task, the contract's: board, list filter and errors.
        assert board["by_state"] == {"assigned": 2, "waiting": 1}
        offered = await desk.get(f"{V}/tasks", params={"state": "assigned"})
        assert len(offered.json()["tasks"]) == 2, offered.text
        other_word = await desk.get(f"{V}/tasks", params={"state": "offered"})
        assert other_word.status_code == 400 and "state" in other_word.text
        early = await worker.post(f"{V}/tasks/{mine['id']}:resolve", json={"note": "x"})
        assert early.status_code == 400, early.text
        assert "cannot resolve a task that is assigned" in early.json()["error"]["message"]

        accepted = await worker.post(f"{V}/tasks/{mine['id']}:accept")
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["state"] == "accepted"
        again = await worker.post(f"{V}/tasks/{mine['id']}:accept")
        assert again.status_code == 400, again.text
        nul = await worker.post(f"{V}/tasks/{mine['id']}:resolve", json={"note": "a\u0000b"})
        assert nul.status_code == 400, nul.text  # PostgreSQL keeps no NUL in text
        assert [v["field"] for v in nul.json()["error"]["field_violations"]] == ["note"]
        done = await worker.post(f"{V}/tasks/{mine['id']}:resolve", json={"note": "barrier up"})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "done"

        down = await desk.post(
            f"{V}/emergencyPlans/{plan['id']}:changeLevel",
            json={"level": 0, "reason": "water gone"},
        )
        assert down.status_code == 200, down.text
        after = (await desk.get(f"{V}/tasks", params={"emergency_plan": plan["name"]})).json()
        assert Counter(t["state"] for t in after["tasks"]) == Counter({"done": 1, "cancelled": 2})
        by_id = await desk.get(f"{V}/tasks", params={"emergency_plan": plan["id"]})
        assert by_id.json()["tasks"] == after["tasks"]  # its id alone names it too
        bad = await desk.get(f"{V}/tasks", params={"emergency_plan": "plans/ep_1"})
        assert bad.status_code == 400, bad.text
        fields = [v["field"] for v in bad.json()["error"]["field_violations"]]
        assert fields == ["emergency_plan"]  # the parameter sent, not the gRPC filter
    finally:
        for client in (desk, worker):
            await client.aclose()

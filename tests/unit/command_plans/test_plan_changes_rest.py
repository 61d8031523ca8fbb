"""Changing and deleting plans over REST, through the gateway as `python -m gateway`
builds it, in front of the command service on each store: PATCH changes only what is
sent, an active level is a 409 naming it, DELETE is a 204 and the plan is then a 404."""

from __future__ import annotations

from datetime import UTC, timedelta

from tests.unit.command_plans.conftest import COMMANDER
from tests.unit.command_plans.test_plan_tasks_rest import V, rest
from tests.unit.command_plans.test_service_orders import START, catch_up

LEVELS = [
    {"level": 3, "dispatches": [{"role": "grid_worker", "count": 2}]},
    {"level": 2, "checklist": ["Close the underpass"]},
    {"level": 1, "checklist": ["Call the town's pumps"]},
]


async def test_an_emergency_plan_is_patched_refused_under_a_level_and_deleted(command) -> None:
    desk = rest(command, "users/commander", COMMANDER)
    try:
        created = await desk.post(
            f"{V}/emergencyPlans", json={"display_name": "Flooded underpass", "levels": LEVELS}
        )
        assert created.status_code == 201, created.text
        plan = created.json()
        url = f"{V}/emergencyPlans/{plan['id']}"
        patched = await desk.patch(
            url, json={"display_name": "Flooded underpass (east)", "reason": "renamed"}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["display_name"] == "Flooded underpass (east)"
        assert patched.json()["levels"] == created.json()["levels"]
        for nothing in ({}, {"reason": "no change"}, {"etag": plan["etag"]}):
            empty = await desk.patch(url, json=nothing)
            assert empty.status_code == 400, empty.text
            violations = empty.json()["error"]["field_violations"]
            assert [v["field"] for v in violations] == ["body"], violations
            assert "display_name, signal, levels, location" in violations[0]["description"]
        missing = await desk.patch(url, json={"levels": LEVELS[:2]})
        assert missing.status_code == 400, missing.text
        fields = [v["field"] for v in missing.json()["error"]["field_violations"]]
        assert fields == ["levels"]
        raised = await desk.post(f"{url}:changeLevel", json={"level": 2, "reason": "40 cm"})
        assert raised.status_code == 200, raised.text
        more = [{**LEVELS[0], "dispatches": [{"role": "grid_worker", "count": 4}]}, *LEVELS[1:]]
        for refused in (
            await desk.patch(url, json={"levels": more}),
            await desk.delete(url, params={"reason": "retired"}),
        ):
            assert refused.status_code == 409, refused.text
            message = refused.json()["error"]["message"]
            assert "level 2" in message and "stand it down first" in message
        await desk.post(f"{url}:changeLevel", json={"level": 0, "reason": "water gone"})
        stale = await desk.delete(url, params={"etag": 'W/"1"'})
        assert stale.status_code == 409, stale.text
        gone = await desk.delete(url, params={"reason": "the underpass was filled in"})
        assert gone.status_code == 204, gone.text
        assert (await desk.get(url)).status_code == 404
        assert (await desk.delete(url)).status_code == 404
        log = await desk.get(f"{V}/commandLogEntries", params={"resource": plan["name"]})
        entries = log.json()["command_log_entries"]
        assert (entries[0]["action"], entries[0]["reason"]) == (
            "emergency_plan.deleted",
            "the underpass was filled in",
        )
    finally:
        await desk.aclose()


async def test_a_service_plan_is_patched_and_deleted_cancelling_waiting_orders(command) -> None:
    desk = rest(command, "users/commander", COMMANDER)
    try:
        created = await desk.post(
            f"{V}/servicePlans",
            json={
                "display_name": "Weekly visit",
                "recurrence": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
                "start_time": START.isoformat(),
                "carers": ["users/carer-wang"],
                "targets": [{"id": "r-01", "location": {"longitude": 121.161, "latitude": 31.289}}],
            },
        )
        assert created.status_code == 201, created.text
        plan = created.json()
        url = f"{V}/servicePlans/{plan['id']}"
        empty = await desk.patch(url, json={"reason": "nothing sent"})
        assert empty.status_code == 400, empty.text
        assert [v["field"] for v in empty.json()["error"]["field_violations"]] == ["body"]
        never = await desk.patch(url, json={"recurrence": "FREQ=WEEKLY;UNTIL=20300101T000000Z"})
        assert never.status_code == 400, never.text
        assert [v["field"] for v in never.json()["error"]["field_violations"]] == ["recurrence"]
        patched = await desk.patch(
            url, json={"visit_minutes": 30, "reason": "shorter visits", "etag": plan["etag"]}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["visit_minutes"] == 30
        assert patched.json()["recurrence"] == plan["recurrence"]
        assert patched.json()["etag"] != plan["etag"]
        # Read before that change: refused, and nothing changes.
        late = await desk.patch(url, json={"visit_minutes": 45, "etag": plan["etag"]})
        assert late.status_code == 409, late.text
        stale = await desk.delete(url, params={"etag": plan["etag"]})
        assert stale.status_code == 409, stale.text
        assert (await desk.get(url)).json()["visit_minutes"] == 30
        command.desk.clock = lambda: START + timedelta(minutes=1)
        assert await catch_up(command) == 1
        orders = (await desk.get(f"{V}/serviceOrders")).json()["service_orders"]
        assert [o["state"] for o in orders] == ["assigned"]
        gone = await desk.delete(url, params={"reason": "the resident moved"})
        assert gone.status_code == 204, gone.text
        assert (await desk.get(url)).status_code == 404
        after = (await desk.get(f"{V}/serviceOrders")).json()["service_orders"]
        assert [o["state"] for o in after] == ["cancelled"]
        command.desk.clock = lambda: START.astimezone(UTC) + timedelta(days=30)
        assert await catch_up(command) == 0
    finally:
        await desk.aclose()

"""Plans over REST, as a caller names them: a plan filter takes the plan's name or its id
alone (tasks by `emergency_plan`, orders by `service_plan`), and a request_id sent again
with another body is 422, as an event's is (ADR 3)."""

from __future__ import annotations

from tests.unit.command_plans.conftest import COMMANDER
from tests.unit.command_plans.test_plan_tasks import people
from tests.unit.command_plans.test_plan_tasks_rest import V, rest

LEVELS = [
    {"level": 3, "dispatches": [{"role": "grid_worker", "count": 2}]},
    {"level": 2, "checklist": ["Close the underpass"]},
    {"level": 1, "checklist": ["Call the town's pumps"]},
]
PLAN = {"display_name": "Flooded underpass", "levels": LEVELS, "request_id": "underpass-1"}
SERVICE = {
    "display_name": "Weekly visit",
    "recurrence": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9",
    "start_time": "2031-12-01T09:00:00+08:00",
    "targets": [{"id": "r-1", "location": {"longitude": 121.1605, "latitude": 31.2905}}],
}


async def test_plans_are_found_by_name_or_id_and_a_reused_request_id_is_422(command) -> None:
    await people(command)
    desk = rest(command, "users/commander", COMMANDER)
    try:
        created = await desk.post(f"{V}/emergencyPlans", json=PLAN)
        assert created.status_code == 201, created.text
        plan = created.json()
        again = await desk.post(f"{V}/emergencyPlans", json=PLAN)
        assert again.status_code in (200, 201), again.text
        assert again.json()["id"] == plan["id"]
        other = await desk.post(f"{V}/emergencyPlans", json={**PLAN, "display_name": "Other"})
        assert other.status_code == 422, other.text
        error = other.json()["error"]
        assert error["reason"] == "IDEMPOTENCY_KEY_REUSED"
        assert [v["field"] for v in error["field_violations"]] == ["request_id"]

        raised = await desk.post(
            f"{V}/emergencyPlans/{plan['id']}:changeLevel", json={"level": 3, "reason": "20 cm"}
        )
        assert raised.status_code == 200, raised.text
        by_name = await desk.get(f"{V}/tasks", params={"emergency_plan": plan["name"]})
        by_id = await desk.get(f"{V}/tasks", params={"emergency_plan": plan["id"]})
        assert by_name.status_code == by_id.status_code == 200, by_id.text
        assert len(by_name.json()["tasks"]) == 2
        assert by_id.json()["tasks"] == by_name.json()["tasks"]

        service = await desk.post(f"{V}/servicePlans", json=SERVICE)
        assert service.status_code == 201, service.text
        # 09:00 in China is 01:00 UTC: the offset is kept, never read as UTC.
        assert service.json()["start_time"].startswith("2031-12-01T01:00:00")
        named = service.json()["name"]
        orders_by_name = await desk.get(f"{V}/serviceOrders", params={"service_plan": named})
        orders_by_id = await desk.get(
            f"{V}/serviceOrders", params={"service_plan": service.json()["id"]}
        )
        assert orders_by_name.status_code == orders_by_id.status_code == 200, orders_by_name.text
        assert orders_by_name.json() == orders_by_id.json()
    finally:
        await desk.aclose()

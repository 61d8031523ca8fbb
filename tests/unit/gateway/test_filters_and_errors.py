"""Filters and errors name what the caller sent: a `village` that is no village, a
control character in a filter value, a plan named in neither of its forms, a body that
is not UTF-8 JSON are each 400 naming the REST parameter (never `filter`, never no
field); PATCH intakeSettings changes only the fields it carries."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gateway.errors import REASON_STATUS
from gateway.paths import resource_filter
from grassroots.events.v1 import events_service_pb2 as events_pb
from tests.conftest import XINGMING
from tests.unit.gateway.test_request_times import V, _app


async def _send(method: str, path: str, app: Any = None, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app or _app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        headers = {"X-API-Key": "grk_any", **kwargs.pop("headers", {})}
        return await client.request(method, path, headers=headers, **kwargs)


def _fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 400, answer.text
    return [v["field"] for v in answer.json()["error"]["field_violations"]]


@pytest.mark.parametrize("value", ["nope", "sh/x", "sh", "sh-jiading", "Xingming Village"])
@pytest.mark.parametrize("path", ["/events", "/events:statistics", "/tasks"])
async def test_a_village_filter_that_names_no_village_is_refused(path: str, value: str) -> None:
    assert _fields(await _send("GET", f"{V}{path}", params={"village": value})) == ["village"]


@pytest.mark.parametrize(
    "path, field",
    [
        ("/tasks", "grid_cell"),
        ("/tasks", "team"),
        ("/tasks", "handler"),
        ("/events", "grid_cell"),
        ("/events", "q"),
        ("/events:statistics", "grid_cell"),
    ],
)
async def test_a_control_character_names_the_parameter(path: str, field: str) -> None:
    assert _fields(await _send("GET", f"{V}{path}", params={field: "x\x00y"})) == [field]


@pytest.mark.parametrize(
    "params",
    [
        {"emergency_plan": "bogus/plan"},
        {"emergency_plan": "tenants/sh-jiading-anting-xingming/servicePlans/sp_1"},
        {"emergency_plan": "tenants/NOPE/emergencyPlans/ep_1"},
    ],
)
async def test_a_plan_filter_in_neither_form_names_the_parameter(params: dict[str, str]) -> None:
    assert _fields(await _send("GET", f"{V}/tasks", params=params)) == ["emergency_plan"]


async def test_a_service_plan_filter_in_neither_form_names_the_parameter() -> None:
    answer = await _send("GET", f"{V}/serviceOrders", params={"service_plan": "plans/x y"})
    assert _fields(answer) == ["service_plan"]


def test_a_plan_is_named_by_its_id_or_its_name() -> None:
    tenant = XINGMING.replace("/", "-")
    name = f"tenants/{tenant}/emergencyPlans/ep_1"
    assert resource_filter("ep_1", tenant, "emergencyPlans", "emergency_plan") == name
    assert resource_filter(name, tenant, "emergencyPlans", "emergency_plan") == name
    village = "tenants/sh-jiading-anting-xiangyang/servicePlans/sp_2"  # as a town names it
    assert resource_filter(village, "sh-jiading-anting", "servicePlans", "service_plan") == village


@pytest.mark.parametrize(
    "content",
    [b'{"display_name": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["not-utf8", "too-deep"],
)
async def test_a_body_json_cannot_read_names_the_body(content: bytes) -> None:
    answer = await _send(
        "POST",
        f"{V}/servicePlans",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert _fields(answer) == ["body"]


def test_a_key_reused_with_another_body_is_422_whichever_service_checks_it() -> None:
    assert REASON_STATUS["IDEMPOTENCY_KEY_REUSED"] == 422
    assert REASON_STATUS["REQUEST_ID_REUSED"] == 422


class _Intake:
    """The events service's intake settings, as the gateway calls them."""

    def __init__(self) -> None:
        self.asked: list[events_pb.UpdateIntakeSettingsRequest] = []

    def UpdateIntakeSettings(self, request: Any, metadata: Any = None) -> Any:
        self.asked.append(request)

        async def answer() -> events_pb.IntakeSettings:
            return events_pb.IntakeSettings(
                name=request.intake_settings.name,
                anonymous_reports=True,
                anonymous_reports_per_hour=5,
            )

        return answer()


async def test_patch_intake_settings_sends_only_the_fields_present() -> None:
    app = _app()
    intake = _Intake()
    app.state.upstreams = SimpleNamespace(events=intake)
    url = f"{V}/intakeSettings"
    answer = await _send("PATCH", url, app=app, json={"anonymous_reports_per_hour": 5})
    assert answer.status_code == 200, answer.text
    assert list(intake.asked[-1].update_mask.paths) == ["anonymous_reports_per_hour"]
    assert intake.asked[-1].intake_settings.anonymous_reports_per_hour == 5
    both = {"anonymous_reports": True, "anonymous_reports_per_hour": 5}
    assert (await _send("PATCH", url, app=app, json=both)).status_code == 200
    assert sorted(intake.asked[-1].update_mask.paths) == sorted(both)
    assert _fields(await _send("PATCH", url, app=app, json={})) == ["body"]
    nulled = await _send("PATCH", url, app=app, json={"anonymous_reports": None})
    assert _fields(nulled) == ["anonymous_reports"]
    assert len(intake.asked) == 2

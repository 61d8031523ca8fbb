"""Bad input to command, twin and empower answers 400 naming the field, never 500.

Each case is one a newcomer's probe of the running platform found answering 500 or
answering as if nothing were wrong: integers past int64 (a reading's time, a points
amount, a rule's points and cap), history times outside the calendar the platform
keeps or not times at all, and a request_id replayed with another body (points,
form records, notices), which answered the first posting as if it were this one.
Each request goes on a connection of its own: after an unhandled error the gateway
drops the connection.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from security_world import A, World

PAST_INT64 = 2**63


def fresh(world: World, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=world.url, timeout=15) as client:
        return client.request(method, path, **kwargs)


def assert_bad_request(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (
        f"expected 400 on {field}: {response.status_code} {response.text[:300]}"
    )
    assert field in response.text, f"the answer does not name {field!r}: {response.text[:300]}"


@pytest.fixture(scope="module")
def gauge(world: World) -> str:
    created = world.client.post(
        f"/v1/tenants/{A}/entities",
        json={
            "entity_id": "bad-input-gauge",
            "entity_type": "WaterLevelGauge",
            "location": {"longitude": world.a.point[0], "latitude": world.a.point[1]},
        },
        headers=world.a_super.headers,
    )
    assert created.status_code in (200, 201), created.text
    return "bad-input-gauge"


@pytest.fixture(scope="module")
def account(world: World) -> str:
    opened = world.client.post(
        f"/v1/tenants/{A}/pointsAccounts",
        json={"holder_kind": "household", "holder": "household/bad-input-components"},
        headers=world.a_super.headers,
    )
    assert opened.status_code == 201, opened.text
    return f"/v1/tenants/{A}/pointsAccounts/{opened.json()['id']}"


def test_a_reading_time_past_int64_names_the_column(world: World, gauge: str) -> None:
    body = {
        "entities": [gauge],
        "properties": ["level_cm"],
        "values": [12.0],
        "observe_times_ms": [PAST_INT64],
    }
    response = fresh(
        world, "POST", f"/v1/tenants/{A}:ingestTelemetry", json=body, headers=world.a_super.headers
    )
    assert_bad_request(response, "observe_times_ms")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_time": "9999-12-31T00:00:00Z", "end_time": "9999-12-31T01:00:00Z"}, "start_time"),
        ({"start_time": "0001-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"}, "start_time"),
        ({"start_time": "yesterday", "end_time": "2026-01-01T00:00:00Z"}, "start_time"),
        ({"start_time": "2026-01-01T00:00:00Z", "end_time": "tomorrow"}, "end_time"),
    ],
    ids=["year 9999", "year 1", "start a word", "end a word"],
)
def test_history_times_outside_the_calendar_are_refused_by_name(
    world: World, gauge: str, params: dict[str, str], field: str
) -> None:
    query = {"property": "level_cm", "entity": gauge, **params}
    response = fresh(
        world, "GET", f"/v1/tenants/{A}:queryHistory", params=query, headers=world.a_super.headers
    )
    assert_bad_request(response, field)


@pytest.mark.parametrize("action", [":credit", ":redeem"])
def test_a_points_amount_past_int64_names_the_amount(
    world: World, account: str, action: str
) -> None:
    body = {"amount": PAST_INT64, "memo": "overflow", "request_id": f"overflow{action[1:]}"}
    response = fresh(world, "POST", account + action, json=body, headers=world.a_super.headers)
    assert_bad_request(response, "amount")
    balance = world.client.get(account, headers=world.a_super.headers).json()["balance"]
    assert balance == 0


@pytest.mark.parametrize("field", ["points", "cap"])
def test_a_points_rule_past_int64_names_the_field(world: World, field: str) -> None:
    body: dict[str, Any] = {
        "display_name": "Overflow",
        "fact_type": "task.resolved",
        "points": 10,
        "cap": 50,
        "cap_period": "week",
    }
    body[field] = PAST_INT64
    response = fresh(
        world, "POST", f"/v1/tenants/{A}/pointsRules", json=body, headers=world.a_super.headers
    )
    assert_bad_request(response, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "rules",
            {
                "display_name": "Overflow",
                "entity_type": "WaterLevelGauge",
                "property": "level_cm",
                "event_category": "safety.flooding",
                "threshold": {"trigger": 30, "clear": 25, "min_duration_seconds": PAST_INT64},
            },
            "threshold.min_duration_seconds",
        ),
        (
            "rules",
            {
                "display_name": "Overflow",
                "entity_type": "WaterLevelGauge",
                "property": "level_cm",
                "event_category": "safety.flooding",
                "inactivity": {"silence_seconds": PAST_INT64},
            },
            "inactivity.silence_seconds",
        ),
        (
            "rules",
            {
                "display_name": "Overflow",
                "entity_type": "Vehicle",
                "property": "position",
                "event_category": "construction.illegal",
                "geofence": {
                    "layer": f"tenants/{A}/layers/grid-cells",
                    "dwell_seconds": PAST_INT64,
                },
            },
            "geofence.dwell_seconds",
        ),
        (
            "forms",
            {
                "id": "overflow-form",
                "display_name": "Overflow",
                "fields": [
                    {"key": "n", "label": "N", "type": "integer", "maximum": PAST_INT64},
                ],
            },
            "fields.0.maximum",
        ),
        (
            "emergencyPlans",
            {
                "display_name": "Overflow plan",
                "levels": [{"level": PAST_INT64, "checklist": ["x"]}],
            },
            "levels.0.level",
        ),
    ],
    ids=[
        "threshold duration",
        "inactivity silence",
        "geofence dwell",
        "form field maximum",
        "plan level",
    ],
)
def test_other_integers_past_int64_name_the_field(
    world: World, path: str, body: dict[str, Any], field: str
) -> None:
    response = fresh(
        world, "POST", f"/v1/tenants/{A}/{path}", json=body, headers=world.a_super.headers
    )
    assert_bad_request(response, field)


def test_a_points_request_id_replayed_with_another_amount_is_refused(
    world: World, account: str
) -> None:
    who = world.a_super.headers
    first = {"amount": 20, "memo": "River bank", "request_id": "replay-award"}
    assert world.client.post(account + ":credit", json=first, headers=who).status_code == 200
    again = fresh(world, "POST", account + ":credit", json=first, headers=who)
    assert again.status_code == 200, again.text
    other = fresh(world, "POST", account + ":credit", json={**first, "amount": 5}, headers=who)
    assert other.status_code == 422, other.text
    assert "request_id" in other.text and "REQUEST_ID_REUSED" in other.text
    assert world.client.get(account, headers=who).json()["balance"] == 20


def test_a_form_record_request_id_replayed_with_other_values_is_refused(world: World) -> None:
    who = world.a_super.headers
    form = world.client.post(
        f"/v1/tenants/{A}/forms",
        json={
            "id": "replay-checklist",
            "display_name": "Checklist",
            "fields": [{"key": "rooms", "label": "Rooms", "type": "integer"}],
        },
        headers=who,
    )
    assert form.status_code == 201, form.text
    url = f"/v1/tenants/{A}/forms/replay-checklist/records"
    first = {"values": {"rooms": "3"}, "request_id": "replay-record"}
    assert world.client.post(url, json=first, headers=who).status_code == 201
    other = fresh(world, "POST", url, json={**first, "values": {"rooms": "4"}}, headers=who)
    assert other.status_code == 422, other.text
    assert "request_id" in other.text and "REQUEST_ID_REUSED" in other.text
    records = world.client.get(url, headers=who).json()["records"]
    assert [r["values"]["rooms"] for r in records] == ["3"]


def test_a_history_entity_that_is_not_an_id_says_why(world: World) -> None:
    query = {
        "property": "level_cm",
        "entity": "tenants/sh-jiading-anting-xiangyang/entities/x",
        "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-01-02T00:00:00Z",
    }
    response = fresh(
        world, "GET", f"/v1/tenants/{A}:queryHistory", params=query, headers=world.a_super.headers
    )
    assert_bad_request(response, "entity")
    violation = response.json()["error"]["field_violations"][0]
    assert violation["field"] == "entity" and "not an entity id" in violation["description"]


def test_a_points_rule_with_a_cap_below_its_points_names_cap(world: World) -> None:
    body = {
        "display_name": "Capped below one fact",
        "fact_type": "task.resolved",
        "points": 10,
        "cap": 5,
        "cap_period": "week",
    }
    url = f"/v1/tenants/{A}/pointsRules"
    response = fresh(world, "POST", url, json=body, headers=world.a_super.headers)
    assert_bad_request(response, "cap")
    assert "below" in response.text
    listed = world.client.get(url, headers=world.a_super.headers).json()
    assert "Capped below one fact" not in json.dumps(listed)

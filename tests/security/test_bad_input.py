"""Bad input answers 400 naming the field, never 500 (issue 11, finding 8).

Each case is one the adversarial probe found answering 500: forged page tokens with
wrong types or numbers past int64 (events, audit), times at the edges of the calendar
(audit filter, Open311 dates), stream offsets of 20 digits or non-ASCII digits, a CRS
that PROJ knows but cannot convert to WGS84. Each request goes on a connection of its
own: after an unhandled error the gateway drops the connection.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from security_world import A, B, World, report_event

EPSG_WITHOUT_WGS84 = "EPSG:2301"


def fresh(world: World, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=world.url, timeout=15) as client:
        return client.request(method, path, **kwargs)


def assert_bad_request(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (
        f"expected 400 on {field}: {response.status_code} {response.text[:300]}"
    )
    text = response.text
    assert field in text, f"the answer does not name {field!r}: {text[:300]}"


def forged(real_token: str, cursor: object) -> str:
    """A real token's query fingerprint with another cursor, in the unsigned format."""
    encoded = real_token.split(".")[0]
    body = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    raw = json.dumps({"c": cursor, "q": body["q"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    {"t": 10**30, "id": "ev_x"},
    {"t": [1], "id": {}},
    {"s": 10**30},
    {"s": "1"},
]


@pytest.fixture(scope="module")
def event_token(world: World) -> str:
    for note in ("page one", "page two"):
        report_event(world.client, world.a_super, world.a.point, "environment.garbage", note)
    page = world.client.get(
        f"/v1/tenants/{A}/events", params={"page_size": 1}, headers=world.a_super.headers
    )
    assert page.status_code == 200, page.text
    token = page.json()["next_page_token"]
    assert token
    return str(token)


@pytest.fixture(scope="module")
def audit_token(world: World) -> str:
    person = f"/v1/tenants/{A}/people/{world.a.person_id}"
    for _ in range(2):
        read = world.client.get(
            person, params={"purpose": "checking paging"}, headers=world.a_super.headers
        )
        assert read.status_code == 200, read.text
    page = world.client.get(
        f"/v1/tenants/{A}/auditEntries", params={"page_size": 1}, headers=world.a_super.headers
    )
    assert page.status_code == 200, page.text
    token = page.json()["next_page_token"]
    assert token
    return str(token)


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=["huge t", "t a list", "huge s", "s text"])
def test_forged_event_page_tokens_are_refused(world, event_token, cursor):
    response = fresh(
        world,
        "GET",
        f"/v1/tenants/{A}/events",
        params={"page_size": 1, "page_token": forged(event_token, cursor)},
        headers=world.a_super.headers,
    )
    assert_bad_request(response, "page_token")


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=["huge t", "t a list", "huge s", "s text"])
def test_forged_audit_page_tokens_are_refused(world, audit_token, cursor):
    response = fresh(
        world,
        "GET",
        f"/v1/tenants/{A}/auditEntries",
        params={"page_size": 1, "page_token": forged(audit_token, cursor)},
        headers=world.a_super.headers,
    )
    assert_bad_request(response, "page_token")


def test_issued_tokens_still_page(world, event_token):
    response = world.client.get(
        f"/v1/tenants/{A}/events",
        params={"page_size": 1, "page_token": event_token},
        headers=world.a_super.headers,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["events"]) == 1


@pytest.mark.parametrize(
    "filter_text",
    [
        'time > "9999-12-31T23:59:59.999999Z"',
        'time <= "9999-12-31T23:59:59.999999Z"',
        'time >= "9999-12-31T23:00:00-05:00"',
    ],
)
def test_audit_times_at_the_end_of_the_calendar(world, filter_text):
    response = fresh(
        world,
        "GET",
        f"/v1/tenants/{A}/auditEntries",
        params={"filter": filter_text},
        headers=world.a_super.headers,
    )
    assert_bad_request(response, "filter")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"created_from": "9999-12-31T23:59:59-05:00"}, "created_from"),
        ({"created_before": "0001-01-01T00:00:00+08:00"}, "created_before"),
        # RFC 3339 needs a zone: a bare local time is refused, not read as UTC.
        ({"created_from": "2026-01-01T00:00:00"}, "created_from"),
        ({"created_before": "2026-01-01T00:00:00"}, "created_before"),
    ],
)
@pytest.mark.parametrize("collection", ["events", "tasks"])
def test_list_times_at_the_ends_of_the_calendar(world, collection, params, field):
    response = fresh(
        world, "GET", f"/v1/tenants/{A}/{collection}", params=params, headers=world.a_super.headers
    )
    assert_bad_request(response, field)


def test_task_list_by_create_time(world):
    """A period's tasks: B's task was made while the world was built, not years ago."""
    headers = world.b_super.headers
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = fresh(
        world, "GET", f"/v1/tenants/{B}/tasks", params={"created_from": since}, headers=headers
    )
    assert recent.status_code == 200, recent.text[:300]
    assert world.b.task_id in {t["id"] for t in recent.json()["tasks"]}
    gone = fresh(
        world,
        "GET",
        f"/v1/tenants/{B}/tasks",
        params={"created_before": "2020-01-01T00:00:00Z"},
        headers=headers,
    )
    assert gone.status_code == 200, gone.text[:300]
    assert gone.json()["tasks"] == []
    # The next one due first; an order the contract does not name is 400 naming order_by.
    due = fresh(
        world, "GET", f"/v1/tenants/{B}/tasks", params={"order_by": "due_time"}, headers=headers
    )
    assert due.status_code == 200, due.text[:300]
    assert world.b.task_id in {t["id"] for t in due.json()["tasks"]}
    unknown = fresh(
        world, "GET", f"/v1/tenants/{B}/tasks", params={"order_by": "salary desc"}, headers=headers
    )
    assert_bad_request(unknown, "order_by")


def test_event_list_filters_by_every_category_the_contract_allows(world):
    """A query parameter takes its bounds from the contract field it filters (ADR 22):
    a 127-character category code is a valid filter, a 128-character one is 400."""
    headers = world.a_super.headers
    longest = fresh(
        world, "GET", f"/v1/tenants/{A}/events", params={"category": "c" * 127}, headers=headers
    )
    assert longest.status_code == 200, longest.text[:300]
    assert longest.json()["events"] == []
    beyond = fresh(
        world, "GET", f"/v1/tenants/{A}/events", params={"category": "c" * 128}, headers=headers
    )
    assert_bad_request(beyond, "category")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"start_date": "9999-12-31T00:00:00Z"}, "start_date"),
        ({"end_date": "0001-01-01T00:00:00Z"}, "end_date"),
        ({"start_date": "0001-01-01T00:00:00+08:00"}, "start_date"),
    ],
)
def test_open311_dates_at_the_ends_of_the_calendar(world, params, field):
    response = fresh(
        world, "GET", "/open311/v2/requests.json", params=params, headers=world.a_super.headers
    )
    assert_bad_request(response, field)


@pytest.mark.parametrize(
    "after, last_event_id",
    [
        ("99999999999999999999", None),
        (None, b"99999999999999999999"),
        (None, "\u00b2".encode("latin-1")),  # "²": str.isdigit() says yes, int() says no
        (None, "\u0661\u0662".encode()),  # Arabic-Indic digits
    ],
    ids=["after 20 digits", "Last-Event-ID 20 digits", "Last-Event-ID ²", "Last-Event-ID ١٢"],
)
def test_stream_offsets_that_are_not_int64(world, after, last_event_id):
    headers: list[tuple[str, str | bytes]] = list(world.a_super.headers.items())
    params = {}
    if after is not None:
        params["after"] = after
    if last_event_id is not None:
        headers.append(("Last-Event-ID", last_event_id))
    with (
        httpx.Client(base_url=world.url, timeout=15) as client,
        client.stream(
            "GET", f"/v1/tenants/{A}/events:stream", params=params, headers=headers
        ) as response,
    ):
        response.read()
        assert_bad_request(response, "after" if after else "Last-Event-ID")


@pytest.mark.parametrize(
    "path, body, field",
    [
        (
            "/v1/coordinates:transform",
            {"longitudes": [121.16], "latitudes": [31.29], "target_crs": EPSG_WITHOUT_WGS84},
            "target_crs",
        ),
        (
            "/v1/coordinates:transform",
            {
                "longitudes": [121.16],
                "latitudes": [31.29],
                "crs": EPSG_WITHOUT_WGS84,
                "target_crs": "EPSG:4326",
            },
            "crs",
        ),
        (
            f"/v1/tenants/{A}:locatePoints",
            {"longitudes": [121.16], "latitudes": [31.29], "crs": EPSG_WITHOUT_WGS84},
            "crs",
        ),
        (
            f"/v1/tenants/{A}/events",
            {
                "category": "environment.garbage",
                "description": "In a CRS without a way to WGS84",
                "request_id": "security-epsg-2301",
                "location": {"longitude": 121.16, "latitude": 31.29, "crs": EPSG_WITHOUT_WGS84},
            },
            "crs",
        ),
    ],
    ids=["transform target", "transform source", "locate", "event location"],
)
def test_a_crs_proj_cannot_convert_is_refused_by_name(world, path, body, field):
    response = fresh(world, "POST", path, json=body, headers=world.a_super.headers)
    assert_bad_request(response, field)


def test_redeeming_more_than_the_balance_names_the_amount(world: World) -> None:
    who = world.a_super.headers
    account = world.client.post(
        f"/v1/tenants/{A}/pointsAccounts",
        json={"holder_kind": "household", "holder": "household/bad-input-1"},
        headers=who,
    )
    assert account.status_code == 201, account.text
    url = f"/v1/tenants/{A}/pointsAccounts/{account.json()['id']}"
    credit = world.client.post(
        url + ":credit", json={"amount": 10, "request_id": "bad-input-award"}, headers=who
    )
    assert credit.status_code == 200, credit.text
    over = fresh(
        world, "POST", url + ":redeem", json={"amount": 11, "request_id": "over"}, headers=who
    )
    assert_bad_request(over, "amount")
    assert "balance of 10" in over.text
    fractional = fresh(
        world, "POST", url + ":credit", json={"amount": 2.5, "request_id": "frac"}, headers=who
    )
    assert_bad_request(fractional, "amount")
    balance = world.client.get(url, headers=who).json()["balance"]
    assert balance == 10


def test_a_report_template_naming_a_missing_field_names_the_column(world: World) -> None:
    who = world.a_super.headers
    form = world.client.post(
        f"/v1/tenants/{A}/forms",
        json={
            "id": "bad-input-checklist",
            "display_name": "Checklist",
            "fields": [{"key": "rooms", "label": "Rooms", "type": "integer"}],
        },
        headers=who,
    )
    assert form.status_code == 201, form.text
    refused = fresh(
        world,
        "POST",
        f"/v1/tenants/{A}/reportTemplates",
        json={
            "id": "bad-input-report",
            "display_name": "Broken",
            "department": "Safety",
            "form": f"tenants/{A}/forms/bad-input-checklist",
            "columns": [{"label": "Sprinklers", "aggregate": "sum", "field": "sprinklers"}],
        },
        headers=who,
    )
    assert_bad_request(refused, "columns[0].field")
    assert "no field 'sprinklers'" in refused.text
    record = fresh(
        world,
        "POST",
        f"/v1/tenants/{A}/forms/bad-input-checklist/records",
        json={"values": {"rooms": "many"}, "request_id": "bad-input-record"},
        headers=who,
    )
    assert_bad_request(record, "values.rooms")


def test_an_emergency_plan_without_level_two_is_refused_naming_levels(world: World) -> None:
    body = {
        "display_name": "Missing a level",
        "levels": [{"level": 3, "checklist": ["a"]}, {"level": 1, "checklist": ["b"]}],
    }
    url = f"/v1/tenants/{A}/emergencyPlans"
    response = fresh(world, "POST", url, json=body, headers=world.a_super.headers)
    assert_bad_request(response, "levels")
    assert "level 2 is missing" in response.text
    listed = fresh(world, "GET", url, headers=world.a_super.headers).json()["emergency_plans"]
    assert "Missing a level" not in {p["display_name"] for p in listed}


def test_a_service_plan_whose_rrule_never_fires_is_refused_naming_recurrence(
    world: World,
) -> None:
    body = {
        "display_name": "Visits that never happen",
        "recurrence": "FREQ=WEEKLY;UNTIL=20200101T000000Z",
        "start_time": "2019-06-03T01:00:00Z",
        "targets": [
            {"id": "t-1", "location": {"longitude": world.a.point[0], "latitude": world.a.point[1]}}
        ],
    }
    url = f"/v1/tenants/{A}/servicePlans"
    response = fresh(world, "POST", url, json=body, headers=world.a_super.headers)
    assert_bad_request(response, "recurrence")
    assert "never fires" in response.text
    listed = fresh(world, "GET", url, headers=world.a_super.headers).json()["service_plans"]
    assert "Visits that never happen" not in {p["display_name"] for p in listed}


def test_a_level_change_without_a_level_names_level(world: World) -> None:
    created = fresh(
        world,
        "POST",
        f"/v1/tenants/{A}/emergencyPlans",
        json={
            "display_name": "Bad input plan",
            "levels": [{"level": n, "checklist": ["x"]} for n in (3, 2, 1)],
        },
        headers=world.a_super.headers,
    )
    assert created.status_code == 201, created.text
    url = f"/v1/tenants/{A}/emergencyPlans/{created.json()['id']}:changeLevel"
    for body, field in (({"reason": "why"}, "level"), ({"level": 7, "reason": "why"}, "level")):
        assert_bad_request(
            fresh(world, "POST", url, json=body, headers=world.a_super.headers), field
        )


def test_a_notice_to_an_empty_audience_names_the_audience(world: World) -> None:
    refused = fresh(
        world,
        "POST",
        f"/v1/tenants/{A}/notices",
        json={
            "title": "Nobody",
            "body": "Nobody is registered in a grid cell that does not exist",
            "audience": {"grid_cell": "xingming-g999"},
            "channels": ["in_app"],
            "request_id": "bad-input-notice",
        },
        headers=world.a_super.headers,
    )
    assert_bad_request(refused, "audience")
    assert "empty" in refused.text


def test_a_record_naming_another_villages_grid_cell_or_building_is_refused(world: World) -> None:
    """Tenancy of references: a record of xingming counted under xiangyang's cell would
    put xingming's findings into xiangyang's reports."""
    who = world.a_super.headers
    form = world.client.post(
        f"/v1/tenants/{A}/forms",
        json={
            "id": "placed-checklist",
            "display_name": "Checklist of a building",
            "fields": [
                {"key": "building", "label": "Building", "type": "text"},
                {"key": "rooms", "label": "Rooms", "type": "integer"},
            ],
        },
        headers=who,
    )
    assert form.status_code == 201, form.text
    url = f"/v1/tenants/{A}/forms/placed-checklist/records"
    foreign_cell = fresh(
        world,
        "POST",
        url,
        json={"values": {"rooms": "2"}, "grid_cell": "xiangyang-g01", "request_id": "placed-1"},
        headers=who,
    )
    assert_bad_request(foreign_cell, "grid_cell")
    foreign_building = fresh(
        world,
        "POST",
        url,
        json={
            "values": {"rooms": "2", "building": "xiangyang-b0001"},
            "grid_cell": "xingming-g01",
            "request_id": "placed-2",
        },
        headers=who,
    )
    assert_bad_request(foreign_building, "values.building")
    assert "grid_cell" not in foreign_building.text
    own = fresh(
        world,
        "POST",
        url,
        json={
            "values": {"rooms": "2", "building": "xingming-b0001"},
            "grid_cell": "xingming-g01",
            "request_id": "placed-3",
        },
        headers=who,
    )
    assert own.status_code == 201, own.text
    records = world.client.get(url, headers=who).json()["records"]
    assert [r["grid_cell"] for r in records] == ["xingming-g01"]

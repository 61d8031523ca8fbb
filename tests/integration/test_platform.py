"""The slice end to end: HTTP -> gateway -> events -> map -> SQLite, as real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
import uuid

import grpc
import httpx
import pytest
import shapely
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from services.kit.components import COMPONENTS
from tests.conftest import XINGMING

TOWN = "sh-jiading-anting"  # the demo town app key's tenant
EVENTS = f"/v1/tenants/{TOWN}/events"


@pytest.fixture
def api(stack):
    with httpx.Client(
        base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=10
    ) as client:
        yield client


@pytest.fixture
def xingming_point(grid_index):
    index = next(i for i, c in enumerate(grid_index.cells) if c.village == XINGMING)
    point = shapely.point_on_surface(grid_index.polygons[index])
    return grid_index.cells[index], point.x, point.y


def report_body(lon, lat, request_id=None, **overrides):
    body = {
        "category": "environment.garbage",
        "description": "Overflowing bins by the east bridge",
        "location": {"longitude": lon, "latitude": lat},
        "request_id": request_id or uuid.uuid4().hex,
    }
    body.update(overrides)
    return body


def stored_rows(stack) -> int:
    with sqlite3.connect(stack.config.data_dir / "events.sqlite3") as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


@pytest.mark.parametrize("service", sorted(COMPONENTS))
def test_reflection_lists_the_service_and_health(stack, service):
    with grpc.insecure_channel(stack.config.address(service)) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert set(COMPONENTS[service].service_names) <= set(services)
    assert "grpc.health.v1.Health" in services


def test_a_report_is_located_stored_and_found(stack, api, xingming_point):
    cell, lon, lat = xingming_point
    body = report_body(lon, lat)
    created = api.post(EVENTS, json=body, headers={"X-Request-ID": "slice-test-1"})
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["grid_cell"] == cell.grid_cell_id
    assert event["grid_worker"] == cell.grid_worker_id
    assert event["village"] == XINGMING
    assert event["state"] == "reported"
    assert created.headers["x-request-id"] == "slice-test-1"
    assert created.headers["idempotent-replayed"] == "false"
    assert created.headers["location"] == f"/v1/{event['name']}"

    fetched = api.get(f"{EVENTS}/{event['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == event

    listed = api.get(EVENTS, params={"grid_cell": cell.grid_cell_id, "page_size": 100})
    assert event["id"] in [e["id"] for e in listed.json()["events"]]

    retried = api.post(EVENTS, json=body)
    assert retried.status_code == 201
    assert retried.json()["id"] == event["id"]
    assert retried.headers["idempotent-replayed"] == "true"

    # The request id the gateway was given reached both hops' logs.
    for service in ("events", "map"):
        log = (stack.config.log_dir / f"{service}.log").read_text()
        assert '"request_id": "slice-test-1"' in log


def test_lifecycle_over_rest(api, xingming_point):
    _, lon, lat = xingming_point
    event = api.post(
        EVENTS,
        json=report_body(lon, lat, category="public.facility", description="Broken bench"),
    ).json()
    url = f"{EVENTS}/{event['id']}"
    illegal = api.post(f"{url}:transition", json={"state": "closed"})
    assert illegal.status_code == 400
    assert illegal.json()["error"]["reason"] == "ILLEGAL_TRANSITION"
    etag = event["etag"]
    for state in ("accepted", "dispatched", "in_progress", "resolved"):
        response = api.post(f"{url}:transition", json={"state": state, "etag": etag})
        assert response.status_code == 200, response.text
        etag = response.json()["etag"]
    stale = api.post(f"{url}:transition", json={"state": "reopened", "etag": event["etag"]})
    assert stale.status_code == 409
    commented = api.post(f"{url}/comments", json={"text": "Fixed with new slats"})
    assert commented.status_code == 201
    closed = api.post(f"{url}:evaluate", json={"score": 5, "text": "Thanks"}).json()
    assert closed["state"] == "closed"
    assert closed["evaluation"]["score"] == 5
    assert [t["to_state"] for t in closed["timeline"]] == [
        "reported",
        "accepted",
        "dispatched",
        "in_progress",
        "resolved",
        "closed",
    ]
    assert closed["comments"][0]["text"] == "Fixed with new slats"


def _sse_events(response, wanted: int, seconds: float = 10.0) -> list[dict]:
    """Read server-sent events until `wanted` data events arrived."""
    found: list[dict] = []
    current: dict = {}
    deadline = time.monotonic() + seconds
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            break
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and "data" in current:
            found.append(current)
            current = {}
            if len(found) == wanted:
                break
    return found


def test_server_sent_events_follow_and_resume(stack, api, xingming_point):
    _, lon, lat = xingming_point
    url = f"{stack.config.gateway_url}{EVENTS}:stream"
    newest = 0
    api.post(EVENTS, json=report_body(lon, lat))
    with httpx.stream(
        "GET", url, params={"after": 0}, headers=stack.api_headers(), timeout=10
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        backlog = _sse_events(response, 1)
        assert backlog and backlog[0]["event"].startswith("event.")
    with httpx.stream("GET", url, headers=stack.api_headers(), timeout=10) as response:
        created = api.post(
            EVENTS,
            json=report_body(
                lon, lat, category="roads.damage", description="Pothole by the school"
            ),
        ).json()
        live = _sse_events(response, 1)
        assert live[0]["data"]["id"] == created["id"]
        assert live[0]["event"] == "event.reported"
        newest = live[0]["id"]
    api.post(f"{EVENTS}/{created['id']}:transition", json={"state": "accepted"})
    with httpx.stream(
        "GET",
        url,
        headers={"Last-Event-ID": str(newest), **stack.api_headers()},
        timeout=10,
    ) as response:
        resumed = _sse_events(response, 1)
        assert resumed[0]["event"] == "event.state_changed"
        assert resumed[0]["data"]["state"] == "accepted"
        assert resumed[0]["id"] > newest
    bad = api.get(f"{EVENTS}:stream", headers={"Last-Event-ID": "x1"})
    assert bad.status_code == 400


def test_a_town_defines_a_category_and_reports_use_it(api, xingming_point):
    _, lon, lat = xingming_point
    created = api.post(
        f"/v1/tenants/{TOWN}/categories",
        json={
            "code": "animals.stray_dog",
            "display_name": "Stray dog",
            "default_severity": 3,
            "sla_minutes": 240,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "tenants/sh-jiading-anting/categories/animals.stray_dog"
    codes = {c["code"] for c in api.get(f"/v1/tenants/{TOWN}/categories").json()["categories"]}
    assert {"animals.stray_dog", "environment.garbage"} <= codes
    event = api.post(EVENTS, json=report_body(lon, lat, category="animals.stray_dog"))
    assert event.status_code == 201 and event.json()["severity"] == 3
    bad = api.post(f"/v1/tenants/{TOWN}/categories", json={"code": "Bad Code", "display_name": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field_violations"][0]["field"] == "code"


def test_same_key_with_a_different_body_is_422(api, xingming_point):
    _, lon, lat = xingming_point
    body = report_body(lon, lat)
    assert api.post(EVENTS, json=body).status_code == 201
    response = api.post(EVENTS, json={**body, "description": "something else"})
    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "IDEMPOTENCY_KEY_REUSED"


def test_the_idempotency_key_header_makes_a_report_safe_to_retry(api, xingming_point):
    _, lon, lat = xingming_point
    body = report_body(lon, lat)
    del body["request_id"]
    key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}  # a structured-field string, quoted
    first = api.post(EVENTS, json=body, headers=key)
    assert first.status_code == 201, first.text
    assert first.headers["idempotent-replayed"] == "false"
    again = api.post(EVENTS, json=body, headers=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # The header and the body name the same key: the body's retry finds the same event.
    same = api.post(EVENTS, json={**body, "request_id": key["Idempotency-Key"].strip('"')})
    assert same.json()["id"] == first.json()["id"]
    other = api.post(EVENTS, json={**body, "description": "another matter"}, headers=key)
    assert other.status_code == 422


def test_a_header_and_a_body_key_that_differ_are_refused_naming_the_header(
    stack, api, xingming_point
):
    _, lon, lat = xingming_point
    before = stored_rows(stack)
    response = api.post(
        EVENTS, json=report_body(lon, lat, "body-key-1"), headers={"Idempotency-Key": "other-2"}
    )
    assert response.status_code == 400
    assert [v["field"] for v in response.json()["error"]["field_violations"]] == ["Idempotency-Key"]
    body = report_body(lon, lat)
    del body["request_id"]
    missing = api.post(EVENTS, json=body)
    assert missing.status_code == 400
    assert missing.json()["error"]["field_violations"][0]["field"] == "request_id"
    assert stored_rows(stack) == before


def test_every_other_create_replays_its_first_answer_for_the_same_key(api, xingming_point):
    _, lon, lat = xingming_point
    event = api.post(EVENTS, json=report_body(lon, lat)).json()
    url = f"{EVENTS}/{event['id']}/comments"
    body = {"text": "The bins were emptied this morning"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(url, json=body, headers=key)
    assert first.status_code == 201, first.text
    assert first.headers["idempotent-replayed"] == "false"
    again = api.post(url, json=body, headers=key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.get(f"{EVENTS}/{event['id']}").json()["comments"]) == 1
    # Without the key the same create reaches the component again: a second comment.
    assert len(api.post(url, json=body).json()["comments"]) == 2
    reused = api.post(url, json={"text": "something else"}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["error"]["status"] == "FAILED_PRECONDITION"  # as events answer it
    assert reused.json()["error"]["field_violations"][0]["field"] == "Idempotency-Key"
    bad = api.post(url, json=body, headers={"Idempotency-Key": "no spaces allowed"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field_violations"][0]["field"] == "Idempotency-Key"


def test_tenant_filters_take_the_id_or_the_path_and_refuse_anything_else(api, xingming_point):
    _, lon, lat = xingming_point
    created = api.post(EVENTS, json=report_body(lon, lat)).json()
    for form in (XINGMING, XINGMING.replace("/", "-")):
        listed = api.get(EVENTS, params={"village": form, "page_size": 1000})
        assert listed.status_code == 200, listed.text
        events = listed.json()["events"]
        assert created["id"] in {e["id"] for e in events}, form
        assert {e["village"] for e in events} == {XINGMING}, form
        stats = api.get(f"{EVENTS}:statistics", params={"village": form}).json()
        assert stats["by_village"] == {XINGMING: stats["total"]}, form
    bad = api.get(EVENTS, params={"village": "Xingming Village"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field_violations"][0]["field"] == "village"


def test_a_towns_statistics_break_down_by_village(api, xingming_point):
    _, lon, lat = xingming_point
    api.post(EVENTS, json=report_body(lon, lat))
    stats = api.get(f"{EVENTS}:statistics").json()
    assert stats["by_village"][XINGMING] >= 1
    assert sum(stats["by_village"].values()) == stats["total"]


def test_the_make_run_banners_example_call_answers(stack):
    """The banner's curl line names a route that exists, with a key that may call it."""
    from devstack import demo_identity

    credentials = demo_identity.DemoCredentials.load(stack.credentials_file)
    line = next(
        text
        for text in credentials.summary(stack.config.gateway_url).splitlines()
        if "curl" in text
    )
    key = line.split("X-API-Key: ", 1)[1].split("'", 1)[0]
    url = line.rsplit(" ", 1)[1]
    assert url.startswith(f"{stack.config.gateway_url}/v1/tenants/sh-jiading-anting-")
    response = httpx.get(url, headers={"X-API-Key": key}, timeout=10)
    assert response.status_code == 200, response.text
    assert "events" in response.json()


def test_listing_pages_through_every_event(stack, api, xingming_point):
    _, lon, lat = xingming_point
    ids = {api.post(EVENTS, json=report_body(lon, lat)).json()["id"] for _ in range(7)}
    seen, token = [], ""
    while True:
        page = api.get(EVENTS, params={"page_size": 3, "page_token": token}).json()
        seen.extend(e["id"] for e in page["events"])
        token = page["next_page_token"]
        if not token:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))


def _without(body, key):
    return {k: v for k, v in body.items() if k != key}


@pytest.mark.parametrize(
    ("make_request", "status", "field"),
    [
        (lambda b: {"json": _without(b, "category")}, 400, "category"),
        (lambda b: {"json": _without(b, "request_id")}, 400, "request_id"),
        (
            lambda b: {"json": {**b, "location": {"longitude": 121.16, "latitude": 91}}},
            400,
            "location.latitude",
        ),
        (
            lambda b: {"json": {**b, "location": {"longitude": "east", "latitude": 31.2}}},
            400,
            "location.longitude",
        ),
        (
            lambda b: {
                "content": b'{"category": "x",',
                "headers": {"content-type": "application/json"},
            },
            400,
            "body",
        ),
        (lambda b: {"json": {**b, "category": "made.up"}}, 400, "category"),
        (lambda b: {"json": {**b, "owner": "someone"}}, 400, "owner"),
        (
            lambda b: {"json": {**b, "location": {"longitude": 100.0, "latitude": 30.0}}},
            400,
            "location",
        ),
        (lambda b: {"json": {**b, "description": "x" * (2 * 1024 * 1024)}}, 413, "body"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(
    stack, api, xingming_point, make_request, status, field
):
    _, lon, lat = xingming_point
    before = stored_rows(stack)
    response = api.post(EVENTS, **make_request(report_body(lon, lat)))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in [v["field"] for v in error["field_violations"]]
    assert "Traceback" not in response.text
    assert stored_rows(stack) == before


def test_openapi_documents_the_routes(api):
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/v1/tenants/{tenant}/events",
        "/v1/tenants/{tenant}/events/{event}",
        "/v1/tenants/{tenant}:locatePoints",
        "/readyz",
    } <= set(paths)


def test_unknown_event_is_404_in_the_error_shape(api):
    response = api.get(f"{EVENTS}/ev_doesnotexist")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_map_locate_over_rest(api, xingming_point):
    cell, lon, lat = xingming_point
    response = api.post(
        f"/v1/tenants/{TOWN}:locatePoints", json={"longitudes": [lon, 0.0], "latitudes": [lat, 0.0]}
    )
    assert response.status_code == 200
    first, second = response.json()["locations"]
    assert first["grid_cell"] == cell.grid_cell_id
    assert second["found"] is False
    assert second["grid_cell"] is None
    assert first["grid_worker_name"] == cell.grid_worker_name


def test_service_metrics_count_calls(stack, api, xingming_point):
    _, lon, lat = xingming_point
    api.post(EVENTS, json=report_body(lon, lat))
    port = stack.config.metrics_ports["events"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="CreateEvent"' in text
    gateway_metrics = httpx.get(f"{stack.config.gateway_url}/metrics").text
    assert 'route="/v1/tenants/{tenant}/events"' in gateway_metrics


def _wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def test_readiness_and_fail_fast_follow_a_stopped_service(stack, api, xingming_point):
    _, lon, lat = xingming_point
    assert api.get("/readyz").status_code == 200
    stack.stop("map")
    try:
        elapsed = _wait_for(lambda: api.get("/readyz").status_code == 503, 5.0)
        assert elapsed < 5.0
        assert api.get("/readyz").json()["components"]["map"] != "SERVING"
        started = time.monotonic()
        response = api.post(EVENTS, json=report_body(lon, lat))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert time.monotonic() - started < 2.0
    finally:
        stack.start("map")
    stack.wait_ready(30)
    _wait_for(lambda: api.post(EVENTS, json=report_body(lon, lat)).status_code == 201, 10)


def test_sigterm_during_a_burst_loses_no_acknowledged_report(stack, xingming_point):
    _, lon, lat = xingming_point

    refused: list[int] = []

    async def burst() -> list[str]:
        acknowledged: list[str] = []
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(
            base_url=stack.config.gateway_url,
            headers=stack.api_headers(),
            timeout=10,
            limits=limits,
        ) as client:

            async def one(i: int) -> None:
                if i == 60:
                    stack.signal("events", signal.SIGTERM)
                response = await client.post(EVENTS, json=report_body(lon, lat))
                if 200 <= response.status_code < 300:
                    acknowledged.append(response.json()["id"])
                else:
                    assert response.status_code in (503, 504), response.text
                    refused.append(response.status_code)

            semaphore = asyncio.Semaphore(20)

            async def bounded(i: int) -> None:
                async with semaphore:
                    await one(i)

            await asyncio.gather(*(bounded(i) for i in range(200)))
        return acknowledged

    acknowledged = asyncio.run(burst())
    assert stack.processes["events"].wait(20) == 0
    stack.stop("events")
    stack.start("events")
    stack.wait_ready(30)
    assert len(acknowledged) >= 40
    assert refused, "the burst never met the draining service"
    with httpx.Client(
        base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=10
    ) as client:
        missing = [
            event_id
            for event_id in acknowledged
            if client.get(f"{EVENTS}/{event_id}").status_code != 200
        ]
    assert missing == []

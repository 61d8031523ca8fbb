"""Open311 GeoReport v2 on the gateway, against the real platform processes.

Raw HTTP in JSON and XML for every endpoint, then the same flow through `georeport`,
a third-party Open311 client from PyPI, as a civic app would use it.
"""

from __future__ import annotations

import sqlite3
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import georeport.georeport as georeport_module
import httpx
import pytest
import requests
import shapely
from georeport import GeoReport

from devstack.demo_identity import DemoCredentials
from tests.conftest import XINGMING

BASE = "/open311/v2"
PERSONAL = {
    "email": "resident-7f3a@example.org",
    "first_name": "Meihua7f3a",
    "last_name": "Zhou7f3a",
    "phone": "+86-139-0000-7f3a",
}


@pytest.fixture
def api(stack):
    with httpx.Client(
        base_url=stack.config.gateway_url + BASE, headers=stack.api_headers(), timeout=10
    ) as client:
        yield client


@pytest.fixture(scope="module")
def xingming_points(grid_index):
    cells = [i for i, c in enumerate(grid_index.cells) if c.village == XINGMING]
    points = [shapely.point_on_surface(grid_index.polygons[i]) for i in cells]
    return [(grid_index.cells[i], p.x, p.y) for i, p in zip(cells, points, strict=True)]


@pytest.fixture
def any_point(xingming_points):
    """A point in the demo village, for requests that must not create anything."""
    return xingming_points[0]


@pytest.fixture(scope="module")
def unused_points(xingming_points):
    return iter(xingming_points[1:])


@pytest.fixture
def xingming_point(unused_points):
    """A point in its own grid cell: a report within metres of an open one is a duplicate."""
    return next(unused_points)


def report_form(lon: float, lat: float, /, **overrides: str | None) -> dict[str, str]:
    form = {
        "api_key": "any-key-for-now",
        "jurisdiction_id": "grassroots.example",
        "service_code": "environment.garbage",
        "lat": repr(lat),
        "long": repr(lon),
        "address_string": "East bridge, Xingming",
        "description": f"Overflowing bins by the east bridge ({uuid.uuid4().hex[:8]})",
        "device_id": uuid.uuid4().hex,
        "media_url": "https://example.org/bins.jpg",
        **PERSONAL,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def xml_items(response: httpx.Response | requests.Response, root: str, item: str) -> list[dict]:
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    element = ET.fromstring(response.content)
    assert element.tag == root
    return [{child.tag: child.text for child in entry} for entry in element.findall(item)]


def as_xml_text(entry: dict) -> dict:
    """What a JSON entry reads as in the XML form of the same answer."""

    def text(value: object) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return {k: text(v) for k, v in entry.items()}


def json_items(response: httpx.Response) -> list[dict]:
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return response.json()


def stored_dump(stack) -> str:
    with sqlite3.connect(stack.config.data_dir / "events.sqlite3") as conn:
        return "\n".join(conn.iterdump())


def stored_rows(stack) -> int:
    with sqlite3.connect(stack.config.data_dir / "events.sqlite3") as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


# --- services ----------------------------------------------------------------------------


def test_service_list_in_json_and_xml(api):
    services = json_items(api.get("/services.json"))
    by_code = {s["service_code"]: s for s in services}
    garbage = by_code["environment.garbage"]
    assert garbage == {
        "service_code": "environment.garbage",
        "service_name": "Garbage or littering",
        "description": garbage["description"],
        "metadata": False,
        "type": "realtime",
        "keywords": "environment, garbage",
        "group": "environment",
    }
    assert garbage["description"]
    assert by_code["safety.fire_hazard"]["group"] == "safety"

    xml = xml_items(api.get("/services.xml"), "services", "service")
    assert xml == [as_xml_text(s) for s in services]


def test_service_definition_in_json_and_xml(api):
    response = api.get("/services/environment.garbage.json")
    assert response.status_code == 200
    assert response.json() == {"service_code": "environment.garbage", "attributes": []}

    response = api.get("/services/environment.garbage.xml")
    root = ET.fromstring(response.content)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "environment.garbage"
    assert root.find("attributes") is not None
    assert list(root.find("attributes")) == []


# --- requests ----------------------------------------------------------------------------


def test_create_read_list_and_retry_in_json(stack, api, xingming_point):
    _, lon, lat = xingming_point
    form = report_form(lon, lat)
    created = api.post("/requests.json", data=form)
    assert created.status_code == 200, created.text
    [answer] = json_items(created)
    request_id = answer["service_request_id"]
    assert set(answer) == {"service_request_id", "service_notice"}
    assert XINGMING in answer["service_notice"]

    [got] = json_items(api.get(f"/requests/{request_id}.json"))
    assert got["service_request_id"] == request_id
    assert got["status"] == "open"
    assert got["status_notes"] == "reported"
    assert got["service_code"] == "environment.garbage"
    assert got["service_name"] == "Garbage or littering"
    assert got["description"] == form["description"]
    assert got["lat"] == pytest.approx(lat)
    assert got["long"] == pytest.approx(lon)
    assert got["address"] == form["address_string"]
    assert got["media_url"] == form["media_url"]
    assert got["agency_responsible"] == XINGMING
    requested = datetime.fromisoformat(got["requested_datetime"])
    assert requested.tzinfo is not None
    assert abs(datetime.now(UTC) - requested) < timedelta(minutes=5)
    assert datetime.fromisoformat(got["updated_datetime"]) >= requested

    # The event behind it came from Open311 and holds none of the personal fields.
    event = httpx.get(
        f"{stack.config.gateway_url}/v1/tenants/sh-jiading-anting/events/{request_id}",
        headers=stack.api_headers(),
    ).json()
    assert event["source"] == "open311"
    dump = stored_dump(stack)
    assert request_id in dump
    for value in PERSONAL.values():
        assert value not in dump

    # A client's retry of the same report gets the same request back.
    rows = stored_rows(stack)
    [again] = json_items(api.post("/requests.json", data=form))
    assert again["service_request_id"] == request_id
    assert stored_rows(stack) == rows

    # The same words from another device are another report (a duplicate of the first,
    # if the events service finds it so: then it is closed to Open311).
    other = api.post("/requests.json", data={**form, "device_id": uuid.uuid4().hex}).json()
    other_id = other[0]["service_request_id"]
    assert other_id != request_id
    [other_got] = api.get(f"/requests/{other_id}.json").json()
    closed = other_got["status_notes"] in {"closed", "rejected", "duplicate"}
    assert other_got["status"] == ("closed" if closed else "open")

    listed = json_items(api.get("/requests.json", params={"service_code": "environment.garbage"}))
    assert request_id in [r["service_request_id"] for r in listed]
    assert {r["service_code"] for r in listed} == {"environment.garbage"}
    assert got in listed

    other_code = api.get("/requests.json", params={"service_code": "roads.damage"}).json()
    assert request_id not in [r["service_request_id"] for r in other_code]

    ids = f"{request_id},ev_doesnotexist,{other_id}"
    by_id = json_items(api.get("/requests.json", params={"service_request_id": ids}))
    assert [r["service_request_id"] for r in by_id] == [request_id, other_id]

    def listed_ids(**params: str) -> list[str]:
        return [r["service_request_id"] for r in api.get("/requests.json", params=params).json()]

    assert request_id in listed_ids(status="open")
    assert {request_id, other_id} <= set(listed_ids(status="open,closed"))
    assert request_id not in listed_ids(status="closed")
    assert (other_id in listed_ids(status="closed")) == closed
    assert (other_id in listed_ids(status="open")) != closed
    day = timedelta(days=1)
    yesterday = (requested - day).isoformat()
    assert request_id in listed_ids(start_date=yesterday, end_date=(requested + day).isoformat())
    assert request_id not in listed_ids(start_date=(requested + day).isoformat())
    assert request_id not in listed_ids(end_date=yesterday)

    [token] = json_items(api.get(f"/tokens/{request_id}.json"))
    assert token == {"service_request_id": request_id, "token": request_id}


def test_create_read_list_and_retry_in_xml(api, xingming_point):
    _, lon, lat = xingming_point
    form = report_form(lon, lat, service_code="environment.sewage")
    created = api.post("/requests.xml", data=form)
    assert created.status_code == 200, created.text
    [answer] = xml_items(created, "service_requests", "request")
    request_id = answer["service_request_id"]
    assert request_id.startswith("ev_")
    assert XINGMING in answer["service_notice"]

    [again] = xml_items(api.post("/requests.xml", data=form), "service_requests", "request")
    assert again["service_request_id"] == request_id

    [got] = xml_items(api.get(f"/requests/{request_id}.xml"), "service_requests", "request")
    [got_json] = api.get(f"/requests/{request_id}.json").json()
    assert got == as_xml_text(got_json)
    assert got["status"] == "open"
    assert float(got["lat"]) == pytest.approx(lat)
    assert float(got["long"]) == pytest.approx(lon)

    listed = xml_items(
        api.get("/requests.xml", params={"service_code": "environment.sewage"}),
        "service_requests",
        "request",
    )
    assert got in listed
    by_id = xml_items(
        api.get("/requests.xml", params={"service_request_id": request_id}),
        "service_requests",
        "request",
    )
    assert by_id == [got]

    [token] = xml_items(api.get(f"/tokens/{request_id}.xml"), "service_requests", "request")
    assert token == {"service_request_id": request_id, "token": request_id}


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [None, "", "any-key-for-now", "grk_0000_not-a-real-secret"])
def test_posting_without_a_valid_api_key_is_refused(stack, xingming_point, api_key):
    """The spec's api_key parameter is checked like the header: unknown keys are 401."""
    _, lon, lat = xingming_point
    response = httpx.post(
        f"{stack.config.gateway_url}{BASE}/requests.json",
        data=report_form(lon, lat, api_key=api_key),
        timeout=10,
    )
    assert response.status_code == 401, response.text


def test_the_spec_api_key_parameter_authenticates_a_post(stack, xingming_point):
    _, lon, lat = xingming_point
    key = stack.api_headers()["X-API-Key"]
    response = httpx.post(
        f"{stack.config.gateway_url}{BASE}/requests.json",
        data=report_form(lon, lat, api_key=key),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()[0]["service_request_id"]


def open311_errors(response: httpx.Response, fmt: str) -> list[dict]:
    if fmt == "json":
        return json_items(response)
    errors = xml_items(response, "errors", "error")
    return [{"code": int(e["code"]), "description": e["description"]} for e in errors]


POST_ERRORS = [
    ({"service_code": None}, 400, "service_code"),
    ({"service_code": "made.up"}, 404, "service_code"),
    ({"lat": None, "long": None}, 400, "lat"),
    ({"long": None}, 400, "long"),
    ({"lat": "91"}, 400, "lat"),
    ({"long": "east"}, 400, "long"),
    ({"lat": "nan"}, 400, "lat"),
    ({"description": ""}, 400, "description"),
    ({"description": "   "}, 400, "description"),
    ({"description": "x" * 4001}, 400, "description"),
    # Valid WGS84, but outside every village: the events service says so.
    ({"lat": "30.0", "long": "100.0"}, 400, "lat/long"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("overrides", "status", "field"), POST_ERRORS)
def test_bad_reports_answer_open311_errors_and_write_nothing(
    stack, api, any_point, fmt, overrides, status, field
):
    _, lon, lat = any_point
    before = stored_rows(stack)
    response = api.post(f"/requests.{fmt}", data=report_form(lon, lat, **overrides))
    assert response.status_code == status, response.text
    errors = open311_errors(response, fmt)
    assert any(e["description"].startswith(f"{field}: ") for e in errors), errors
    assert all(e["code"] in (400, 403, 404) for e in errors)
    assert "Traceback" not in response.text
    assert stored_rows(stack) == before


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/requests/ev_doesnotexist", {}, 404, "service_request_id"),
        ("/requests/not!an!id", {}, 404, "service_request_id"),
        ("/tokens/ev_doesnotexist", {}, 404, "token"),
        ("/services/made.up", {}, 404, "service_code"),
        ("/requests", {"status": "pending"}, 400, "status"),
        ("/requests", {"service_code": "made.up"}, 400, "service_code"),
        ("/requests", {"start_date": "yesterday"}, 400, "start_date"),
        ("/requests", {"start_date": "2024-01-01T00:00:00"}, 400, "start_date"),
        (
            "/requests",
            {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-06-01T00:00:00Z"},
            400,
            "end_date",
        ),
    ],
)
def test_bad_reads_answer_open311_errors(api, fmt, path, params, status, field):
    response = api.get(f"{path}.{fmt}", params=params)
    assert response.status_code == status, response.text
    [error] = open311_errors(response, fmt)
    assert error["code"] == status
    assert error["description"].startswith(f"{field}: ")


def test_an_unknown_format_is_404_in_xml(api):
    response = api.get("/services.yaml")
    assert response.status_code == 404
    [error] = xml_items(response, "errors", "error")
    assert error["code"] == "404"


# --- a third-party Open311 client --------------------------------------------------------


def as_list(value: list | dict) -> list:
    """xmltodict, which georeport uses for XML, gives one repeated element as a dict."""
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_georeport_client_reads_what_it_reports(stack, xingming_point, fmt, monkeypatch):
    _, lon, lat = xingming_point
    root = f"{stack.config.gateway_url}{BASE}"
    key = stack.api_headers()["X-API-Key"]
    # The client sends api_key only when it posts; reads carry the key as a header here.
    session = requests.Session()
    session.headers["X-API-Key"] = key
    monkeypatch.setattr(georeport_module, "requests", session)
    client = GeoReport(root, jurisdiction="grassroots.example", api_key=key, output_format=fmt)

    codes = [s["service_code"] for s in as_list(client.get_service_list())]
    assert "environment.garbage" in codes
    definition = client.get_service_definition("environment.garbage")
    assert definition["service_code"] == "environment.garbage"

    # georeport 0.3 does not create requests: post the spec's form with requests, the
    # HTTP library it is built on.
    form = report_form(lon, lat, api_key=key)
    posted = requests.post(f"{root}/requests.{fmt}", data=form, timeout=10)
    assert posted.status_code == 200, posted.text
    if fmt == "json":
        request_id = posted.json()[0]["service_request_id"]
    else:
        request_id = ET.fromstring(posted.content).findtext("request/service_request_id")

    got = client.get_service_request(request_id)
    assert got["service_request_id"] == request_id
    assert got["status"] == "open"
    assert got["service_code"] == "environment.garbage"
    assert got["description"] == form["description"]
    assert float(got["lat"]) == pytest.approx(lat)

    by_id = as_list(client.get_service_requests(service_request_id=request_id))
    assert [r["service_request_id"] for r in by_id] == [request_id]
    by_code = as_list(client.get_service_requests(service_code="environment.garbage"))
    assert request_id in [r["service_request_id"] for r in by_code]
    open_ones = as_list(client.get_service_requests(status="open"))
    assert request_id in [r["service_request_id"] for r in open_ones]

    with pytest.raises(requests.HTTPError) as failure:
        client.get_service_request("ev_doesnotexist")
    assert failure.value.response.status_code == 404


# --- public reads, resubmissions, the town's categories ----------------------------------

OPEN311_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_reads_public_categories_without_a_key(stack, api, unused_points, fmt):
    _, lon, lat = next(unused_points)
    public = api.post("/requests.json", data=report_form(lon, lat)).json()[0]
    private = api.post(
        "/requests.json", data=report_form(lon, lat, service_code="neighbourhood.dispute")
    ).json()[0]
    public_id, private_id = public["service_request_id"], private["service_request_id"]
    root = f"{stack.config.gateway_url}{BASE}"
    # As a civic app reads: no key, the client's own jurisdiction name.
    client = GeoReport(root, jurisdiction="grassroots.example", output_format=fmt)
    codes = {s["service_code"] for s in as_list(client.get_service_list())}
    assert {"environment.garbage", "neighbourhood.dispute"} <= codes
    got = client.get_service_request(public_id)
    assert got["service_request_id"] == public_id
    assert got["address"] == "East bridge, Xingming"
    assert got["media_url"] == "https://example.org/bins.jpg"
    listed = as_list(client.get_service_requests(service_code="environment.garbage"))
    assert public_id in [r["service_request_id"] for r in listed]
    everything = as_list(client.get_service_requests())
    assert private_id not in [r["service_request_id"] for r in everything]
    assert {"environment.garbage"} <= {r["service_code"] for r in everything}
    assert "neighbourhood.dispute" not in {r["service_code"] for r in everything}
    with pytest.raises(requests.HTTPError) as failure:
        client.get_service_request(private_id)
    assert failure.value.response.status_code == 404
    # Nothing personal in a public answer; the key's app still reads its private report.
    raw = httpx.get(f"{root}/requests.json", timeout=10)
    assert raw.status_code == 200
    assert all(set(r) == OPEN311_FIELDS for r in raw.json())
    for value in PERSONAL.values():
        assert value not in raw.text
    [own] = api.get(f"/requests/{private_id}.json").json()
    assert own["service_code"] == "neighbourhood.dispute"


def test_resubmissions_key_on_the_reporter_and_never_reuse_a_finished_report(
    stack, api, unused_points
):
    _, lon, lat = next(unused_points)
    anonymous_form = report_form(
        lon, lat, device_id=None, email=None, phone=None, service_code="public.facility"
    )
    first = api.post("/requests.json", data=anonymous_form).json()[0]["service_request_id"]
    second = api.post("/requests.json", data=anonymous_form).json()[0]["service_request_id"]
    assert first != second  # nothing says it is one resident: never merged

    form = report_form(lon, lat, service_code="roads.damage")
    report = api.post("/requests.json", data=form).json()[0]["service_request_id"]
    assert api.post("/requests.json", data=form).json()[0]["service_request_id"] == report
    events = httpx.Client(base_url=stack.config.gateway_url, headers=stack.api_headers())
    for state in ("accepted", "dispatched", "in_progress", "resolved", "closed"):
        moved = events.post(
            f"/v1/tenants/sh-jiading-anting/events/{report}:transition", json={"state": state}
        )
        assert moved.status_code == 200, moved.text
    [again] = api.post("/requests.json", data=form).json()
    assert again["service_request_id"] != report  # a new report, not the closed one
    [retry] = api.post("/requests.json", data=form).json()
    assert retry["service_request_id"] == again["service_request_id"]
    [got] = api.get(f"/requests/{again['service_request_id']}.json").json()
    assert got["status"] == "open"


def test_categories_a_town_adds_appear_in_services(stack, api):
    code = f"town.open311_{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{stack.config.gateway_url}/v1/tenants/sh-jiading-anting/categories",
        json={"code": code, "display_name": "Town's own matter", "public": True},
        headers=stack.api_headers(),  # the town's operations app
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == f"tenants/sh-jiading-anting/categories/{code}"
    village_key = DemoCredentials.load(stack.credentials_file).app_keys[XINGMING]
    root = f"{stack.config.gateway_url}{BASE}"
    for headers, params in (
        ({"X-API-Key": village_key}, {}),
        ({}, {"jurisdiction_id": "sh-jiading-anting-xingming"}),
        ({}, {"jurisdiction_id": "sh-jiading-anting"}),
    ):
        listed = httpx.get(f"{root}/services.json", headers=headers, params=params, timeout=10)
        assert code in {s["service_code"] for s in listed.json()}, (headers, params)
        one = httpx.get(f"{root}/services/{code}.json", headers=headers, params=params, timeout=10)
        assert one.status_code == 200
    city = httpx.get(f"{root}/services.json", timeout=10).json()
    assert code not in {s["service_code"] for s in city}
    elsewhere = httpx.get(
        f"{root}/services.json", params={"jurisdiction_id": "sh-jiading-anting-xiangyang"}
    )
    assert code in {s["service_code"] for s in elsewhere.json()}  # the town's, for all
    outside = httpx.get(
        f"{root}/services.json",
        headers={"X-API-Key": village_key},
        params={"jurisdiction_id": "sh-jiading-anting-xiangyang"},
    )
    assert outside.status_code == 404
    assert outside.json()[0]["description"].startswith("jurisdiction_id: ")

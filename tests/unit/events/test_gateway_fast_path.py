"""The gateway's fast path for reporting an event and reading one back answers what the
FastAPI routes answer (status, body, headers), keeps every report's key, and leaves
what it does not find plain to the routes, which refuse it by name."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.fast_routes import FastRoutes
from gateway.middleware import HTTP_REQUESTS
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from tests.conftest import XIANGYANG, XINGMING, principal_of
from tests.unit.events.test_events_api import cell_point

VILLAGE = XINGMING.replace("/", "-")
EVENTS = f"/v1/tenants/{VILLAGE}/events"
CREATE_ROUTE = "/v1/tenants/{tenant}/events"
GET_ROUTE = "/v1/tenants/{tenant}/events/{event}"


def gateway_for(events: Any, who: Any) -> Any:
    """The gateway as `python -m gateway` builds it, calling this events service as `who`."""
    settings = GatewaySettings(**{f"{n}_address": events.address for n in NAMES})
    app = create_app(settings, fixed_caller=Caller(who, None))
    app.state.upstreams = Upstreams(StaticDiscovery(settings.addresses()), NAMES, timeout=10.0)
    return app


@pytest.fixture
async def rest(events) -> AsyncIterator[Callable[..., Any]]:
    """`client(tenant, scopes)`: an HTTP client of the gateway acting as an app of `tenant`."""
    apps, clients = [], []

    async def client(
        tenant: str = XINGMING, scopes: frozenset[str] | None = None
    ) -> httpx.AsyncClient:
        who = principal_of(tenant) if scopes is None else principal_of(tenant, scopes=scopes)
        app = gateway_for(events, who)
        apps.append(app)
        made = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"X-API-Key": "grk_app_secret"},  # any: the caller is fixed
        )
        clients.append(made)
        return made

    yield client
    for made in clients:
        await made.aclose()
    for app in apps:
        await app.state.upstreams.close()


@pytest.fixture
def taken(monkeypatch) -> Counter[str]:
    """How many requests the fast path took (it admits the caller itself), by method."""
    counts = Counter[str]()
    admit = FastRoutes._admit

    async def counted(scope: Any, *args: Any) -> Any:
        counts[scope["method"]] += 1
        return await admit(scope, *args)

    monkeypatch.setattr(FastRoutes, "_admit", staticmethod(counted))
    return counts


def route_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, every request goes through FastAPI's routes."""
    monkeypatch.setattr(FastRoutes, "_plain", lambda self, scope: None)


def comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body = response.json()
    if "error" in body:
        body["error"].pop("request_id", None)
    headers = {
        k: v for k, v in response.headers.items() if k not in ("x-request-id", "content-length")
    }
    return response.status_code, body, headers


def place(grid_index: Any, k: int) -> dict[str, Any]:
    cell, lon, lat = cell_point(grid_index, XINGMING, k)
    return {
        "category": "environment.garbage",
        "description": f"bins overflowing in {cell}",
        "location": {"longitude": lon, "latitude": lat},
    }


async def test_a_report_and_its_replays_answer_alike_both_ways(
    events, grid_index, rest, taken, monkeypatch
):
    app = await rest()
    report = place(grid_index, 0)
    created = await app.post(EVENTS, json=report, headers={"Idempotency-Key": "fast-1"})
    assert created.status_code == 201, created.text
    assert taken["POST"] == 1
    assert await events.count_rows() == 1  # stored before its 201
    event = created.json()
    assert created.headers["idempotent-replayed"] == "false"
    assert created.headers["location"] == f"/v1/{event['name']}"
    assert event["grid_cell"] == cell_point(grid_index, XINGMING, 0)[0]
    in_body = await app.post(EVENTS, json=place(grid_index, 1) | {"request_id": "fast-2"})
    assert in_body.status_code == 201 and in_body.headers["idempotent-replayed"] == "false"
    counter = HTTP_REQUESTS.labels("POST", CREATE_ROUTE, "201")
    before = counter._value.get()

    again = [
        (report, {"Idempotency-Key": "fast-1"}),
        (report | {"request_id": "fast-1"}, {}),
        (report | {"request_id": "fast-1"}, {"Idempotency-Key": '"fast-1"'}),
        (place(grid_index, 1) | {"request_id": "fast-2"}, {}),
    ]
    quick = [comparable(await app.post(EVENTS, json=b, headers=h)) for b, h in again]
    assert taken["POST"] == 6
    assert counter._value.get() == before + 4  # counted under the route's template
    route_only(monkeypatch)
    routed = [comparable(await app.post(EVENTS, json=b, headers=h)) for b, h in again]
    assert taken["POST"] == 6
    assert quick == routed
    assert [headers["idempotent-replayed"] for _, _, headers in quick] == ["true"] * 4
    assert quick[0][1]["name"] == event["name"]  # the first event, again
    assert quick[3][1]["name"] == in_body.json()["name"]
    assert quick[0][2]["cache-control"] == "no-store"
    assert quick[0][2]["x-content-type-options"] == "nosniff"
    assert await events.count_rows() == 2


async def test_a_report_through_the_route_is_replayed_alike_by_the_fast_path(
    events, grid_index, rest, taken, monkeypatch
):
    app = await rest()
    report = place(grid_index, 2)
    with monkeypatch.context() as routed:
        route_only(routed)
        first = await app.post(EVENTS, json=report, headers={"Idempotency-Key": "route-1"})
        replayed = await app.post(EVENTS, json=report, headers={"Idempotency-Key": "route-1"})
    assert taken["POST"] == 0
    fast = await app.post(EVENTS, json=report, headers={"Idempotency-Key": "route-1"})
    assert taken["POST"] == 1
    assert first.status_code == 201 and first.headers["idempotent-replayed"] == "false"
    assert comparable(fast) == comparable(replayed)
    assert fast.json()["name"] == first.json()["name"]
    assert await events.count_rows() == 1


async def test_reads_and_refusals_answer_alike_both_ways(
    events, grid_index, rest, taken, monkeypatch
):
    app = await rest()
    reader = await rest(scopes=frozenset({"events:read"}))
    neighbour = await rest(XIANGYANG)
    created = await app.post(EVENTS, json=place(grid_index, 3) | {"request_id": "r-1"})
    assert created.status_code == 201, created.text
    event = created.json()["id"]
    other = place(grid_index, 4)
    json_type = {"Content-Type": "application/json"}
    # client, method, path, request arguments; the fast path takes the first eight
    cases: list[tuple[httpx.AsyncClient, str, str, dict[str, Any]]] = [
        (app, "GET", f"{EVENTS}/{event}", {}),
        (reader, "GET", f"{EVENTS}/{event}", {}),
        (neighbour, "GET", f"{EVENTS}/{event}", {}),  # another village's event
        (app, "GET", f"{EVENTS}/ev_nobody", {}),
        (neighbour, "GET", f"/v1/tenants/{XIANGYANG.replace('/', '-')}/events/{event}", {}),
        (reader, "POST", EVENTS, {"json": other | {"request_id": "r-2"}}),  # no events:write
        (
            app,
            "POST",
            EVENTS,
            {
                "json": other
                | {"location": {"longitude": 100.0, "latitude": 30.0}, "request_id": "r-3"}
            },
        ),
        (app, "POST", EVENTS, {"json": other | {"request_id": "r-1"}}),  # another report's key
        # not plain: the routes refuse them
        (app, "GET", f"{EVENTS}/{event}", {"params": {"view": "full"}}),
        (app, "GET", f"{EVENTS}/{'x' * 65}", {}),
        (app, "POST", EVENTS, {"json": other}),  # no key
        (
            app,
            "POST",
            EVENTS,
            {"json": other | {"request_id": "a"}, "headers": {"Idempotency-Key": "b"}},
        ),
        (app, "POST", EVENTS, {"json": other, "headers": {"Idempotency-Key": "a b"}}),
        (app, "POST", EVENTS, {"json": other, "headers": {"Idempotency-Key": "k" * 131}}),
        (app, "POST", EVENTS, {"json": other | {"request_id": "r-4", "colour": 1}}),
        (app, "POST", EVENTS, {"json": {"request_id": "r-5", "category": "environment.garbage"}}),
        (app, "POST", EVENTS, {"content": b'{"request_id": "r-6", ', "headers": json_type}),
        (app, "POST", EVENTS, {"json": other | {"request_id": "r-7"}, "params": {"x": "1"}}),
    ]

    async def answers() -> list[tuple[int, Any, dict[str, str]]]:
        return [comparable(await c.request(m, p, **kw)) for c, m, p, kw in cases]

    refused = HTTP_REQUESTS.labels("POST", CREATE_ROUTE, "403")
    before = refused._value.get()
    quick = await answers()
    assert (taken["GET"], taken["POST"]) == (5, 1 + 3)
    assert refused._value.get() == before + 1  # counted under the route's template
    route_only(monkeypatch)
    routed = await answers()
    assert (taken["GET"], taken["POST"]) == (5, 1 + 3)
    assert refused._value.get() == before + 2
    assert quick == routed
    statuses = [status for status, _, _ in quick]
    assert statuses == [200, 200, 404, 404, 404, 403, 400, 422] + [400] * 10
    assert quick[0][1] == created.json()
    assert quick[5][1]["error"]["reason"] == "MISSING_SCOPE"
    assert quick[7][1]["error"]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    fields = [
        sorted(v["field"] for v in body["error"].get("field_violations", []))
        for _, body, _ in quick[6:]
    ]
    assert fields == [
        ["location"],
        [],
        ["view"],
        ["event"],
        ["request_id"],
        ["Idempotency-Key"],
        ["Idempotency-Key"],
        ["Idempotency-Key"],
        ["colour"],
        ["description", "location"],
        ["body"],
        ["x"],
    ]
    assert await events.count_rows() == 1

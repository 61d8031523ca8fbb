"""Single readings over REST: those arriving together share one IngestTelemetry call, yet
each request is answered with its own reading's fate; the gateway's fast path for the
plain case answers exactly what the FastAPI route answers, and leaves the rest to it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.app import create_app
from gateway.fast_ingest import FastIngest
from gateway.fast_routes import FastRoutes
from gateway.middleware import HTTP_REQUESTS
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from gateway.telemetry_ingests import TelemetryIngests
from gateway.upstreams import Upstreams
from grassroots.twin.v1 import twin_service_pb2 as pb
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.principal import Principal
from tests.conftest import XINGMING, principal_of
from tests.unit.twin.test_alarm_loop import MD, PARENT, WRITER, make_gauge
from tests.unit.twin.test_ingest import NOW

TENANT_ID = XINGMING.replace("/", "-")
INGEST = f"/v1/tenants/{TENANT_ID}:ingestTelemetry"
ROUTE = "/v1/tenants/{tenant}:ingestTelemetry"
CONTRACT_MAX_MS = 253402300799999  # observe_times_ms's maximum in the contract


class CountingStub:
    """The twin stub, counting the readings of each IngestTelemetry call made through it."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.calls: list[int] = []

    def IngestTelemetry(self, request: pb.IngestTelemetryRequest, **kwargs: Any) -> Any:
        self.calls.append(len(request.columns.entities))
        return self.stub.IngestTelemetry(request, **kwargs)


def one(entity: str, value: float, time_ms: int) -> pb.IngestTelemetryRequest:
    return pb.IngestTelemetryRequest(
        parent=PARENT,
        columns=pb.TelemetryColumns(
            entities=[entity], properties=["level_cm"], values=[value], observe_times_ms=[time_ms]
        ),
    )


async def send_all(ingests: TelemetryIngests, stub: Any, requests: list[Any]) -> list[Any]:
    caller = WRITER.to_metadata()[:2]  # the signed principal
    return await asyncio.gather(
        *(ingests.ingest(stub, r, tuple(MD), caller) for r in requests), return_exceptions=True
    )


async def history_count(twin: Any, entity: str) -> int:
    """Readings of `entity`'s level_cm kept in history around NOW."""
    page = await twin.stub.QueryHistory(
        pb.QueryHistoryRequest(
            parent=PARENT,
            entities=[f"{PARENT}/entities/{entity}"],
            property="level_cm",
            start_time=Timestamp(seconds=NOW // 1000 - 3600),
            end_time=Timestamp(seconds=NOW // 1000 + 3600),
            bucket=Duration(seconds=7200),
        ),
        metadata=MD,
    )
    return sum(p.count for p in page.points)


async def latest(twin: Any, entity: str) -> float:
    got = await twin.stub.GetEntity(
        pb.GetEntityRequest(name=f"{PARENT}/entities/{entity}"), metadata=MD
    )
    return float(got.state["level_cm"])


async def test_single_readings_arriving_together_share_a_call_and_each_get_their_own_answer(
    twin, grid_index
):
    for i in range(3):
        await make_gauge(twin, grid_index, f"gauge-{i}")
    await twin.stub.IngestTelemetry(one("gauge-0", 20.0, NOW), metadata=MD)
    requests = [one(f"gauge-{i % 3}", 10.0 + i, NOW + 1000 + i) for i in range(30)]
    requests[5] = one("gauge-2", 9999.0, NOW + 1005)  # outside the model's range
    requests[7] = one("nobody", 1.0, NOW + 1007)
    requests[9] = one("gauge-0", 3.0, NOW - 60_000)  # older than the stored value
    several = pb.IngestTelemetryRequest(
        parent=PARENT,
        columns=pb.TelemetryColumns(
            entities=["gauge-1", "gauge-1"],
            properties=["level_cm"] * 2,
            values=[1.0, 9999.0],
            observe_times_ms=[NOW - 120_000, NOW - 119_000],
        ),
    )
    stub = CountingStub(twin.stub)

    answers = await send_all(TelemetryIngests(), stub, [*requests, several])

    assert not [a for a in answers if isinstance(a, BaseException)], answers
    *singles, batch = answers
    got = [(a.accepted_count, a.rejected_count, a.stale_count) for a in singles]
    expected = [(1, 0, 0)] * 30
    expected[5] = expected[7] = (0, 1, 0)
    expected[9] = (1, 0, 1)
    assert got == expected
    assert [(r.index, r.reason) for r in singles[5].rejections] == [(0, "OUT_OF_RANGE")]
    assert [(r.index, r.reason) for r in singles[7].rejections] == [(0, "UNKNOWN_ENTITY")]
    assert list(singles[9].stale_indexes) == [0]
    assert (batch.accepted_count, batch.rejected_count) == (1, 1)
    assert [r.index for r in batch.rejections] == [1]
    assert 2 in stub.calls  # the several readings went alone, as sent
    singles_calls = [n for n in stub.calls if n != 2] or [0]
    assert len(singles_calls) <= 3 and sum(singles_calls) == 30
    # The newest of each gauge is its latest value; every accepted reading is in history.
    assert await latest(twin, "gauge-0") == 10.0 + 27
    assert await latest(twin, "gauge-1") == 10.0 + 28
    assert await latest(twin, "gauge-2") == 10.0 + 29
    assert await history_count(twin, "gauge-0") == 1 + 10
    assert await history_count(twin, "gauge-2") == 10 - 1


async def test_a_reading_the_contract_refuses_fails_alone_and_nothing_is_stored_twice(
    twin, grid_index
):
    await make_gauge(twin, grid_index, "gauge-1")
    requests = [one("gauge-1", 10.0 + i, NOW + i) for i in range(10)]
    requests[4] = one("gauge-1", 14.0, CONTRACT_MAX_MS + 1)
    stub = CountingStub(twin.stub)

    answers = await send_all(TelemetryIngests(), stub, requests)

    refused = answers.pop(4)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [a.accepted_count for a in answers] == [1] * 9
    assert stub.calls.count(1) >= 10  # the refused batch was sent again reading by reading
    assert await history_count(twin, "gauge-1") == 9
    assert await latest(twin, "gauge-1") == 19.0


def gateway_for(twin: Any, who: Principal) -> Any:
    """The gateway as `python -m gateway` builds it, calling this twin, acting as `who`."""
    settings = GatewaySettings(**{f"{n}_address": twin.server.address for n in NAMES})
    app = create_app(settings, fixed_caller=Caller(who, None))
    app.state.upstreams = Upstreams(StaticDiscovery(settings.addresses()), NAMES, timeout=10.0)
    return app


@pytest.fixture
async def rest(twin, grid_index) -> AsyncIterator[Callable[..., Any]]:
    """`client(scopes)`: an HTTP client of the gateway acting as a village's device app."""
    await make_gauge(twin, grid_index, "gauge-1")
    apps = []
    clients = []

    async def client(scopes: frozenset[str] = frozenset({"twin:ingest"})) -> httpx.AsyncClient:
        app = gateway_for(twin, principal_of(XINGMING, scopes=scopes))
        apps.append(app)
        made = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"X-API-Key": "grk_device_secret"},  # any: the caller is fixed
        )
        clients.append(made)
        return made

    yield client
    for made in clients:
        await made.aclose()
    for app in apps:
        await app.state.upstreams.close()


def _comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body = response.json()
    if "error" in body:
        body["error"].pop("request_id", None)
    headers = {
        k: v for k, v in response.headers.items() if k not in ("x-request-id", "content-length")
    }
    return response.status_code, body, headers


async def test_the_fast_path_answers_what_the_route_answers(rest, monkeypatch):
    device = await rest()
    outsider = await rest(frozenset({"twin:read"}))
    fast = Counter[str]()
    taken = FastIngest.answer

    async def counted(self: FastIngest, *args: Any) -> Any:
        fast["taken"] += 1
        return await taken(self, *args)

    monkeypatch.setattr(FastIngest, "answer", counted)

    def bodies(t: int) -> list[tuple[httpx.AsyncClient, dict[str, Any]]]:
        reading = {"entities": ["gauge-1"], "properties": ["level_cm"]}
        return [
            (device, reading | {"values": [12.5], "observe_times_ms": [t]}),
            (device, reading | {"values": [9999.0]}),
            (
                device,
                {
                    "entities": ["gauge-1", "gauge-1"],
                    "properties": ["level_cm"] * 2,
                    "values": [3.0, 9999.0],
                    "observe_times_ms": [t - 60_000, t - 1],
                },
            ),
            (outsider, reading | {"values": [12.5]}),
        ]

    counter = HTTP_REQUESTS.labels("POST", ROUTE, "200")
    before = counter._value.get()
    quick = [_comparable(await c.post(INGEST, json=b)) for c, b in bodies(NOW)]
    assert fast["taken"] == 3  # the caller without the scope is refused before it
    assert counter._value.get() == before + 2  # counted under the route's template
    monkeypatch.setattr(FastRoutes, "_plain", lambda self, scope: None)
    routed = [_comparable(await c.post(INGEST, json=b)) for c, b in bodies(NOW + 10)]
    assert fast["taken"] == 3
    assert quick == routed
    assert [status for status, _, _ in quick] == [200, 422, 200, 403]
    accepted, refused, several, outside = (body for _, body, _ in quick)
    assert accepted == {
        "accepted_count": 1,
        "rejected_count": 0,
        "stale_count": 0,
        "rejections": [],
    }
    assert refused["error"]["field_violations"][0]["field"] == "values[0]"
    assert (several["accepted_count"], several["stale_count"]) == (1, 1)
    assert outside["error"]["reason"] == "MISSING_SCOPE"
    assert quick[0][2]["cache-control"] == "no-store"
    assert quick[0][2]["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"content": b'{"entities": ["gauge-1"], "properties": '}, "body"),
        ({"json": {"entities": "gauge-1", "properties": ["level_cm"]}}, "entities"),
        ({"json": {"entities": ["gauge-1"], "properties": ["level_cm"], "colour": 1}}, "colour"),
        ({"params": {"verbose": "1"}, "json": {"entities": [], "properties": []}}, "verbose"),
    ],
    ids=["not JSON", "not a list", "unknown field", "query parameter"],
)
async def test_what_the_fast_path_does_not_take_the_route_refuses_by_name(
    rest, extra: dict[str, Any], field: str
):
    device = await rest()
    headers = {"Content-Type": "application/json"}
    response = await device.post(INGEST, headers=headers, **extra)
    assert response.status_code == 400, response.text
    fields = [v["field"] for v in response.json()["error"]["field_violations"]]
    assert field in fields
    assert response.headers["x-request-id"]

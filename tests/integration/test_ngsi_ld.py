"""NGSI-LD at /ngsi-ld/v1 on a running platform, driven by FIWARE's ngsildclient from
PyPI (unchanged) and by plain HTTP for what that client does not send (georel, temporal
aggregation, error shapes, tenants); and the twin's server-sent event stream."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from devstack.demo_identity import DemoCredentials
from devstack.stack import Stack
from tests.integration import ngsi_ld_client

XINGMING = "sh/jiading/anting/xingming"
XIANGYANG = "sh/jiading/anting/xiangyang"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
# Ids of this run: a rerun on the same platform starts from new entities.
RUN = uuid.uuid4().hex[:6]
LD = "application/ld+json"

CLIENT_SCRIPT = (
    ngsi_ld_client.PRELUDE
    + """
from ngsildclient import Client, Entity

client = Client(hostname="127.0.0.1", port=ARGS["port"], custom_auth=ApiKey(), verbose=False)
gauge = Entity("WaterLevelGauge", "gauge-fiware-1")
gauge.prop("level_cm", 12.5, unitcode="CMT", observedat="2026-12-01T06:00:00Z")
gauge.prop("battery", 88)
gauge.loc(31.2905, 121.1605)
client.create(gauge)
got = client.get("urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1", asdict=True)
found = [e.id for e in client.query(type="WaterLevelGauge", q="level_cm>10;battery>=50")]
none = [e.id for e in client.query(type="WaterLevelGauge", q="level_cm>20")]
count = client.entities.count(type="WaterLevelGauge")
troe = client.temporal.get("urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1", attrs=["level_cm"])
gauge.prop("level_cm", 14.0, unitcode="CMT", observedat="2026-12-01T06:10:00Z")
client.upsert(gauge)   # ngsildclient: delete, then create
after = client.get("urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1", asdict=True)
client.delete(gauge)   # by entity: DELETE /entities/{id}
exists = client.exists("urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1")
try:
    client.get("urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1")
    missing = "no error"
except Exception as exc:
    missing = type(exc).__name__
print(json.dumps({"got": got, "found": found, "none": none, "count": count, "troe": troe,
                  "after": after, "exists": exists, "missing": missing}))
"""
)


@pytest.fixture(scope="module")
def demo(stack: Stack) -> DemoCredentials:
    return DemoCredentials.load(stack.credentials_file)


@pytest.fixture(scope="module")
def operator_key(stack: Stack) -> str:
    """An app of Xingming with the twin's scopes, made as district IT would."""
    demo = DemoCredentials.load(stack.credentials_file)
    account = demo.account("xingming.secretary")
    base = stack.config.gateway_url
    token = httpx.post(
        f"{base}/v1/auth/token",
        data={"grant_type": "password", "username": account.username, "password": account.password},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    tenant = "/v1/tenants/sh-jiading-anting-xingming"
    app = httpx.post(
        f"{base}{tenant}/apps",
        json={"display_name": "FIWARE tools", "scopes": ["twin:read", "twin:write", "twin:ingest"]},
        headers=headers,
        timeout=10,
    )
    assert app.status_code == 201, app.text
    return app.json()["key"]


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.config.gateway_url, headers={"X-API-Key": key}, timeout=20)


def test_ngsildclient_creates_reads_queries_and_deletes(stack: Stack, operator_key: str) -> None:
    result = ngsi_ld_client.run(CLIENT_SCRIPT, port=stack.config.gateway_port, key=operator_key)
    got = result["got"]
    assert got["id"] == "urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1"
    assert got["level_cm"]["value"] == 12.5 and got["level_cm"]["unitCode"] == "CMT"
    assert got["location"]["value"]["coordinates"] == [121.1605, 31.2905]
    assert "@context" in got
    assert result["found"] == ["urn:ngsi-ld:WaterLevelGauge:gauge-fiware-1"]
    assert result["none"] == []
    assert result["count"] >= 1
    troe = result["troe"]
    assert troe["level_cm"]["values"][0][0] == 12.5
    assert result["after"]["level_cm"]["value"] == 14.0
    assert result["exists"] is False
    assert result["missing"] == "NgsiResourceNotFoundError"


def test_georel_q_attrs_update_and_temporal_over_http(stack: Stack, operator_key: str) -> None:
    with _client(stack, operator_key) as http:
        now = datetime.now(UTC).replace(microsecond=0)
        for i, (lon, lat) in enumerate(
            [(121.1600, 31.2900), (121.1700, 31.2900), (121.2500, 31.3500)]
        ):
            answer = http.post(
                "/ngsi-ld/v1/entities",
                json={
                    "id": f"urn:ngsi-ld:WaterLevelGauge:geo{RUN}-{i}",
                    "type": "WaterLevelGauge",
                    "location": {
                        "type": "GeoProperty",
                        "value": {"type": "Point", "coordinates": [lon, lat]},
                    },
                    "level_cm": {
                        "type": "Property",
                        "value": 10 * (i + 1),
                        "observedAt": (now - timedelta(minutes=30)).isoformat(),
                    },
                },
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 201, answer.text
            assert answer.headers["location"].endswith(f"urn:ngsi-ld:WaterLevelGauge:geo{RUN}-{i}")
        near = http.get(
            "/ngsi-ld/v1/entities",
            params={
                "type": "WaterLevelGauge",
                "georel": "near;maxDistance==2000",
                "geometry": "Point",
                "coordinates": "[121.1610,31.2900]",
            },
        )
        assert near.status_code == 200 and near.headers["content-type"].startswith(
            "application/json"
        )
        assert "ngsi-ld-core-context" in near.headers["link"]
        assert {e["id"].rsplit(":", 1)[1] for e in near.json()} >= {f"geo{RUN}-0", f"geo{RUN}-1"}
        assert f"geo{RUN}-2" not in {e["id"].rsplit(":", 1)[1] for e in near.json()}
        square = json.dumps(
            [
                [
                    [121.15, 31.28],
                    [121.165, 31.28],
                    [121.165, 31.30],
                    [121.15, 31.30],
                    [121.15, 31.28],
                ]
            ]
        )
        within = http.get(
            "/ngsi-ld/v1/entities",
            params={
                "type": "WaterLevelGauge",
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": square,
                "options": "keyValues",
            },
            headers={"Accept": LD},
        )
        assert within.status_code == 200, within.text
        assert [
            e["id"].rsplit(":", 1)[1]
            for e in within.json()
            if e["id"].split(":")[-1].startswith(f"geo{RUN}")
        ] == [f"geo{RUN}-0"]
        geo0_doc = next(e for e in within.json() if e["id"].endswith(f":geo{RUN}-0"))
        assert geo0_doc["level_cm"] == 10 and "@context" in geo0_doc
        # Updates are readings: the model's range still holds (207 names what it refused).
        geo0 = f"/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:geo{RUN}-0"
        ok = http.patch(
            f"{geo0}/attrs",
            json={"level_cm": {"type": "Property", "value": 11}},
            headers={"Content-Type": "application/json"},
        )
        assert ok.status_code == 204, ok.text
        partly = http.patch(
            f"{geo0}/attrs",
            json={"level_cm": 9999, "battery": 50},
            headers={"Content-Type": "application/json"},
        )
        assert partly.status_code == 207, partly.text
        assert partly.json()["notUpdated"][0]["attributeName"] == "level_cm"
        assert partly.json()["updated"] == ["battery"]
        assert http.get(geo0).json()["level_cm"]["value"] == 11
        # Temporal: one entity aggregated, and across the model (Orion-LD answers 501).
        span = {
            "timerel": "between",
            "timeAt": (now - timedelta(hours=1)).isoformat(),
            "endTimeAt": (now + timedelta(minutes=5)).isoformat(),
        }
        one = http.get(
            f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:WaterLevelGauge:geo{RUN}-0",
            params={**span, "aggrMethods": "max,totalCount", "aggrPeriodDuration": "PT2H"},
        )
        assert one.status_code == 200, one.text
        level = one.json()["level_cm"]
        assert max(bucket[0] for bucket in level["max"]) == 11
        assert sum(bucket[0] for bucket in level["totalCount"]) == 2
        many = http.get(
            "/ngsi-ld/v1/temporal/entities",
            params={
                **span,
                "type": "WaterLevelGauge",
                "q": "level_cm>=20",
                "options": "temporalValues",
            },
        )
        assert many.status_code == 200, many.text
        assert {d["id"].rsplit(":", 1)[1] for d in many.json()} >= {f"geo{RUN}-1", f"geo{RUN}-2"}


def test_errors_tenants_and_scopes_in_ngsi_ld_shape(
    stack: Stack, operator_key: str, demo: DemoCredentials
) -> None:
    with _client(stack, operator_key) as http:
        cases = [
            (
                http.get("/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:nothing-here"),
                404,
                "ResourceNotFound",
            ),
            (http.get("/ngsi-ld/v1/entities/not-a-urn"), 400, "BadRequestData"),
            (
                http.get("/ngsi-ld/v1/entities", params={"type": "WaterLevelGauge", "q": "(a>1)"}),
                400,
                "TooComplexQuery",
            ),
            (
                http.get(
                    "/ngsi-ld/v1/entities",
                    params={
                        "type": "X",
                        "georel": "overlaps",
                        "geometry": "Point",
                        "coordinates": "[1,2]",
                    },
                ),
                400,
                "OperationNotSupported",
            ),
            (http.get("/ngsi-ld/v1/entities"), 400, "BadRequestData"),
            (
                http.post(
                    "/ngsi-ld/v1/entities",
                    content=b"{",
                    headers={"Content-Type": "application/json"},
                ),
                400,
                "InvalidRequest",
            ),
            (
                http.post(
                    "/ngsi-ld/v1/entities", content=b"{}", headers={"Content-Type": "text/plain"}
                ),
                415,
                "InvalidRequest",
            ),
            (
                http.post(
                    "/ngsi-ld/v1/entities",
                    json={"id": "urn:ngsi-ld:NoSuchModel:x", "type": "NoSuchModel"},
                ),
                400,
                "BadRequestData",
            ),
        ]
        dup = {"id": "urn:ngsi-ld:WaterLevelGauge:dup-1", "type": "WaterLevelGauge"}
        assert http.post("/ngsi-ld/v1/entities", json=dup).status_code == 201
        cases.append((http.post("/ngsi-ld/v1/entities", json=dup), 409, "AlreadyExists"))
        # Another village's entity is not found, whether asked for by header or not.
        other = http.get(
            "/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:dup-1",
            headers={"NGSILD-Tenant": "sh-jiading-anting-xiangyang"},
        )
        cases.append((other, 404, "ResourceNotFound"))
        # An id names its type: another type's id finds nothing and deletes nothing, and
        # an id of more than four parts is not read as its last part.
        wrong_type = "/ngsi-ld/v1/entities/urn:ngsi-ld:SmokeDetector:dup-1"
        cases.append((http.get(wrong_type), 404, "ResourceNotFound"))
        cases.append((http.delete(wrong_type), 404, "ResourceNotFound"))
        extra = "/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:other:dup-1"
        cases.append((http.delete(extra), 400, "BadRequestData"))
        mixed = {"id": "urn:ngsi-ld:SmokeDetector:mixed-1", "type": "WaterLevelGauge"}
        cases.append((http.post("/ngsi-ld/v1/entities", json=mixed), 400, "BadRequestData"))
        still = http.get("/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:dup-1")
        assert still.status_code == 200, still.text
        for answer, status, kind in cases:
            assert answer.status_code == status, (answer.request.url, answer.text)
            body = answer.json()
            assert body["type"] == ERRORS + kind, body
            assert body["title"] and "detail" in body
    # The neighbouring village's own key cannot see Xingming's entity at all.
    with _client(stack, demo.app_keys[XIANGYANG]) as neighbour:
        answer = neighbour.get("/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:dup-1")
        assert answer.status_code in (403, 404) and answer.json()["type"].startswith(ERRORS)
    unauthenticated = httpx.get(
        f"{stack.config.gateway_url}/ngsi-ld/v1/entities?type=X", timeout=10
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["type"].startswith(ERRORS)


def test_entity_stream_over_sse(stack: Stack, operator_key: str) -> None:
    base = "/v1/tenants/sh-jiading-anting-xingming"
    with _client(stack, operator_key) as http:
        created = http.post(
            "/ngsi-ld/v1/entities",
            json={"id": "urn:ngsi-ld:WaterLevelGauge:sse-1", "type": "WaterLevelGauge"},
        )
        assert created.status_code == 201
        events: list[tuple[str, str, dict]] = []
        opened = threading.Event()

        def listen() -> None:
            with (
                httpx.Client(
                    base_url=stack.config.gateway_url,
                    headers={"X-API-Key": operator_key},
                    timeout=30,
                ) as sse,
                sse.stream("GET", f"{base}/entities:stream", params={"entity": "sse-1"}) as answer,
            ):
                assert answer.status_code == 200
                ident = kind = ""
                for line in answer.iter_lines():
                    if line.startswith(": connected"):
                        opened.set()
                    elif line.startswith("id: "):
                        ident = line[4:]
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.append((ident, kind, json.loads(line[6:])))
                        if len(events) == 3:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert opened.wait(20)
        for value in (1, 2, 3):
            answer = http.patch(
                "/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:sse-1/attrs",
                json={"level_cm": value},
            )
            assert answer.status_code == 204, answer.text
        listener.join(30)
        assert [e[2]["properties"]["level_cm"]["value"] for e in events] == [1, 2, 3]
        sequences = [e[2]["sequence"] for e in events]
        assert sequences == list(range(sequences[0], sequences[0] + 3))
        # Resuming after the first change gives the other two again, in order.
        resumed: list[dict] = []
        with http.stream(
            "GET",
            f"{base}/entities:stream",
            params={"entity": "sse-1"},
            headers={"Last-Event-ID": events[0][0]},
        ) as answer:
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    resumed.append(json.loads(line[6:]))
                    if len(resumed) == 2:
                        break
        assert [r["sequence"] for r in resumed] == sequences[1:]
        bad = http.get(f"{base}/entities:stream", headers={"Last-Event-ID": "nonsense"})
        assert bad.status_code == 400
        time.sleep(0)

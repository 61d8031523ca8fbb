"""A district publishes a register and a village receives only its masked slice, over
real HTTP and real gRPC: the gateway's routers, the empower service as `python -m`
builds it, the map service's buildings as the address list, and the gateway's own
/metrics and OpenAPI served by uvicorn on a loopback port for the catalog to read."""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from openpyxl import Workbook

from devstack.stack import free_port
from gateway.auth import Guard
from gateway.errors import install_handlers
from gateway.routers import catalog, datasets, health
from gateway.security.authenticator import Caller
from gateway.security.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from services.empower.config import EmpowerSettings
from services.empower.wiring import build
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.principal import Principal
from tests.conftest import create_tenants, serve_in_process
from tests.unit.empower.datasets.conftest import HEADER, id_number

DISTRICT_ID, VILLAGE_ID, OTHER_ID = (
    "sh-jiading",
    "sh-jiading-anting-xingming",
    "sh-jiading-anting-xiangyang",
)
PUBLISH = frozenset({"datasets:publish", "datasets:read", "catalog:read"})
READ = frozenset({"datasets:read", "catalog:read", "scenarios:install"})
SCHEMA = {
    "dataset_id": "residents",
    "display_name": "Residents register",
    "classification": "internal",
    "key_field": "id_number",
    "area": "elderly care",
    "fields": [
        {"name": "id_number", "type": "id_number", "required": True},
        {"name": "name", "type": "person_name", "required": True},
        {"name": "phone", "type": "mobile"},
        {"name": "address", "type": "address", "required": True},
        {"name": "birth_date", "type": "date"},
        {"name": "lives_alone", "type": "boolean"},
        {"name": "household_size", "type": "integer"},
    ],
}
MANIFEST = """
id: elderly-care
display_name: Care for the elderly living alone
description: Daily check-ins, visits and alarms for older people who live alone.
version: 1.0.0
area: elderly care
components: [events, command, empower]
"""


def app_for(upstreams: Upstreams, who: Principal | None) -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    for module in (catalog, datasets, health):
        app.include_router(module.router)
    app.state.guard = Guard(
        authenticator=None,
        limiter=RateLimiter(None),
        user_requests_per_minute=6000,
        tenant_requests_per_minute=60000,
        anonymous_requests_per_minute=60,
        public_tenant="sh",
        fixed_caller=Caller(who, None) if who else None,
    )
    app.state.upstreams = upstreams
    # /metrics on the main port, as `make run` serves it.
    app.state.settings = GatewaySettings(**{f"{n}_address": "127.0.0.1:1" for n in NAMES})
    return app


@pytest.fixture
async def gateway(map_server, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """`client(tenant_path, scopes)`: a gateway client acting as that caller."""
    stack = AsyncExitStack()
    port = free_port()
    scenarios = tmp_path / "scenarios" / "elderly-care"
    scenarios.mkdir(parents=True)
    (scenarios / "manifest.yaml").write_text(MANIFEST)
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        map_address=map_server.address,
        gateway_url=f"http://127.0.0.1:{port}",
        scenarios_dir=tmp_path / "scenarios",
    )
    component = await build(settings)
    empower = await serve_in_process("empower", component)
    # The tree the tests act in: installations are recorded only in nodes that exist.
    await create_tenants(empower.channel, "sh/jiading/anting/xingming")
    addresses = {name: empower.address for name in NAMES} | {"map": map_server.address}
    upstreams = Upstreams(StaticDiscovery(addresses), NAMES, timeout=30.0)
    # The gateway's public face for the catalog: /openapi.json and /metrics over HTTP.
    served = uvicorn.Server(
        uvicorn.Config(app_for(upstreams, None), host="127.0.0.1", port=port, log_level="error")
    )
    task = asyncio.create_task(served.serve())
    for _ in range(1000):  # uvicorn sets `started` once it listens
        if served.started:
            break
        await asyncio.sleep(0.02)
    assert served.started

    async def client(tenant: str, scopes: frozenset[str]) -> httpx.AsyncClient:
        who = Principal(f"users/{tenant.rsplit('/', 1)[-1]}", tenant, scopes=scopes)
        transport = httpx.ASGITransport(app=app_for(upstreams, who))
        return await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://gateway")
        )

    yield client
    await stack.aclose()
    served.should_exit = True
    await task
    await upstreams.close()
    await empower.channel.close()
    await empower.running.stop()
    await component.close()


def register(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def line(n: int, village: str, **changes: str) -> str:
    values = {
        "id_number": id_number(n),
        "name": f"Resident {n}",
        "phone": f"139{n:08d}",
        "address": f"{village} b{n}",
        "birth_date": "1952-03-14",
        "lives_alone": "yes",
        "household_size": "1",
    } | changes
    return ",".join(values[c] for c in HEADER.split(","))


async def publish(district: httpx.AsyncClient) -> str:
    created = await district.post(f"/v1/tenants/{DISTRICT_ID}/datasets", json=SCHEMA)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/v1/{created.json()['name']}"
    return str(created.json()["name"])


async def test_a_district_publishes_and_a_village_receives_only_its_masked_slice(gateway):
    district = await gateway("sh/jiading", PUBLISH)
    village = await gateway("sh/jiading/anting/xingming", READ)
    name = await publish(district)
    content = register(
        line(1, "xingming"),
        line(2, "xingming"),
        line(3, "xiangyang"),
        line(
            4, "xingming", id_number=id_number(4)[:17] + ("1" if id_number(4)[17] == "0" else "0")
        ),
        line(5, "nowhere"),
    )
    imported = await district.post(
        f"/v1/{name}:import",
        files={"file": ("register.csv", content, "text/csv")},
        data={"format": "csv"},
    )
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert (report["read_count"], report["inserted_count"], report["rejected_count"]) == (5, 3, 2)
    assert [(r["row_number"], r["field"]) for r in report["rejected_rows"]] == [
        (5, "id_number"),
        (6, "address"),
    ]
    subscribed = await village.post(
        f"/v1/tenants/{VILLAGE_ID}/subscriptions", json={"dataset": name}
    )
    assert subscribed.status_code == 201, subscribed.text
    sync = f"/v1/{subscribed.json()['name']}:sync"
    page = (await village.get(sync)).json()
    assert [r["tenant"] for r in page["rows"]] == ["sh/jiading/anting/xingming"] * 2
    assert all(r["masked"] for r in page["rows"])
    assert {r["values"]["phone"] for r in page["rows"]} == {"139****0001", "139****0002"}
    assert all(r["values"]["id_number"].startswith("310***********") for r in page["rows"])
    nothing_new = (await village.get(sync, params={"cursor": page["next_cursor"]})).json()
    assert nothing_new["rows"] == [] and nothing_new["next_cursor"] == page["next_cursor"]
    # With the sensitive scope and a purpose, the same slice in full (and audited).
    carer = await gateway("sh/jiading/anting/xingming", READ | {"people:read_sensitive"})
    full = await carer.get(sync, headers={"X-Purpose": "weekly%20visits"})
    assert {r["values"]["id_number"] for r in full.json()["rows"]} == {id_number(1), id_number(2)}
    # Another village cannot read it, and learns nothing: 404.
    other = await gateway("sh/jiading/anting/xiangyang", READ)
    stolen = await other.get(sync)
    assert stolen.status_code == 404, stolen.text
    assert (await other.get(sync.replace(VILLAGE_ID, OTHER_ID))).status_code == 404


async def test_bad_input_names_the_field(gateway):
    district = await gateway("sh/jiading", PUBLISH)
    village = await gateway("sh/jiading/anting/xingming", READ | {"datasets:publish"})
    bad = dict(SCHEMA, key_field="nope")
    refused = await district.post(f"/v1/tenants/{DISTRICT_ID}/datasets", json=bad)
    assert refused.status_code == 400
    assert refused.json()["error"]["field_violations"][0]["field"] == "dataset.key_field"
    refused = await district.post(
        f"/v1/tenants/{DISTRICT_ID}/datasets", json=dict(SCHEMA, classification="secret")
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["field_violations"][0]["field"] == "classification"
    name = await publish(district)
    book = Workbook()
    book.active.append(["id_number", "address"])
    book.active.append(["=1+1", "xingming b1"])
    out = io.BytesIO()
    book.save(out)
    refused = await district.post(
        f"/v1/{name}:import",
        files={"file": ("register.xlsx", out.getvalue(), "application/octet-stream")},
        data={"format": "xlsx"},
    )
    assert refused.status_code == 400
    violation = refused.json()["error"]["field_violations"][0]
    assert violation["field"] == "content" and "A2 holds a formula" in violation["description"]
    # A village publishes nothing: datasets belong to cities and districts.
    refused = await village.post(f"/v1/tenants/{VILLAGE_ID}/datasets", json=SCHEMA)
    assert refused.status_code == 400
    assert refused.json()["error"]["field_violations"][0]["field"] == "parent"
    # Without the scope: 403; a subscription to nothing: 404.
    reader = await gateway("sh/jiading", READ)
    assert (
        await reader.post(f"/v1/tenants/{DISTRICT_ID}/datasets", json=SCHEMA)
    ).status_code == 403
    missing = await village.post(
        f"/v1/tenants/{VILLAGE_ID}/subscriptions",
        json={"dataset": "tenants/sh-jiading/datasets/nothing"},
    )
    assert missing.status_code == 404
    cursor = await village.get(f"/v1/tenants/{VILLAGE_ID}/subscriptions/sub_x:sync?cursor=abc")
    assert cursor.status_code == 400


async def test_the_catalog_lists_components_scenarios_and_datasets_and_adoption(gateway):
    district = await gateway("sh/jiading", PUBLISH)
    village = await gateway("sh/jiading/anting/xingming", READ)
    name = await publish(district)
    components = (await village.get("/v1/catalogItems", params={"kind": "component"})).json()
    by_name = {i["display_name"]: i for i in components["catalog_items"]}
    assert set(by_name) == set(NAMES)
    map_item = by_name["map"]
    assert map_item["health"] == "SERVING"
    [map_service] = map_item["grpc_services"]
    assert map_service["name"] == "grassroots.map.v1.MapService"
    assert "LocatePoints" in map_service["methods"]
    assert by_name["twin"]["health"] == "NOT_CONFIGURED"
    assert "POST /v1/tenants/{tenant}/datasets" in by_name["empower"]["rest_routes"]
    assert by_name["empower"]["docs_uri"].endswith("/docs#/empower")
    found = (await village.get("/v1/catalogItems", params={"q": "elderly"})).json()
    kinds = sorted((i["kind"], i["name"]) for i in found["catalog_items"])
    assert kinds == [
        ("dataset", "catalogItems/dataset-sh-jiading-residents"),
        ("scenario", "catalogItems/scenario-elderly-care"),
    ]
    datasets_only = await village.get(
        "/v1/catalogItems", params={"kind": "dataset", "area": "elderly care"}
    )
    assert [i["resource"] for i in datasets_only.json()["catalog_items"]] == [name]
    elsewhere = await gateway("sh/baoshan", READ)
    assert (await elsewhere.get("/v1/catalogItems", params={"kind": "dataset"})).json()[
        "catalog_items"
    ] == []
    installed = await village.post(
        f"/v1/tenants/{VILLAGE_ID}/installations",
        json={"catalog_item": "catalogItems/scenario-elderly-care"},
    )
    assert installed.status_code == 201, installed.text
    assert installed.json()["state"] == "complete"  # a bare record, not the composer's
    assert (installed.json()["version"], installed.json()["resources"]) == ("", [])
    again = await village.post(
        f"/v1/tenants/{VILLAGE_ID}/installations",
        json={"catalog_item": "catalogItems/scenario-elderly-care"},
    )
    assert again.status_code == 409
    unknown = await village.post(
        f"/v1/tenants/{VILLAGE_ID}/installations", json={"catalog_item": "catalogItems/nope"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["field_violations"][0]["field"] == "catalog_item"
    await village.post(f"/v1/tenants/{VILLAGE_ID}/subscriptions", json={"dataset": name})
    adoption = await district.get(f"/v1/tenants/{DISTRICT_ID}/adoption")
    assert adoption.status_code == 200, adoption.text
    body = adoption.json()
    assert body["calls_available"] is True
    [node] = [n for n in body["nodes"] if n["tenant"] == "sh/jiading/anting/xingming"]
    assert node["datasets"] == [name]
    assert node["scenarios"] == ["catalogItems/scenario-elderly-care"]
    assert node["calls"]["empower"] >= 3
    # A village sees its own adoption, never its neighbour's or the district's.
    assert (await village.get(f"/v1/tenants/{DISTRICT_ID}/adoption")).status_code == 404

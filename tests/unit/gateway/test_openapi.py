"""The OpenAPI document tells the truth, and /docs works without the internet.

Errors are documented as the gateway answers them (400 in its own shape, never FastAPI's
422; 401, 403, 404, 409, 429 with examples), every parameter is described, the CRS
fields say GCJ-02 and BD-09 are accepted, filter fields and sort orders are the ones the
components implement, and operationIds read well in a generated client.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.docs import ASSETS
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from services.empower.domain import audit, people
from services.kit.principal import Principal

REPO = Path(__file__).resolve().parents[3]
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _app(**kwargs: Any):
    addresses = {
        f"{c}_address": "127.0.0.1:9" for c in ("map", "events", "command", "twin", "empower")
    }
    return create_app(GatewaySettings(**addresses), **kwargs)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return _app().openapi()


def _operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_no_operation_documents_fastapis_422(document):
    """422 is only a create's reused idempotency key, never a validation error."""
    assert "HTTPValidationError" not in document["components"]["schemas"]
    unprocessable = {
        (m, p): op["responses"]["422"]
        for p, m, op in _operations(document)
        if "422" in op["responses"]
    }
    assert ("post", "/v1/tenants/{tenant}/events") in unprocessable
    assert ("post", "/v1/tenants/{tenant}/people") in unprocessable
    for (method, path), answer in unprocessable.items():
        assert method == "post" and ":" not in path.rsplit("/", 1)[-1], path
        example = answer["content"]["application/json"]["example"]["error"]
        assert example["reason"] == "IDEMPOTENCY_KEY_REUSED", path


def test_errors_are_documented_in_the_platform_shape_with_examples(document):
    problems = []
    for path, method, op in _operations(document):
        expected = set()
        if op.get("parameters") or op.get("requestBody"):
            expected.add("400")
        if op.get("security"):
            expected |= {"401", "403", "429"}
        if "{" in path:
            expected.add("404")
        if method != "get" and path.startswith("/v1/tenants/"):
            expected.add("409")
        for code in sorted(expected):
            answer = op["responses"].get(code)
            if answer is None:
                problems.append(f"{method.upper()} {path}: no {code}")
                continue
            content = answer["content"]["application/json"]
            if path.startswith("/open311/"):
                assert content["schema"]["$ref"].endswith("/Open311Errors")
                continue
            if path.startswith("/v1/auth/") and code == "400":
                # RFC 6749 (5.2) and RFC 7009: OAuth's own error shape.
                assert content["schema"]["$ref"].endswith("/OAuthErrorOut"), (path, code)
                assert content["example"]["error"] == "invalid_grant", (path, code)
                continue
            assert content["schema"]["$ref"] == "#/components/schemas/Error", (path, code)
            assert content["example"]["error"]["code"] == int(code), (path, code)
    assert not problems, "\n".join(problems)
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert {"code", "status", "message", "field_violations", "request_id"} <= set(
        error["properties"]
    )
    limited = document["paths"]["/v1/tenants/{tenant}/events"]["get"]["responses"]["429"]
    assert "Retry-After" in limited["headers"]


async def test_bad_input_really_is_400_in_the_documented_shape():
    who = Principal(
        subject="users/test", tenant="sh/jiading/anting", scopes=frozenset({"events:write"})
    )
    app = _app(fixed_caller=Caller(who, None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/v1/tenants/sh-jiading-anting/events",
            json={
                "category": "environment.garbage",
                "description": "bins",
                "location": {"longitude": 121.16, "latitude": 91.0},
                "request_id": "r-1",
            },
        )
    assert response.status_code == 400
    body = response.json()["error"]
    assert set(body) <= set(
        app.openapi()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    )
    assert body["field_violations"][0]["field"] == "location.latitude"


def test_every_parameter_is_described(document):
    bare = [
        f"{method.upper()} {path} {p['in']} {p['name']}"
        for path, method, op in _operations(document)
        for p in op.get("parameters", [])
        if not p.get("description")
    ]
    assert not bare, "\n".join(bare)


def _crs_descriptions(document: dict[str, Any]):
    for path, method, op in _operations(document):
        if path.startswith("/ogc"):
            continue  # OGC API lists the CRS URIs it supports instead
        for p in op.get("parameters", []):
            if "crs" in p["name"]:
                yield f"{method} {path} {p['name']}", p["description"]
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if field.endswith("crs") and not name.endswith("Out") and "Response" not in name:
                yield f"{name}.{field}", prop.get("description", "")


def test_gcj02_and_bd09_are_listed_wherever_a_crs_is_accepted(document):
    found = dict(_crs_descriptions(document))
    assert len(found) >= 10, found
    assert {k: v for k, v in found.items() if "GCJ-02" not in v or "BD-09" not in v} == {}
    assert "GeoPointIn.crs" in found  # the location of every report


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in operation["parameters"] if p["name"] == name)


def test_filter_fields_and_sort_orders_are_the_implemented_ones(document):
    paths = document["paths"]
    people_filter = next(
        p
        for p in paths["/v1/tenants/{tenant}/people"]["get"]["parameters"]
        if p["name"] == "filter"
    )
    assert set(re.findall(r"\b[a-z_]+(?=[,:])", people_filter["description"])) >= set(
        people._FILTERABLE
    )
    audit_filter = next(
        p
        for p in paths["/v1/tenants/{tenant}/auditEntries"]["get"]["parameters"]
        if p["name"] == "filter"
    )
    for field in audit.FILTERABLE:
        assert f"{field} " in audit_filter["description"], field
    order = next(
        p for p in paths["/v1/tenants/{tenant}/events"]["get"]["parameters"] if p["name"] == "order"
    )
    assert order["schema"]["enum"] == ["newest", "oldest"]
    listed = {p["name"] for p in paths["/v1/tenants/{tenant}/events"]["get"]["parameters"]}
    assert {
        "grid_cell",
        "village",
        "category",
        "state",
        "created_from",
        "created_before",
        "q",
    } <= listed
    tasks = {p["name"] for p in paths["/v1/tenants/{tenant}/tasks"]["get"]["parameters"]}
    assert {"state", "sla_status", "created_from", "created_before", "order_by"} <= tasks


def test_operation_ids_are_unique_readable_names(document):
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]{1,40}", i) for i in ids), ids
    by_route = {(m, p): op["operationId"] for p, m, op in _operations(document)}
    assert by_route[("post", "/v1/tenants/{tenant}/events")] == "createEvent"
    assert by_route[("get", "/v1/tenants/{tenant}/events/{event}")] == "getEvent"
    assert by_route[("get", "/v1/tenants/{tenant}/layers")] == "listLayers"


async def test_docs_load_only_the_gateways_own_swagger_ui():
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
        assert "http" not in page.text.replace('lang="en"', "")
        for source in sources:
            asset = await client.get(source)
            assert asset.status_code == 200, source
            assert asset.content == (ASSETS / source.rsplit("/", 1)[-1]).read_bytes()
        init = (await client.get("/docs/assets/init.js")).text
        assert '"/openapi.json"' in init and "validatorUrl: null" in init
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp
        assert (await client.get("/redoc")).status_code == 404  # ReDoc would need a CDN
    bundle = (ASSETS / "swagger-ui-bundle.js").read_text()
    assert "SwaggerUIBundle" in bundle and len(bundle) > 1_000_000
    # The vendored copy is the version package.json pins (make swagger-ui refreshes it).
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]["swagger-ui-dist"]
    assert f'"{pinned}"' in bundle

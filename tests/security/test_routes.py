"""Every route authenticates, generated from the gateway's live OpenAPI.

A new route fails here until it is either protected by `gateway.auth.access` (it then
declares `security` and refuses every bad credential) or added to `PUBLIC` on
purpose. Routes hidden from the schema are found by walking the app's routes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import fastapi.routing
import httpx
import jsonschema_rs
import pytest
from route_requests import (
    BODIES,
    body_for,
    default_values,
    describe,
    fill,
    operations,
    send,
)
from security_world import (
    A,
    World,
    allow_anonymous_reports,
    anonymous_post,
    anonymous_receipt,
    api_key,
    bearer,
    passerby_post,
    photo_anonymously,
    report_anonymously,
    resolve_event,
)

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.kit.components import NAMES


def _login_then(world: World, then: Callable[[str], httpx.Response] | None) -> httpx.Response:
    account = world.demo.account("xingming.secretary")
    response = anonymous_post(
        world.client,
        "/v1/auth/token",
        {"grant_type": "password", "username": account.username, "password": account.password},
    )
    if response.status_code == 200:
        issued = response.json()
        world.remember(issued["access_token"], issued["refresh_token"])
        if then is not None:
            return then(issued["refresh_token"])
    return response


def _revoke(world: World) -> httpx.Response:
    def revoke(refresh_token: str) -> httpx.Response:
        revoked = anonymous_post(world.client, "/v1/auth/revoke", {"token": refresh_token})
        # Signed out: the refresh token no longer works.
        again = anonymous_post(
            world.client,
            "/v1/auth/token",
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
        )
        # RFC 6749: a revoked refresh token is invalid_grant, a 400.
        assert again.status_code == 400, again.text
        assert again.json()["error"] == "invalid_grant", again.text
        return revoked

    return _login_then(world, revoke)


def _get(path: str) -> Callable[[World], httpx.Response]:
    def call(world: World) -> httpx.Response:
        # Public pages share a per-address anonymous bucket with the sign-in routes.
        for _ in range(10):
            response = world.client.get(path)
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))
        return response

    return call


def _anonymous_report(world: World) -> httpx.Response:
    allow_anonymous_reports(world)
    return report_anonymously(world.client, world.a.point)


def _anonymous_photo(world: World) -> httpx.Response:
    allow_anonymous_reports(world)
    return photo_anonymously(world.client, world.a.point, secrets.token_urlsafe(24))


def _follow_receipt(world: World) -> httpx.Response:
    body = {"receipt": anonymous_receipt(world)}
    return passerby_post(world.client, f"/v1/tenants/{A}/events:followReceipt", body)


def _evaluate_receipt(world: World) -> httpx.Response:
    made = _anonymous_report(world)
    assert made.status_code == 200, made.text
    resolve_event(world, made.json()["event"]["id"])
    body = {"receipt": made.json()["receipt"], "score": 5, "text": "fixed"}
    return passerby_post(world.client, f"/v1/tenants/{A}/events:evaluateReceipt", body)


# The only operations anyone may call without credentials, and how the suite calls
# each one. Adding a route here is a decision that the route is public.
PUBLIC: dict[tuple[str, str], Callable[[World], httpx.Response]] = {
    ("GET", "/healthz"): _get("/healthz"),
    ("GET", "/readyz"): _get("/readyz"),
    ("GET", "/.well-known/jwks.json"): _get("/.well-known/jwks.json"),
    ("POST", "/v1/auth/token"): lambda w: _login_then(w, None),
    ("POST", "/v1/auth/revoke"): _revoke,
    ("GET", "/ogc"): _get("/ogc"),
    ("GET", "/ogc/conformance"): _get("/ogc/conformance"),
    # Reports without an account (ADR 35): only where the village allows them.
    ("POST", "/v1/tenants/{tenant}/events:reportAnonymously"): lambda w: _anonymous_report(w),
    ("POST", "/v1/tenants/{tenant}/events:attachAnonymously"): _anonymous_photo,
    ("POST", "/v1/tenants/{tenant}/events:followReceipt"): _follow_receipt,
    ("POST", "/v1/tenants/{tenant}/events:evaluateReceipt"): lambda w: _evaluate_receipt(w),
    # The villages' outlines, tenant and name only (ADR 40): where a report can be made.
    ("GET", "/v1/tenants/{tenant}/reportArea"): lambda w: _get(f"/v1/tenants/{A}/reportArea")(w),
}
# Public reads that also take credentials (Open311, as GeoReport v2 intends): without
# any they answer the anonymous reader; bad ones are 401 and a key without the scope
# is 403, as on protected routes. How the suite calls each one anonymously:
PUBLIC_OR_KEYED: dict[tuple[str, str], Callable[[World], httpx.Response]] = {
    ("GET", "/open311/v2/services.{fmt}"): _get("/open311/v2/services.json"),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): _get(
        "/open311/v2/services/environment.garbage.json"
    ),
    ("GET", "/open311/v2/requests.{fmt}"): _get("/open311/v2/requests.json"),
    # Village A's event is of a public category (environment.garbage).
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): lambda w: _get(
        f"/open311/v2/requests/{w.a.event_id}.json"
    )(w),
    ("GET", "/open311/v2/tokens/{token}.{fmt}"): lambda w: _get(
        f"/open311/v2/tokens/{w.a.event_id}.json"
    )(w),
}
# Routes the schema does not list (include_in_schema=False or FastAPI's own pages).
# The web pages' files (/web) are static; `/` and /web/config.json carry no data.
HIDDEN = {"/metrics", "/docs", "/docs/assets", "/openapi.json", "/", "/web/config.json", "/web"}
# Any signed-in caller may ask who they are and read their own notices (none, for a
# key: the answer is an empty list, and another's delivery is not found); every other
# protected route needs a scope.
NO_SCOPE_NEEDED = {
    ("GET", "/v1/me"): 200,
    ("GET", "/v1/me/notices"): 200,
    ("POST", "/v1/tenants/{tenant}/notices/{notice}/deliveries/{delivery}:markRead"): 404,
}


def _bad_credentials(world: World) -> dict[str, dict[str, str]]:
    well_formed_unknown = f"grk_{secrets.token_hex(13)}_{secrets.token_urlsafe(32)}"
    return {
        "no credentials": {},
        "expired token": bearer(world.bad.expired),
        "forged token (real kid, other key)": bearer(world.bad.forged),
        "alg none token": bearer(world.bad.alg_none),
        "HS256 token keyed with the public key": bearer(world.bad.alg_confusion),
        "real key, another audience": bearer(world.bad.wrong_audience),
        "garbage bearer": bearer("not-a-token"),
        "garbage API key": api_key("grk_garbage_garbage"),
        "unknown API key": api_key(well_formed_unknown),
        "unknown API key as bearer": bearer(well_formed_unknown),
        "revoked API key": api_key(world.revoked.key),
        "API key with a wrong secret": api_key(f"{world.scopeless.key[:31]}{'A' * 43}"),
    }


def _protected(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for m, p, op in operations(spec) if (m, p) not in PUBLIC]


def _request(world: World, method: str, path: str) -> tuple[str, dict[str, Any]]:
    return fill(path, default_values(world, path)), body_for(world, method, path)


def test_the_allowlist_is_the_schemas_only_unsecured_operations(openapi):
    listed = {(m, p) for m, p, _ in operations(openapi)}
    assert set(PUBLIC) <= listed, f"stale PUBLIC entries: {sorted(set(PUBLIC) - listed)}"
    assert set(PUBLIC_OR_KEYED) <= listed, sorted(set(PUBLIC_OR_KEYED) - listed)
    problems = []
    for method, path, operation in operations(openapi):
        declared = bool(operation.get("security"))
        if (method, path) in PUBLIC and declared:
            problems.append(f"{method} {path} is public but declares security")
        if (method, path) not in PUBLIC and not declared:
            problems.append(
                f"{method} {path} declares no security: protect it with gateway.auth.access "
                "or add it to PUBLIC in tests/security/test_routes.py"
            )
    assert not problems, "\n".join(problems)


def test_public_operations_answer_without_credentials(world, openapi):
    problems = []
    for (method, path), call in (PUBLIC | PUBLIC_OR_KEYED).items():
        response = call(world)
        if response.status_code not in (200, 201):
            problems.append(describe(method, path, response))
    for path in sorted(HIDDEN - {"/docs/assets", "/web"}):
        response = world.client.get(path)
        if response.status_code != 200:
            problems.append(describe("GET", path, response))
    assert not problems, "\n".join(problems)


def test_every_protected_operation_refuses_every_bad_credential(world, openapi):
    credentials = _bad_credentials(world)
    problems, checked = [], 0
    for method, path, _ in _protected(openapi):
        url, body = _request(world, method, path)
        for what, headers in credentials.items():
            if not headers and (method, path) in PUBLIC_OR_KEYED:
                continue  # the anonymous reader: test_public_operations_answer_...
            response = send(world.client, method, url, headers, **body)
            checked += 1
            if response.status_code != 401:
                problems.append(f"[{what}] {describe(method, url, response)}")
            elif "www-authenticate" not in response.headers:
                problems.append(f"[{what}] {method} {url}: 401 without WWW-Authenticate")
    assert not problems, "\n".join(problems)
    assert checked >= 50 * len(credentials)


def test_a_key_without_the_routes_scope_is_forbidden_everywhere(world, openapi):
    problems = []
    for method, path, _ in _protected(openapi):
        url, body = _request(world, method, path)
        response = send(world.client, method, url, world.scopeless.headers, **body)
        expected = NO_SCOPE_NEEDED.get((method, path), 403)
        if response.status_code != expected:
            problems.append(f"expected {expected}: {describe(method, url, response)}")
    assert not problems, "\n".join(problems)


def test_the_minted_tokens_differ_from_a_valid_one_only_where_intended(world):
    # Minted like the expired token but unexpired: accepted, so the expired one's 401
    # is for its expiry and not for a minting mistake.
    response = world.client.get("/v1/me", headers=bearer(world.bad.control))
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == world.a_super.subject
    expired = world.client.get("/v1/me", headers=bearer(world.bad.expired))
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_authentication_answers_before_body_and_parameter_validation(world):
    """FastAPI runs the route's dependencies before it reports validation errors, so a
    caller without credentials learns nothing about the shape a route expects. Only a
    body that is not JSON at all is refused first (it is parsed before dependencies),
    which reveals nothing about the route."""
    invalid = {"json": {"category": 7, "unexpected": True}}
    assert world.client.post(f"/v1/tenants/{A}/events", **invalid).status_code == 401
    assert (
        world.client.post(
            f"/v1/tenants/{A}/events", headers=world.scopeless.headers, **invalid
        ).status_code
        == 403
    )
    assert world.client.get("/v1/tenants/NOT~A~TENANT").status_code == 401
    assert (
        world.client.get("/v1/tenants/NOT~A~TENANT", headers=world.scopeless.headers).status_code
        == 403
    )
    not_json = world.client.post(
        f"/v1/tenants/{A}/events",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["field_violations"] == [
        {"field": "body", "description": "is not valid JSON"}
    ]


def test_every_request_body_in_the_table_validates_against_the_schema(world, openapi):
    components = openapi.get("components", {})
    problems = []
    for method, path, operation in operations(openapi):
        content = operation.get("requestBody", {}).get("content", {})
        if not content:
            continue
        if (method, path) not in BODIES:
            problems.append(f"{method} {path}: add a valid body to BODIES in route_requests.py")
            continue
        body = body_for(world, method, path)
        if "json" in body:
            media_type, payload = "application/json", body["json"]
        elif "files" in body:
            # A file part is a binary string in the schema: any string stands for it.
            media_type = "multipart/form-data"
            payload = {**body.get("data", {}), **{name: "<file>" for name in body["files"]}}
        else:
            media_type, payload = "application/x-www-form-urlencoded", body.get("data", {})
        if media_type not in content:
            problems.append(f"{method} {path}: the schema takes {list(content)}, not {media_type}")
            continue
        schema = {**content[media_type]["schema"], "components": components}
        errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(payload)]
        if errors:
            problems.append(f"{method} {path}: {errors[:3]}")
    assert not problems, "\n".join(problems)


def _in_process_app():
    # Nothing listens there: the routes are only walked, never called.
    addresses = {f"{name}_address": "127.0.0.1:9" for name in NAMES}
    return create_app(GatewaySettings(**addresses))  # type: ignore[arg-type]


def _every_route(app: Any) -> list[Any]:
    """Every route of the app, through included routers (FastAPI >= 0.16x nests them)."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(walk(app.routes)) if walk is not None else list(app.routes)


def test_routes_hidden_from_the_schema_are_known(openapi):
    hidden, listed = set(), set()
    for route in _every_route(_in_process_app()):
        path = getattr(route, "path", None)
        assert path, f"a route without a path: {route!r}"
        if getattr(route, "include_in_schema", False):
            listed.update((method, path) for method in route.methods)
        else:
            hidden.add(path)
    assert hidden <= HIDDEN, f"routes outside the schema that nobody vetted: {hidden - HIDDEN}"
    assert "/metrics" in hidden
    live = {(m, p) for m, p, _ in operations(openapi)}
    assert listed == live, f"the live schema and the app differ on {sorted(listed ^ live)}"


@pytest.mark.parametrize("path", sorted(HIDDEN - {"/docs/assets", "/web"}))
def test_hidden_routes_carry_no_private_data(world, path):
    body = world.client.get(path).text
    assert not [s for s in world.secrets if s in body]

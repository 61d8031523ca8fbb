"""Every REST path of the OpenAPI document is a resource name under `/v1/` (ADR 9).

`tenants/{tenant}/events/{event}` answers at `/v1/tenants/{tenant}/events/{event}`:
collections are lowerCamelCase plurals, each followed by the singular id parameter,
custom methods end in `:verb`. OGC API - Features and Open311 keep their standard paths,
and the few endpoints another standard names are listed below with the reason.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings

STANDARD_PREFIXES = ("/ogc", "/open311/v2/", "/ngsi-ld/v1/")
NOT_RESOURCES = {
    "/healthz": "liveness probe",
    "/readyz": "readiness probe",
    "/.well-known/jwks.json": "RFC 8615 well-known location of the token keys",
    "/v1/auth/token": "OAuth 2.0 token endpoint (RFC 6749)",
    "/v1/auth/revoke": "OAuth 2.0 revocation endpoint (RFC 7009)",
    "/v1/me": "the caller, not a stored resource",
    "/v1/me:changePassword": "the caller's own password (a custom method on /v1/me)",
    "/v1/me/notices": "the caller's own in-app notices, from whichever tenants sent them",
}
# Collections that do not belong to a tenant: the catalog is the city's, coordinates
# are stateless arithmetic.
TENANTLESS = {"catalogItems", "coordinates"}
# A tenant's children are tenants; each answers at its own `/v1/tenants/{tenant}`.
ID_LESS = {"children"}
IRREGULAR = {"people": "person"}

COLLECTION = re.compile(r"^[a-z][a-zA-Z0-9]*$")
VERB = re.compile(r"^[a-z][a-zA-Z0-9]*$")
PARAMETER = re.compile(r"^\{([a-z][a-z0-9_]*)\}$")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def singular(collection: str) -> str:
    """`events` -> `event`, `apiKeys` -> `api_key`, `auditEntries` -> `audit_entry`."""
    if collection in IRREGULAR:
        return IRREGULAR[collection]
    snake = _snake(collection)
    if snake.endswith("ies"):
        return snake[:-3] + "y"
    return snake.removesuffix("s")


def problems_of(path: str) -> list[str]:
    """What breaks the rule in one path; empty when it follows it."""
    if path in NOT_RESOURCES or path.startswith(STANDARD_PREFIXES) or path == "/ogc":
        return []
    if not path.startswith("/v1/"):
        return ["does not start with /v1/"]
    body, _, verb = path.removeprefix("/v1/").partition(":")
    segments = body.split("/")
    found = []
    if verb and not VERB.match(verb):
        found.append(f"custom method {verb!r} is not lowerCamelCase")
    if segments[0] != "tenants" and segments[0] not in TENANTLESS:
        found.append("does not start with tenants/{tenant}")
    if segments[0] == "tenants" and (len(segments) < 2 or segments[1] != "{tenant}"):
        found.append("the tenant collection is not followed by {tenant}")
    for i in range(0, len(segments), 2):
        collection = segments[i]
        if not COLLECTION.match(collection):
            found.append(f"{collection!r} is not a lowerCamelCase collection")
            continue
        if i + 1 < len(segments):
            match = PARAMETER.match(segments[i + 1])
            if collection in ID_LESS or not match:
                found.append(f"{segments[i + 1]!r} after {collection!r} is not its id parameter")
            elif match.group(1) != singular(collection):
                found.append(f"{{{match.group(1)}}} should be {{{singular(collection)}}}")
    return found


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    addresses = {
        f"{c}_address": "127.0.0.1:9" for c in ("map", "events", "command", "twin", "empower")
    }
    return create_app(GatewaySettings(**addresses)).openapi()


def test_every_route_of_the_openapi_document_follows_the_resource_name_rule(openapi):
    broken = {p: problems_of(p) for p in openapi["paths"] if problems_of(p)}
    assert not broken, "paths that break ADR 9:\n" + "\n".join(
        f"{p}: {'; '.join(why)}" for p, why in broken.items()
    )


def test_the_components_answer_at_their_resource_names(openapi):
    paths = set(openapi["paths"])
    assert {
        "/v1/tenants/{tenant}/events",
        "/v1/tenants/{tenant}/events/{event}",
        "/v1/tenants/{tenant}/layers/{layer}/features/{feature}",
        "/v1/tenants/{tenant}/people/{person}",
        "/v1/tenants/{tenant}/apps/{app}/apiKeys/{api_key}",
    } <= paths
    assert not [p for p in paths if p.startswith(("/v1/events", "/v1/map/", "/v1/event-"))]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/v1/events/{event_id}", "does not start with tenants/{tenant}"),
        ("/v1/map/tenants/{tenant}/layers", "does not start with tenants/{tenant}"),
        ("/v1/tenants/{tenant}/events/{event_id}", "{event_id} should be {event}"),
        ("/v1/tenants/{tenant}/event-categories", "is not a lowerCamelCase collection"),
        ("/v1/tenants/{tenant}/apps/{app}/keys/{api_key}", "should be {key}"),
        ("/v1/tenants/{tenant}/events:Stream", "is not lowerCamelCase"),
        ("/v2/tenants/{tenant}/events", "does not start with /v1/"),
    ],
)
def test_the_rule_refuses_the_old_shapes(path, problem):
    assert any(problem in p for p in problems_of(path)), problems_of(path)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tenants/{tenant}/auditEntries:verify",
        "/v1/tenants/{tenant}/apps/{app}/apiKeys/{api_key}",
        "/v1/tenants/{tenant}:locatePoints",
        "/v1/coordinates:transform",
        "/ogc/collections/{collection_id}/items/{item_id}",
        "/open311/v2/requests/{service_request_id}.{fmt}",
    ],
)
def test_the_rule_accepts_resource_names_and_standard_paths(path):
    assert problems_of(path) == []


def test_no_parameter_names_a_subtree_scope(openapi):
    """A subtree is the tenant in the path (ADR 9); `scope` means an OAuth scope only."""
    named_scope = [
        f"{method.upper()} {path}"
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "scope" and parameter["in"] != "header"
    ]
    assert not named_scope, named_scope

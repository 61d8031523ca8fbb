"""The OpenAPI document as the gateway really answers.

FastAPI documents a 422 `HTTPValidationError` for every route; the gateway answers bad
input with 400 in its own error shape (ADR 3), 422 only for a reused idempotency key,
and 401, 403, 404, 409, 429 and 503 as the README describes them. This module rewrites
the generated document so a generated client reads the truth: those responses with
examples, a description for every parameter (shared names described once, here), and
operationIds taken from the handler names (`listEvents`, not
`list_events_v1_tenants__tenant__events_get`).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from gateway.schemas.common import CRS_DESCRIPTION, FILTER_FIELDS_DESCRIPTION

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "status", "message"],
            "properties": {
                "code": {"type": "integer", "description": "the HTTP status"},
                "status": {"type": "string", "description": "the canonical gRPC status name"},
                "message": {"type": "string"},
                "reason": {"type": "string", "description": "a stable machine-readable cause"},
                "field_violations": {
                    "type": "array",
                    "description": "for 400: each wrong field and why",
                    "items": {
                        "type": "object",
                        "required": ["field", "description"],
                        "properties": {
                            "field": {"type": "string"},
                            "description": {"type": "string"},
                        },
                    },
                },
                "request_id": {"type": "string", "description": "X-Request-ID of the call"},
            },
        }
    },
}
OPEN311_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    },
}


def _example(code: int, status: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message, **extra}}


_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}
ERRORS: dict[int, tuple[str, dict[str, Any], dict[str, Any]]] = {
    400: (
        "Bad input: each wrong field is named (never FastAPI's 422)",
        _example(
            400,
            "INVALID_ARGUMENT",
            "location.latitude: Input should be less than or equal to 90",
            field_violations=[
                {
                    "field": "location.latitude",
                    "description": "Input should be less than or equal to 90",
                }
            ],
            request_id="7f3a0c1e9b2d4e5f",
        ),
        {},
    ),
    401: (
        "No credentials, or an expired, forged or revoked token or key",
        _example(
            401, "UNAUTHENTICATED", "send an access token (Authorization: Bearer) or an API key"
        ),
        {
            "WWW-Authenticate": {
                "schema": {"type": "string"},
                "description": 'Bearer realm="grassroots"',
            }
        },
    ),
    403: (
        "The token or key lacks the scope this operation needs",
        _example(
            403,
            "PERMISSION_DENIED",
            "this call needs the 'events:write' scope",
            reason="MISSING_SCOPE",
        ),
        {},
    ),
    404: (
        "Not found, or outside your tenant subtree (never 403: existence is not confirmed)",
        _example(404, "NOT_FOUND", "event 'ev_01kb' not found"),
        {},
    ),
    409: (
        "Already exists, a stale etag, or an Idempotency-Key whose first request still runs",
        _example(
            409,
            "ABORTED",
            "the event changed since you read it; read it again and retry",
            reason="ETAG_MISMATCH",
        ),
        {},
    ),
    429: (
        "Over your app's or your tenant's rate limit",
        _example(
            429,
            "RESOURCE_EXHAUSTED",
            "rate limit reached for apps/app_01 or its tenant; retry later",
            reason="RATE_LIMITED",
        ),
        _RETRY_AFTER,
    ),
    422: (
        "The Idempotency-Key (or a create's request_id) was already used with another body",
        _example(
            422,
            "FAILED_PRECONDITION",
            "Idempotency-Key was already used for a different request body",
            reason="IDEMPOTENCY_KEY_REUSED",
        ),
        {},
    ),
    503: (
        "A component needed for this request is unavailable; retry",
        _example(
            503, "UNAVAILABLE", "a component needed for this request is unavailable; retry shortly"
        ),
        _RETRY_AFTER,
    ),
}

PAGE = "from next_page_token of the previous page; empty for the first page"
# Parameters shared by many routes, described once. A route's own description wins.
PARAMETERS: dict[str, str] = {
    "page_size": "how many items per page (the maximum is in the schema)",
    "page_token": PAGE,
    "event": "event id, e.g. ev_01kb...",
    "attachment": "attachment id, e.g. at_01kb... (the last segment of its name)",
    "layer": "layer id, e.g. buildings",
    "feature": "feature id within the layer",
    "user": "user id",
    "app": "app id",
    "api_key": "API key id (not the secret)",
    "person": "person id",
    "collection_id": "OGC collection id: {tenant id}.{layer id}",
    "item_id": "feature id within the collection",
    "service_code": "Open311 service code: an event category code",
    "service_request_id": "Open311 service request id: the event id",
    "token": "Open311 token: the event id (requests are created synchronously)",
    "fmt": "json or xml",
    "last-event-id": "resume a server-sent event stream after this offset",
    "limit": "OGC API: how many features per page",
    "offset": "OGC API: how many features to skip",
    "bbox": "minimum longitude, minimum latitude, maximum longitude, maximum latitude",
    "category": "an event category code, e.g. environment.garbage",
    "grid_cell": "a grid cell id, e.g. xingming-g07",
    "state": "a lifecycle state",
    "format": "geojson, gpkg, shapefile (zipped) or csv",
    "crs": "the CRS of the answer: " + CRS_DESCRIPTION,
    "bbox_crs": "the CRS of bbox: " + CRS_DESCRIPTION,
    "filter": FILTER_FIELDS_DESCRIPTION,
    "created_from": "RFC 3339 time, inclusive",
    "created_before": "RFC 3339 time, exclusive",
    "order": "by creation time: newest (the default) or oldest first",
}


def operation_id(route: APIRoute) -> str:
    """`list_events` -> `listEvents`: what a generated client calls the method."""
    head, *rest = route.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _add(responses: dict[str, Any], code: int, schema_ref: str) -> None:
    """Document an error answer; a route's own description of it is kept."""
    description, example, headers = ERRORS[code]
    answer = responses.setdefault(str(code), {"description": description})
    content = {"application/json": {"schema": {"$ref": schema_ref}, "example": example}}
    answer.setdefault("content", content)
    if headers:
        answer.setdefault("headers", deepcopy(headers))


def _describe(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if not parameter.get("description"):
            described = parameter.get("schema", {}).get("description") or PARAMETERS.get(
                parameter["name"], ""
            )
            if described:
                parameter["description"] = described


def truthful(document: dict[str, Any]) -> dict[str, Any]:
    """The generated document with the gateway's real error answers and described parameters."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    schemas["Open311Errors"] = OPEN311_ERRORS_SCHEMA
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's validation answer; the gateway's is 400
            _describe(operation)
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            if path.startswith("/open311/"):
                for code in (400, 401, 403, 404, 429):
                    _add(responses, code, "#/components/schemas/Open311Errors")
                    responses[str(code)]["content"]["application/json"].pop("example")
                continue
            ref = "#/components/schemas/Error"
            if takes_input:
                _add(responses, 400, ref)
            if operation.get("security"):
                for code in (401, 403, 429):
                    _add(responses, code, ref)
            if "{" in path:
                _add(responses, 404, ref)
            if method in ("post", "patch", "delete") and path.startswith("/v1/tenants/"):
                _add(responses, 409, ref)
            if method == "post" and ":" not in path.rsplit("/", 1)[-1] and path.startswith("/v1/t"):
                _add(responses, 422, ref)  # a create: its idempotency key was reused
            if path.startswith(("/v1/", "/ogc")) and operation.get("security"):
                _add(responses, 503, ref)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the rewritten document at /openapi.json (built once, on first request)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = truthful(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]

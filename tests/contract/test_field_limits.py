"""Field limits are declared once, in the contract, and the gateway says the same (ADR 22).

Every bound of a request body in the OpenAPI document either comes from the
`(grassroots.type.v1.limits)` option of the proto field it names in `x-contract`,
with exactly the contract's numbers, or is listed below as the gateway's own with
the reason. The services enforce the same option before any handler runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pool

from gateway.app import create_app
from gateway.schemas.contract import CONTRACT_KEY
from gateway.settings import GatewaySettings
from services.kit import limits
from services.kit.components import NAMES

BOUND_KEYWORDS = {
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "maxItems",
    "minItems",
}
# Bounds of JSON that stands for no proto field of its own, each with its reason.
GATEWAY_ONLY = {
    # The REST form of a point: GeoPoint's coordinates are numbers in any CRS, the
    # JSON body takes degrees.
    "GeoPointIn.longitude": "degrees in the REST body",
    "GeoPointIn.latitude": "degrees in the REST body",
    "Body_attachAnonymously.longitude": "degrees in the REST form",
    "Body_attachAnonymously.latitude": "degrees in the REST form",
    # The REST body names an event by id; the contract's field is the resource name
    # the gateway builds from it.
    "TransitionIn.duplicate_of": "an event id, not the contract's resource name",
    # The password policy (10 to 256 characters, not the username) is the identity
    # domain's; the gateway only stops an oversized body before it is parsed further.
    "UserCreate.password": "size guard; the policy is the domain's",
    "PasswordReset.password": "size guard; the policy is the domain's",
    "PasswordChange.current_password": "size guard; a password is the domain's",
    "PasswordChange.new_password": "size guard; the policy is the domain's",
    # REST batches of points are smaller than gRPC's (a JSON body of 100,000 points is
    # slow to parse); both arrays must have a point.
    "LocateRequest.longitudes": "REST batch size",
    "LocateRequest.latitudes": "REST batch size",
    "TransformRequest.longitudes": "REST batch size",
    "TransformRequest.latitudes": "REST batch size",
    # Command's SLAs are Durations in the contract; the REST body takes whole seconds,
    # bounded so they fit a Duration (the domain says what an SLA may be).
    "RoutingRuleIn.response_sla_seconds": "seconds standing for a Duration",
    "RoutingRuleIn.resolution_sla_seconds": "seconds standing for a Duration",
    "RoutingRuleIn.offer_timeout_seconds": "seconds standing for a Duration",
    # REST batches of readings are smaller than gRPC's (10,000, as the README says).
    "TelemetryIn.entities": "REST batch size",
    "TelemetryIn.properties": "REST batch size",
    "TelemetryIn.values": "REST batch size",
    "TelemetryIn.observe_times_ms": "REST batch size",
    "TelemetryIn.units": "REST batch size",
    "TelemetryIn.longitudes": "REST batch size",
    "TelemetryIn.latitudes": "REST batch size",
    # A twin rule's durations are Durations in the contract; the REST body takes whole
    # seconds, at most a year.
    "ThresholdIn.min_duration_seconds": "seconds standing for a Duration",
    "InactivityIn.silence_seconds": "seconds standing for a Duration",
    "GeofenceIn.dwell_seconds": "seconds standing for a Duration",
    # A scenario template's id is no proto field: the manifest schema bounds it.
    "ScenarioIn.scenario": "the manifest schema's id",
    # A plan's digest is the composer's (it runs in the gateway), not a contract field.
    "ScenarioIn.plan_digest": "the composer's plan digest",
    "ScenarioUninstallIn.plan_digest": "the composer's plan digest",
    "ScenarioUninstallIn.scenario": "the manifest schema's id",
    # Paging: page sizes are clamped by the kit's paging helper, tokens are signed.
    "SearchRequest.page_size": "paging",
    "SearchRequest.page_token": "paging",
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    addresses = {f"{name}_address": "127.0.0.1:9" for name in NAMES}
    return create_app(GatewaySettings(**addresses)).openapi()


def _contract_bounds(name: str) -> dict[str, Any]:
    """The JSON Schema bounds the contract's limits of `pkg.Message.field` stand for."""
    is_item = name.endswith("[]")
    message_name, _, field = name.removesuffix("[]").rpartition(".")
    message = descriptor_pool.Default().FindMessageTypeByName(message_name)
    found = limits.of(message, field)
    if found.max_items and not is_item:
        return {"maxItems": found.max_items}
    bounds: dict[str, Any] = {}
    if found.min_length:
        bounds["minLength"] = found.min_length
    if found.max_length:
        bounds["maxLength"] = found.max_length
    if found.pattern:
        bounds["pattern"] = f"^(?:{found.pattern})$"
    if found.minimum is not None:
        bounds["minimum"] = found.minimum
    if found.maximum is not None:
        bounds["maximum"] = found.maximum
    return bounds


def _declared_bounds(schema: dict[str, Any]) -> dict[str, Any]:
    """The bounds a property schema states, looking through `anyOf: [T, null]`."""
    bounds = {k: v for k, v in schema.items() if k in BOUND_KEYWORDS}
    for option in schema.get("anyOf", []):
        bounds |= {k: v for k, v in option.items() if k in BOUND_KEYWORDS}
    return bounds


def _properties(openapi: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property of every schema, items of arrays included, as `Schema.field`."""
    found = []
    for schema_name, schema in openapi["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            label = f"{schema_name}.{field}"
            found.append((label, prop))
            for option in [prop, *prop.get("anyOf", [])]:
                if isinstance(option.get("items"), dict) and "$ref" not in option["items"]:
                    found.append((label + "[]", option["items"]))
    return found


def test_every_bound_of_the_document_is_the_contracts(openapi):
    differ, undeclared = [], []
    for label, prop in _properties(openapi):
        bounds = _declared_bounds(prop)
        if CONTRACT_KEY in prop:
            expected = _contract_bounds(prop[CONTRACT_KEY])
            if bounds != expected:
                differ.append(f"{label}: gateway {bounds}, contract {expected}")
        elif bounds and label not in GATEWAY_ONLY:
            undeclared.append(f"{label}: {bounds}")
    assert not differ, "gateway and contract limits differ:\n" + "\n".join(differ)
    assert not undeclared, (
        "declare these limits in the proto with (grassroots.type.v1.limits) and use "
        "gateway.schemas.contract.limited:\n" + "\n".join(undeclared)
    )


def test_the_document_names_contract_fields_that_exist(openapi):
    named = [prop[CONTRACT_KEY] for _, prop in _properties(openapi) if CONTRACT_KEY in prop]
    assert len(named) >= 20
    for name in named:
        assert _contract_bounds(name), name


def test_a_differing_bound_is_seen(openapi):
    prop = dict(openapi["components"]["schemas"]["EventCreate"]["properties"]["description"])
    prop["maxLength"] = prop["maxLength"] + 1
    assert _declared_bounds(prop) != _contract_bounds(prop[CONTRACT_KEY])


def _request_schemas(openapi: dict[str, Any]) -> set[str]:
    """Names of the schemas a request body uses, nested ones included."""
    schemas = openapi["components"]["schemas"]
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if ref and name not in found:
                found.add(name)
                visit(schemas.get(name, {}))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for operations in openapi["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict):
                visit(operation.get("requestBody", {}))
    return found


def _integer_options(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in [prop, *prop.get("anyOf", [])] if o.get("type") == "integer"]


def test_every_integer_a_client_sends_is_bounded(openapi):
    """An unbounded integer reaches a proto int32/int64 field: past its range the
    message cannot be built and the caller got 500 instead of 400 naming the field."""
    unbounded = []
    schemas = _request_schemas(openapi)
    for label, prop in _properties(openapi):
        if label.split(".")[0] not in schemas:
            continue
        for option in _integer_options(prop):
            if "maximum" not in option or "minimum" not in option:
                unbounded.append(label)
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                for option in _integer_options(parameter.get("schema", {})):
                    if "maximum" not in option or "minimum" not in option:
                        unbounded.append(f"{method.upper()} {path} ?{parameter['name']}")
    assert not unbounded, "integers without both bounds:\n" + "\n".join(unbounded)


# Query and path parameters that stand for no limited proto field, by name, with the
# reason their bounds are the gateway's. Any other bounded parameter must name its
# contract field (`gateway.schemas.contract.query`), and one named like a limited field
# of the request its route sends must take that field's bounds.
PARAMETER_GATEWAY_ONLY = {
    # A resource id is one segment of the resource name the gateway builds; the
    # contract bounds the whole name, the services parse it (ADR 9).
    **dict.fromkeys(
        [
            "api_key",
            "app",
            "attachment",
            "attribute",
            "collection_id",
            "credit_consent",
            "credit_policy",
            "dataset",
            "delivery",
            "emergency_plan",
            "entity",
            "entity_id",
            "event",
            "feature",
            "form",
            "handler",
            "item_id",
            "layer",
            "notice",
            "person",
            "points_account",
            "report_template",
            "routing_rule",
            "run",
            "service_order",
            "service_plan",
            "subscription",
            "task",
            "tenant",
            "token",
            "user",
            "service_request_id",
            "service_code",
        ],
        "a segment of a resource name",
    ),
    # Paging: sizes are clamped by the kit (AIP-158), tokens and cursors are signed.
    **dict.fromkeys(["page_size", "page_token", "limit", "offset", "after", "cursor"], "paging"),
    # Filter text the service parses with its own grammar; the gateway guards the size.
    **dict.fromkeys(["filter", "q"], "size guard of filter text"),
    # Terms the gateway turns into a filter expression over output-only fields, which
    # the contract does not bound: size guards.
    **dict.fromkeys(
        [
            "area",
            "kind",
            "grid_cell",
            "village",
            "handler",
            "team",
            "role",
            "holder",
            "type",
            "entity_type",
            "property",
            "start_time",
            "end_time",
            "purpose",
            "grid_tenant",
            "tenant",
            "bucket_seconds",
            "bbox",
            "bbox_crs",
            "crs",
            "event",
            "coordinates",
        ],
        "a filter term over output-only fields",
    ),
    # The REST name of one of a contract enum's values.
    "format": "an enum's REST name",
    # NGSI-LD and OGC API parameters, bounded as their standards' readers expect.
    **dict.fromkeys(
        [
            "aggrMethods",
            "aggrPeriodDuration",
            "attrs",
            "count",
            "endTimeAt",
            "geometry",
            "geoproperty",
            "georel",
            "id",
            "lastN",
            "options",
            "timeAt",
            "timerel",
        ],
        "a parameter of NGSI-LD",
    ),
}


def _parameters(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(operation, parameter name, schema) of every query and path parameter."""
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "path"):
                    label = f"{method.upper()} {path}"
                    found.append((label, parameter["name"], parameter.get("schema", {})))
    return found


def _request_fields(openapi: dict[str, Any]) -> dict[str, list[Any]]:
    """Request messages each operation sends, from its route's `@calls`."""
    from fastapi.routing import APIRoute

    from gateway import auth
    from gateway.app import create_app as build

    app = build(GatewaySettings(**{f"{n}_address": "127.0.0.1:9" for n in NAMES}))
    messages: dict[str, list[Any]] = {}
    pool = descriptor_pool.Default()
    import fastapi.routing

    for context in fastapi.routing.iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        sent = []
        for rpc in auth.ENDPOINT_RPCS.get(route.endpoint, ()):
            service, _, method = rpc[1:].partition("/")
            sent.append(pool.FindServiceByName(service).methods_by_name[method].input_type)
        for method in route.methods:
            messages[f"{method} {context.path}"] = sent
    return messages


def test_every_bound_of_a_query_or_path_parameter_is_the_contracts(openapi):
    sends = _request_fields(openapi)
    differ, undeclared, checked = [], [], 0
    for operation, name, schema in _parameters(openapi):
        bounds = _declared_bounds(schema)
        if CONTRACT_KEY in schema:
            checked += 1
            expected = _contract_bounds(schema[CONTRACT_KEY])
            if bounds != expected:
                differ.append(f"{operation} {name}: gateway {bounds}, contract {expected}")
            continue
        for message in sends.get(operation, []):
            field = message.fields_by_name.get(name)
            if field is not None and field.GetOptions().ListFields():
                try:
                    limits.of(message, name)
                except LookupError:
                    continue
                undeclared.append(f"{operation} {name}: bound it as {message.full_name}.{name}")
        if bounds and name not in PARAMETER_GATEWAY_ONLY:
            undeclared.append(f"{operation} {name}: {bounds}")
    assert checked >= 5
    assert not differ, "gateway and contract limits differ:\n" + "\n".join(differ)
    assert not undeclared, (
        "take these bounds from the contract with gateway.schemas.contract.query:\n"
        + "\n".join(undeclared)
    )


def test_a_filter_takes_the_bounds_of_the_field_it_filters(openapi):
    """The drift ADR 22 was about, in a query: events were filtered by categories of at
    most 64 characters while a category code may have 127."""
    listed = openapi["paths"]["/v1/tenants/{tenant}/events"]["get"]["parameters"]
    category = next(p for p in listed if p["name"] == "category")["schema"]
    assert category[CONTRACT_KEY] == "grassroots.events.v1.Event.category"
    assert _declared_bounds(category)["maxLength"] == 127

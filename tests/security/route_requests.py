"""How the suite calls any operation of the OpenAPI: path values and a valid body.

Bodies matter even where authentication must answer first: FastAPI parses a JSON body
before it runs the route's dependencies (malformed JSON is 400 whatever the
credentials), so the suite sends bodies that parse and validate, and the status it
sees comes from authentication, scope or tenancy alone. `test_routes.py` checks that
every operation with a request body has an entry in `BODIES` and that each JSON or
form body validates against the live schema.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from security_world import (
    B_FEATURE,
    B_LAYER,
    PNG_BYTES,
    SECURITY_DATASET,
    A,
    B,
    World,
    anonymous_receipt,
    emergency_plan_body,
    new_id_number,
    new_phone,
    service_plan_body,
)

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PARAMETER = re.compile(r"\{([^}]+)\}")
# What update bodies rename things to; B's objects must never carry it.
RENAMED = "Renamed by another village"

# What fills each path parameter when the suite only needs the route to be reached:
# village A as the tenant and village B's objects as ids (a caller who gets past
# authentication with these would be reaching into B).
PATH_VALUES: dict[str, Callable[[World], str]] = {
    "tenant": lambda w: A,
    "fmt": lambda w: "json",
    "event": lambda w: w.b.event_id,
    "service_request_id": lambda w: w.b.event_id,
    "token": lambda w: w.b.event_id,
    "user": lambda w: w.b.user_id,
    "app": lambda w: w.b.app.app_id if w.b.app else "",
    "api_key": lambda w: w.b.app.key_id if w.b.app else "",
    "person": lambda w: w.b.person_id,
    "layer": lambda w: B_LAYER,
    "feature": lambda w: B_FEATURE,
    "item_id": lambda w: B_FEATURE,
    "collection_id": lambda w: f"{A}.{B_LAYER}",
    "service_code": lambda w: "environment.garbage",
    "handler": lambda w: w.b.handler_id,
    "routing_rule": lambda w: w.b.rule_id,
    "task": lambda w: w.b.task_id,
    "points_account": lambda w: w.b.points_account_id,
    "credit_policy": lambda w: w.b.credit_policy_id,
    "credit_consent": lambda w: w.b.credit_consent_id,
    "form": lambda w: w.b.form_id,
    "report_template": lambda w: w.b.report_template_id,
    "run": lambda w: w.b.report_run_id,
    "entity": lambda w: w.b.twin_entity_id,
    "entity_id": lambda w: f"urn:ngsi-ld:WaterLevelGauge:{w.b.twin_entity_id}",
    "attribute": lambda w: "level_cm",
    "dataset": lambda w: "security-register",
    "subscription": lambda w: w.b.subscription_id,
    "emergency_plan": lambda w: w.b.emergency_plan_id,
    "service_plan": lambda w: w.b.service_plan_id,
    "service_order": lambda w: w.b.service_order_id,
    "notice": lambda w: w.b.notice_id,
    "delivery": lambda w: w.b.delivery_id,
    "attachment": lambda w: w.b.attachment_id,
}


def operations(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path template, operation object) of every operation in the schema."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def path_parameters(path: str) -> list[str]:
    return PARAMETER.findall(path)


def fill(path: str, values: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for path parameter {{{name}}} of {path}")
        return values[name]

    return PARAMETER.sub(value, path)


def default_values(world: World, path: str) -> dict[str, str]:
    missing = [p for p in path_parameters(path) if p not in PATH_VALUES]
    assert not missing, f"{path}: add {missing} to PATH_VALUES in route_requests.py"
    return {p: PATH_VALUES[p](world) for p in path_parameters(path)}


def _unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def _event(world: World) -> dict[str, Any]:
    return {
        "json": {
            "category": "environment.garbage",
            "description": "Security suite: bins overflowing",
            "location": {"longitude": world.a.point[0], "latitude": world.a.point[1]},
            "request_id": _unique("security-"),
        }
    }


def _person(world: World) -> dict[str, Any]:
    rng = secrets.SystemRandom()
    return {
        "json": {
            "display_name": "Security Suite Person",
            "id_number": new_id_number(rng),
            "phone": new_phone(rng),
            "kind": "resident",
        }
    }


def _user(world: World) -> dict[str, Any]:
    password = secrets.token_urlsafe(18)
    world.remember(password)
    return {
        "json": {
            "username": _unique("planted."),
            "display_name": "Planted user",
            "kind": "staff",
            "roles": ["grid_worker"],
            "password": password,
        }
    }


def _new_password(world: World) -> dict[str, Any]:
    password = secrets.token_urlsafe(18)
    world.remember(password)
    return {"json": {"password": password}}


def _import(world: World) -> dict[str, Any]:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": _unique("planted-"),
                "properties": {"note": "planted by another village"},
                "geometry": {"type": "Point", "coordinates": list(world.a.point)},
            }
        ],
    }
    return {
        "files": {"file": ("x.geojson", json.dumps(collection), "application/geo+json")},
        "data": {"format": "geojson"},
    }


def _dataset(world: World) -> dict[str, Any]:
    return {"json": {**SECURITY_DATASET, "dataset_id": _unique("planted-")}}


def _rows(world: World) -> dict[str, Any]:
    register = "id_number,address\n" + new_id_number(secrets.SystemRandom()) + ",xiangyang b1\n"
    return {"files": {"file": ("x.csv", register, "text/csv")}, "data": {"format": "csv"}}


# (METHOD, path) -> httpx keyword arguments of a body that validates.
BODIES: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    ("POST", "/v1/auth/token"): lambda w: {
        "data": {"grant_type": "password", "username": "nobody.here", "password": "wrong-pass1"}
    },
    ("POST", "/v1/auth/revoke"): lambda w: {"data": {"token": "grr_not_a_token"}},
    ("POST", "/v1/me:changePassword"): lambda w: {
        "json": {"current_password": "not-the-password", "new_password": "another-password-2"}
    },
    ("POST", "/v1/tenants/{tenant}/children"): lambda w: {
        "json": {
            "id": _unique("g"),
            "display_name": "Security suite grid",
            "level": "grid",
            "admin_code": _unique("grid"),
        }
    },
    ("POST", "/v1/tenants/{tenant}/users"): _user,
    ("PATCH", "/v1/tenants/{tenant}"): lambda w: {"json": {"display_name": RENAMED}},
    ("PATCH", "/v1/tenants/{tenant}/users/{user}"): lambda w: {"json": {"display_name": RENAMED}},
    ("POST", "/v1/tenants/{tenant}/users/{user}:resetPassword"): _new_password,
    ("PATCH", "/v1/tenants/{tenant}/apps/{app}"): lambda w: {"json": {"display_name": RENAMED}},
    ("POST", "/v1/tenants/{tenant}/apps"): lambda w: {
        "json": {"display_name": "Planted app", "scopes": ["events:read"], "quota_per_minute": 60}
    },
    ("POST", "/v1/tenants/{tenant}/people"): _person,
    ("POST", "/v1/tenants/{tenant}/pointsAccounts"): lambda w: {
        "json": {"holder_kind": "household", "holder": _unique("household/planted-")}
    },
    ("POST", "/v1/tenants/{tenant}/forms"): lambda w: {
        "json": {
            "id": _unique("planted-"),
            "display_name": "Planted form",
            "fields": [{"key": "x", "label": "X", "type": "text"}],
        }
    },
    ("POST", "/v1/tenants/{tenant}/forms/{form}/records"): lambda w: {
        "json": {"values": {"count": "1000"}, "request_id": _unique("planted-")}
    },
    ("POST", "/v1/tenants/{tenant}/reportTemplates"): lambda w: {
        "json": {
            "id": _unique("planted-"),
            "display_name": "Planted report",
            "department": "Planted",
            "form": f"tenants/{B}/forms/{w.b.form_id}",
            "columns": [{"label": "Records", "aggregate": "count"}],
        }
    },
    ("POST", "/v1/tenants/{tenant}/notices"): lambda w: {
        "json": {
            "title": "Planted notice",
            "body": "from another village",
            "audience": {"role": "grid_worker"},
            "request_id": _unique("planted-"),
        }
    },
    ("POST", "/v1/tenants/{tenant}/people/{person}:bindWeChat"): lambda w: {
        "json": {"openid": "oPlantedOpenid"}
    },
    ("POST", "/v1/tenants/{tenant}/pointsRules"): lambda w: {
        "json": {"display_name": "Planted rule", "fact_type": "task.resolved", "points": 1000}
    },
    ("POST", "/v1/tenants/{tenant}/pointsAccounts/{points_account}:credit"): lambda w: {
        "json": {"amount": 1000, "memo": "planted", "request_id": _unique("planted-")}
    },
    ("POST", "/v1/tenants/{tenant}/pointsAccounts/{points_account}:redeem"): lambda w: {
        "json": {"amount": 1, "memo": "planted", "request_id": _unique("planted-")}
    },
    ("POST", "/v1/tenants/{tenant}/creditPolicies"): lambda w: {
        "json": {
            "id": _unique("planted-"),
            "base_score": 1000,
            "points_weight": 0,
            "deed_weight": 0,
            "bands": [{"band": "PLANTED", "min_score": 0}],
        }
    },
    ("POST", "/v1/tenants/{tenant}/creditConsents"): lambda w: {
        "json": {
            "household": f"tenants/{B}/pointsAccounts/{w.b.points_account_id}",
            "consumer": f"tenants/{A}/apps/{w.scopeless.app_id}",
            "purpose": "planted",
            "expire_time": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
            "request_id": _unique("planted-"),
        }
    },
    ("POST", "/v1/tenants/{tenant}/datasets"): _dataset,
    ("POST", "/v1/tenants/{tenant}/datasets/{dataset}:import"): _rows,
    ("POST", "/v1/tenants/{tenant}/subscriptions"): lambda w: {
        "json": {"dataset": f"tenants/sh-jiading/datasets/{SECURITY_DATASET['dataset_id']}"}
    },
    ("POST", "/v1/tenants/{tenant}/installations"): lambda w: {
        "json": {"catalog_item": "catalogItems/scenario-none"}
    },
    ("POST", "/v1/tenants/{tenant}/scenarios:plan"): lambda w: {"json": {"scenario": "fire-smoke"}},
    ("POST", "/v1/tenants/{tenant}/scenarios:install"): lambda w: {
        "json": {"scenario": "fire-smoke", "overrides": {}}
    },
    ("POST", "/v1/tenants/{tenant}/scenarios:planUninstall"): lambda w: {
        "json": {"scenario": "fire-smoke"}
    },
    ("POST", "/v1/tenants/{tenant}/scenarios:uninstall"): lambda w: {
        "json": {"scenario": "fire-smoke"}
    },
    ("POST", "/v1/tenants/{tenant}/events"): _event,
    ("POST", "/v1/tenants/{tenant}/attachments"): lambda w: {
        "files": {"content": ("planted.png", PNG_BYTES, "image/png")}
    },
    ("PATCH", "/v1/tenants/{tenant}/intakeSettings"): lambda w: {
        "json": {"anonymous_reports": True, "anonymous_reports_per_hour": 1000}
    },
    ("POST", "/v1/tenants/{tenant}/events:reportAnonymously"): lambda w: {
        "json": {
            "category": "environment.garbage",
            "description": "Security suite: reported without an account",
            "location": {"longitude": w.a.point[0], "latitude": w.a.point[1]},
            "request_id": secrets.token_urlsafe(24),
        }
    },
    ("POST", "/v1/tenants/{tenant}/events:attachAnonymously"): lambda w: {
        "data": {
            "request_id": secrets.token_urlsafe(24),
            "longitude": w.a.point[0],
            "latitude": w.a.point[1],
        },
        "files": {"content": ("planted.png", PNG_BYTES, "image/png")},
    },
    ("POST", "/v1/tenants/{tenant}/events:followReceipt"): lambda w: {
        "json": {"receipt": anonymous_receipt(w)}
    },
    ("POST", "/v1/tenants/{tenant}/events:evaluateReceipt"): lambda w: {
        "json": {"receipt": anonymous_receipt(w), "score": 1, "text": "x"}
    },
    ("POST", "/v1/tenants/{tenant}/events/{event}:transition"): lambda w: {
        "json": {"state": "rejected", "note": "closed by another village"}
    },
    ("PATCH", "/v1/tenants/{tenant}/events/{event}"): lambda w: {
        "json": {"category": "roads.damage", "note": "moved by another village"}
    },
    ("POST", "/v1/tenants/{tenant}/events/{event}:evaluate"): lambda w: {
        "json": {"score": 1, "text": "x"}
    },
    ("POST", "/v1/tenants/{tenant}/events/{event}/comments"): lambda w: {
        "json": {"text": "a comment from another village"}
    },
    ("POST", "/v1/tenants/{tenant}/categories"): lambda w: {
        "json": {"code": f"security.{_unique('c')}", "display_name": "Security suite category"}
    },
    ("POST", "/v1/tenants/{tenant}/layers"): lambda w: {
        "json": {
            "layer_id": _unique("planted-"),
            "display_name": "Planted layer",
            "kind": "poi",
            "geometry_type": "Point",
        }
    },
    ("POST", "/v1/tenants/{tenant}/layers/{layer}/features:import"): _import,
    ("POST", "/v1/tenants/{tenant}/layers/{layer}/features:search"): lambda w: {
        "json": {
            "nearest": {"point": {"longitude": w.b.point[0], "latitude": w.b.point[1]}, "k": 5}
        }
    },
    ("POST", "/v1/tenants/{tenant}:locatePoints"): lambda w: {
        "json": {"longitudes": [w.a.point[0]], "latitudes": [w.a.point[1]]}
    },
    ("POST", "/v1/coordinates:transform"): lambda w: {
        "json": {"longitudes": [121.16], "latitudes": [31.29], "target_crs": "EPSG:3857"}
    },
    ("POST", "/v1/tenants/{tenant}/handlers"): lambda w: {
        "json": {"user": f"users/{_unique('planted')}", "roles": ["grid_worker"]}
    },
    ("PATCH", "/v1/tenants/{tenant}/handlers/{handler}"): lambda w: {
        "json": {"display_name": RENAMED}
    },
    ("POST", "/v1/tenants/{tenant}/handlers/{handler}:reportPosition"): lambda w: {
        "json": {"position": {"longitude": w.a.point[0], "latitude": w.a.point[1]}}
    },
    ("POST", "/v1/tenants/{tenant}/routingRules"): lambda w: {
        "json": {"category": "roads.*", "handler_role": "grid_worker"}
    },
    ("POST", "/v1/tenants/{tenant}/tasks"): lambda w: {"json": {"event": w.b.event_id}},
    ("POST", "/v1/tenants/{tenant}/tasks/{task}:decline"): lambda w: {
        "json": {"reason": "declined by another village"}
    },
    ("POST", "/v1/tenants/{tenant}/tasks/{task}:resolve"): lambda w: {
        "json": {"note": "resolved by another village"}
    },
    ("POST", "/v1/tenants/{tenant}/tasks/{task}:transfer"): lambda w: {
        "json": {"reason": "moved by another village"}
    },
    ("POST", "/v1/tenants/{tenant}/entities"): lambda w: {
        "json": {
            "entity_id": _unique("planted-"),
            "entity_type": "WaterLevelGauge",
            "location": {"longitude": w.a.point[0], "latitude": w.a.point[1]},
        }
    },
    ("POST", "/v1/tenants/{tenant}:ingestTelemetry"): lambda w: {
        "json": {"entities": [w.b.twin_entity_id], "properties": ["level_cm"], "values": [999.0]}
    },
    ("POST", "/v1/tenants/{tenant}/models"): lambda w: {
        "json": {
            "model_id": _unique("Planted"),
            "properties": [{"name": "level_cm", "unit": "cm", "minimum": 0, "maximum": 10}],
        }
    },
    ("POST", "/v1/tenants/{tenant}/rules"): lambda w: {
        "json": {
            "rule_id": _unique("planted-"),
            "entity_type": "WaterLevelGauge",
            "property": "level_cm",
            "event_category": "safety.flooding",
            "threshold": {"trigger": 1, "clear": 0},
        }
    },
    ("POST", "/v1/tenants/{tenant}/emergencyPlans"): lambda w: {
        "json": emergency_plan_body("Planted plan")
    },
    ("POST", "/v1/tenants/{tenant}/emergencyPlans/{emergency_plan}:changeLevel"): lambda w: {
        "json": {"level": 1, "reason": "raised by another village"}
    },
    ("PATCH", "/v1/tenants/{tenant}/emergencyPlans/{emergency_plan}"): lambda w: {
        "json": {"display_name": RENAMED, "reason": "renamed by another village"}
    },
    ("PATCH", "/v1/tenants/{tenant}/servicePlans/{service_plan}"): lambda w: {
        "json": {"display_name": RENAMED, "reason": "renamed by another village"}
    },
    ("POST", "/v1/tenants/{tenant}/servicePlans"): lambda w: {
        "json": service_plan_body(w.a.point, w.a_super.subject)
    },
    ("POST", "/v1/tenants/{tenant}/serviceOrders/{service_order}:checkIn"): lambda w: {
        "json": {"location": {"longitude": w.b.point[0], "latitude": w.b.point[1]}}
    },
    ("POST", "/v1/tenants/{tenant}/serviceOrders/{service_order}:checkOut"): lambda w: {
        "json": {"location": {"longitude": w.b.point[0], "latitude": w.b.point[1]}, "note": "x"}
    },
    ("POST", "/open311/v2/requests.{fmt}"): lambda w: {
        "data": {
            "service_code": "environment.garbage",
            "lat": str(w.a.point[1]),
            "long": str(w.a.point[0]),
            "description": "Security suite: bins overflowing",
        }
    },
}


def body_for(world: World, method: str, path: str) -> dict[str, Any]:
    maker = BODIES.get((method, path))
    return maker(world) if maker is not None else {}


def send(
    client: httpx.Client,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request; an event stream that opens is closed at once instead of read."""
    with client.stream(method, url, headers=dict(headers or {}), timeout=15, **kwargs) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
    return response


def describe(method: str, url: str, response: httpx.Response) -> str:
    try:
        text = response.text[:200]
    except httpx.ResponseNotRead:
        text = "<event stream>"
    return f"{method} {url} -> {response.status_code} {text}"

"""A request body cannot set what the server decides: the tenant, the owner, the
resource name, a user's scopes or an app's roles. Such a body is refused naming the
field, and nothing is created.

The caller is A's super user, who holds every scope: the refusal is the body's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from route_requests import BODIES
from security_world import VILLAGE_B, A, B, World

PURPOSE = "security suite: mass assignment check"


@dataclass(frozen=True)
class Creation:
    url: str
    body: Callable[[World], dict[str, Any]]
    forbidden: tuple[str, ...]
    # Whether the object the body describes exists (by its unique value).
    exists: Callable[[World, dict[str, Any]], bool]


def _values(world: World, url: str, key: str, params: dict[str, Any] | None = None) -> list[Any]:
    response = world.client.get(url, params=params or {}, headers=world.a_super.headers)
    assert response.status_code == 200, response.text
    return list(response.json()[key])


def _user_exists(w: World, body: dict[str, Any]) -> bool:
    users = _values(w, f"/v1/tenants/{A}/users", "users", {"page_size": 1000})
    return body["username"] in {u["username"] for u in users}


def _app_exists(w: World, body: dict[str, Any]) -> bool:
    apps = _values(w, f"/v1/tenants/{A}/apps", "apps", {"page_size": 1000})
    return body["display_name"] in {a["display_name"] for a in apps}


def _person_exists(w: World, body: dict[str, Any]) -> bool:
    query = {"filter": f'id_number = "{body["id_number"]}"', "purpose": PURPOSE}
    return bool(_values(w, f"/v1/tenants/{A}/people", "people", query))


def _event_exists(w: World, body: dict[str, Any]) -> bool:
    events = _values(w, f"/v1/tenants/{A}/events", "events", {"q": body["description"].split()[-1]})
    return bool(events)


def _layer_exists(w: World, body: dict[str, Any]) -> bool:
    url = f"/v1/tenants/{A}/layers/{body['layer_id']}"
    return w.client.get(url, headers=w.a_super.headers).status_code != 404


def _category_exists(w: World, body: dict[str, Any]) -> bool:
    categories = _values(w, f"/v1/tenants/{A}/categories", "categories")
    return body["code"] in {c["code"] for c in categories}


def _child_exists(w: World, body: dict[str, Any]) -> bool:
    url = f"/v1/tenants/{A}-{body['id']}"
    return w.client.get(url, headers=w.a_super.headers).status_code != 404


def _from_table(method: str, path: str) -> Callable[[World], dict[str, Any]]:
    def body(world: World) -> dict[str, Any]:
        made: dict[str, Any] = BODIES[(method, path)](world)["json"]
        world.remember(made.get("password", ""))
        return made

    return body


def _event_body(world: World) -> dict[str, Any]:
    body = _from_table("POST", "/v1/tenants/{tenant}/events")(world)
    body["description"] = f"Mass assignment probe {secrets.token_hex(6)}"
    return body


CREATIONS = {
    "user": Creation(
        f"/v1/tenants/{A}/users",
        _from_table("POST", "/v1/tenants/{tenant}/users"),
        ("scopes", "tenant", "owner", "name", "id", "disabled"),
        _user_exists,
    ),
    "app": Creation(
        f"/v1/tenants/{A}/apps",
        lambda w: {
            **_from_table("POST", "/v1/tenants/{tenant}/apps")(w),
            "display_name": f"Probe {secrets.token_hex(6)}",
        },
        ("roles", "tenant", "owner", "name", "id"),
        _app_exists,
    ),
    "person": Creation(
        f"/v1/tenants/{A}/people",
        _from_table("POST", "/v1/tenants/{tenant}/people"),
        ("tenant", "owner", "name", "id", "masked"),
        _person_exists,
    ),
    "event": Creation(
        f"/v1/tenants/{A}/events",
        _event_body,
        ("tenant", "owner", "name", "id", "village", "state", "grid_worker"),
        _event_exists,
    ),
    "layer": Creation(
        f"/v1/tenants/{A}/layers",
        _from_table("POST", "/v1/tenants/{tenant}/layers"),
        ("tenant", "owner", "name", "feature_count"),
        _layer_exists,
    ),
    "category": Creation(
        f"/v1/tenants/{A}/categories",
        _from_table("POST", "/v1/tenants/{tenant}/categories"),
        ("tenant", "owner", "name"),
        _category_exists,
    ),
    "child tenant": Creation(
        f"/v1/tenants/{A}/children",
        _from_table("POST", "/v1/tenants/{tenant}/children"),
        ("tenant", "owner", "name", "path", "parent"),
        _child_exists,
    ),
}
# What a planted field would try to set.
PLANTED = {
    "tenant": VILLAGE_B,
    "owner": f"tenants/{B}",
    "name": f"tenants/{B}/objects/planted",
    "id": "planted",
    "path": VILLAGE_B,
    "parent": f"tenants/{B}",
    "scopes": ["people:read_sensitive", "tenants:write"],
    "roles": ["district_admin"],
    "village": VILLAGE_B,
    "state": "closed",
    "grid_worker": "gw-xiangyang-01",
    "disabled": False,
    "masked": False,
    "feature_count": 0,
}


@pytest.mark.parametrize(
    "kind, field",
    [(kind, f) for kind, creation in CREATIONS.items() for f in creation.forbidden],
)
def test_a_body_cannot_set_what_the_server_decides(world, kind, field):
    creation = CREATIONS[kind]
    body = creation.body(world)
    assert field not in body
    planted = {**body, field: PLANTED[field]}
    response = world.client.post(creation.url, json=planted, headers=world.a_super.headers)
    assert 400 <= response.status_code < 500, response.text
    fields = [v["field"] for v in response.json()["error"].get("field_violations", [])]
    assert field in fields, response.text
    assert not creation.exists(world, body), f"a {kind} was created from a refused body"


@pytest.mark.parametrize("kind", sorted(CREATIONS))
def test_the_same_body_without_the_field_is_accepted(world, kind):
    """So the refusals above are the planted field's doing, and `exists` can see."""
    creation = CREATIONS[kind]
    body = creation.body(world)
    response = world.client.post(creation.url, json=body, headers=world.a_super.headers)
    assert response.status_code == 201, response.text
    assert creation.exists(world, body)

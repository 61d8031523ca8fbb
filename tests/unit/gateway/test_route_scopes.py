"""Every REST route needs the scope of the RPC it calls, as the contract declares it."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from gateway import auth
from services.kit.components import NAMES
from services.kit.scopes import scope_of


def _routes() -> list[APIRoute]:
    """Every REST route of every router module (the app keeps included routers lazily)."""
    package = importlib.import_module("gateway.routers")
    found = []
    for info in pkgutil.iter_modules(package.__path__, "gateway.routers."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, APIRouter):
                found.extend(r for r in value.routes if isinstance(r, APIRoute))
    return found


def test_every_route_naming_only_its_component_declares_the_rpc_it_calls():
    undeclared, checked = [], 0
    for route in _routes():
        names = {d.call.__name__ for d in route.dependant.dependencies if d.call is not None}
        component_only = {
            n for n in names if n.startswith("access_") and n.removeprefix("access_") in NAMES
        }
        checked += bool(component_only)
        if component_only and route.endpoint not in auth._ENDPOINT_SCOPES:
            undeclared.append(f"{sorted(route.methods)} {route.path}")
    assert checked >= 20
    assert not undeclared, "add @calls(service, rpc) to:\n" + "\n".join(undeclared)


def test_a_route_takes_its_scope_from_the_contract():
    by_name = {route.endpoint.__name__: route.endpoint for route in _routes()}
    expected = {
        "create_event": "/grassroots.events.v1.EventsService/CreateEvent",
        "list_events": "/grassroots.events.v1.EventsService/ListEvents",
        "delete_layer": "/grassroots.map.v1.MapService/DeleteLayer",
        "items": "/grassroots.map.v1.MapService/ListFeatures",
    }
    assert len(_routes()) > 40
    for endpoint, rpc in expected.items():
        assert auth._ENDPOINT_SCOPES[by_name[endpoint]] == scope_of(rpc)
    assert scope_of(expected["delete_layer"]) == "map:write"


def test_a_mistyped_rpc_fails_at_import_time():
    with pytest.raises(ValueError, match="NoSuchMethod"):
        auth.calls("grassroots.events.v1.EventsService", "NoSuchMethod")

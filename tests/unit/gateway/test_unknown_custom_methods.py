"""A custom method no route declares (`POST .../tasks/{id}:explode`) is 404 naming it, on
every resource: not the 405 the item's GET route would answer for its path. A declared
verb called with another method (`GET .../tasks/{id}:accept`) is 405 naming the methods
it takes, never the item's Get with the id `{id}:accept`."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.app import create_app
from gateway.custom_methods import declared_routes
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from services.kit.components import NAMES
from services.kit.principal import Principal
from tests.conftest import XINGMING


def _app() -> object:
    settings = GatewaySettings(**{f"{name}_address": "127.0.0.1:1" for name in NAMES})
    who = Principal(subject="users/someone", tenant=XINGMING, kind="user", scopes=frozenset())
    return create_app(settings, fixed_caller=Caller(who, None))


APP = _app()
# Every resource with a custom method, as `{collection}/{item}` with the item sampled.
ITEMS = sorted(
    {
        re.sub(r"\{[^}]+\}", "abc", route.path.rsplit(":", 1)[0])
        for route in declared_routes(APP.router.routes)  # type: ignore[attr-defined]
        if getattr(route, "path", "").startswith("/v1/") and ":" in route.path.rsplit("/", 1)[-1]
    }
)


# Every declared verb with the methods it takes, on its resource with the item sampled.
VERBS: dict[str, set[str]] = {}
for route in declared_routes(APP.router.routes):  # type: ignore[attr-defined]
    path = getattr(route, "path", "")
    if path.startswith("/v1/") and ":" in path.rsplit("/", 1)[-1]:
        VERBS.setdefault(re.sub(r"\{[^}]+\}", "abc", path), set()).update(route.methods)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=APP),  # type: ignore[arg-type]
        base_url="http://gateway",
        headers={"X-API-Key": "grk_app_secret"},  # any: the caller is fixed
    )


def test_there_are_resources_with_custom_methods() -> None:
    assert any(path.endswith("/tasks/abc") for path in ITEMS)
    assert len(ITEMS) > 10


@pytest.mark.parametrize("item", ITEMS)
async def test_an_unknown_custom_method_is_404_naming_it(item: str) -> None:
    async with client() as gateway:
        answer = await gateway.post(f"{item}:explode", json={})
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert "':explode'" in error["message"]
    assert error["reason"] == "UNKNOWN_CUSTOM_METHOD"


async def test_a_declared_custom_method_keeps_its_answers() -> None:
    tenant = f"/v1/tenants/{XINGMING.replace('/', '-')}"
    async with client() as gateway:
        wrong_method = await gateway.delete(f"{tenant}/tasks/abc:accept")
        unknown_path = await gateway.post(f"{tenant}/nothing")
    assert wrong_method.status_code == 405  # the verb exists, for POST
    assert unknown_path.status_code == 404
    assert "custom method" not in unknown_path.text


@pytest.mark.parametrize("path", sorted(VERBS))
async def test_a_declared_verb_called_with_another_method_is_405_naming_its_methods(
    path: str,
) -> None:
    other = next(m for m in ("GET", "DELETE", "PATCH") if m not in VERBS[path])
    async with client() as gateway:
        answer = await gateway.request(other, path)
    assert answer.status_code == 405, answer.text
    assert set(answer.headers["Allow"].split(", ")) == VERBS[path]
    error = answer.json()["error"]
    assert f":{path.rsplit(':', 1)[1]}'" in error["message"] and other in error["message"]


async def test_get_of_a_verb_does_not_read_the_item_with_the_verb_in_its_id() -> None:
    tenant = f"/v1/tenants/{XINGMING.replace('/', '-')}"
    async with client() as gateway:
        accept = await gateway.get(f"{tenant}/tasks/abc:accept")
        explode = await gateway.get(f"{tenant}/tasks/abc:explode")
        event = await gateway.get(f"{tenant}/events/abc:explode")
    assert accept.status_code == 405 and accept.headers["Allow"] == "POST"
    assert explode.status_code == 404 and "':explode'" in explode.text
    assert event.status_code == 404 and "':explode'" in event.text


async def test_a_verb_that_could_not_be_one_is_not_echoed() -> None:
    tenant = f"/v1/tenants/{XINGMING.replace('/', '-')}"
    async with client() as gateway:
        long = await gateway.post(f"{tenant}/tasks/abc:{'x' * 5000}", json={})
        odd = await gateway.post(f"{tenant}/tasks/abc:a%0Ab", json={})
    for answer in (long, odd):
        assert answer.status_code == 404
        assert "this custom method" in answer.json()["error"]["message"]
    assert len(long.text) < 500

"""Apps and API keys: shown once, stored as a hash, checked by the gateway."""

from __future__ import annotations

import hashlib

import pytest

from grassroots.empower.v1 import identity_service_pb2 as pb
from services.empower.domain.identity import parse_api_key_name
from services.empower.domain.tokens import check_api_key, parse_api_key, principal_for_app
from services.kit import limits
from services.kit.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.kit.tenancy import tenant_name

from .conftest import T0, TOWN, XIANGYANG, XINGMING, staff

SECRETARY = staff(XINGMING, "village_secretary")


@pytest.fixture
async def app_and_key(tree):
    return await tree.create_app(SECRETARY, XINGMING, "Elderly care", ["people:read"], 600)


async def test_an_app_comes_with_a_key_shown_once(tree, store, app_and_key):
    app, issued = app_and_key
    assert app.name == f"{tenant_name(XINGMING)}/apps/{app.id}"
    assert (app.tenant, app.scopes, app.quota_per_minute, app.create_time) == (
        XINGMING,
        {"people:read"},
        600,
        T0,
    )
    key_id, secret = parse_api_key(issued.api_key)
    assert issued.api_key == f"grk_{key_id}_{secret}" and issued.key_id == key_id
    assert issued.api_key not in repr(issued)
    record, owner = await tree.lookup_api_key(key_id)
    assert owner == app
    assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not record.revoked and check_api_key(issued.api_key, record)
    assert record.name == f"{app.name}/apiKeys/{key_id}"
    assert parse_api_key_name(record.name) == (app.name, key_id)


async def test_the_key_stands_for_the_app(tree, app_and_key):
    app, issued = app_and_key
    principal, owner = await tree.authenticate_api_key(issued.api_key)
    assert owner == app
    assert principal == principal_for_app(app)
    assert (principal.subject, principal.kind, principal.app) == (
        f"apps/{app.id}",
        "app",
        f"apps/{app.id}",
    )
    assert (principal.tenant, principal.scopes) == (XINGMING, {"people:read"})


async def test_bad_keys_are_refused(tree, app_and_key):
    _, issued = app_and_key
    key_id, secret = parse_api_key(issued.api_key)
    record, _ = await tree.lookup_api_key(key_id)
    wrong = f"grk_{key_id}_{'x' * len(secret)}"
    assert not check_api_key(wrong, record)
    assert not check_api_key("grk_garbage", record)
    for text in (wrong, "grk_garbage", "grr_" + issued.api_key[4:]):
        with pytest.raises(Unauthenticated):
            await tree.authenticate_api_key(text)
    with pytest.raises(Unauthenticated):
        await tree.lookup_api_key("01jd0000000000000000000000")


async def test_keys_rotate_and_revoke(tree, clock, app_and_key):
    app, first = app_and_key
    clock.advance(minutes=1)
    second = await tree.create_api_key(SECRETARY, app.name)
    assert second.key_id != first.key_id
    for issued in (first, second):
        await tree.authenticate_api_key(issued.api_key)
    clock.advance(minutes=1)
    revoked = await tree.revoke_api_key(SECRETARY, app.name, first.key_id)
    assert revoked.revoked and revoked.secret_hash == ""
    again = await tree.revoke_api_key(SECRETARY, f"apps/{app.id}", first.key_id)
    assert again.revoke_time == revoked.revoke_time
    record, _ = await tree.lookup_api_key(first.key_id)
    assert record.revoked and not check_api_key(first.api_key, record)
    with pytest.raises(Unauthenticated):
        await tree.authenticate_api_key(first.api_key)
    await tree.authenticate_api_key(second.api_key)
    keys = await tree.list_api_keys(SECRETARY, app.name)
    assert [(k.id, k.revoked) for k in keys] == [(first.key_id, True), (second.key_id, False)]
    assert all(k.secret_hash == "" for k in keys)
    with pytest.raises(NotFound):
        await tree.revoke_api_key(SECRETARY, app.name, "01jd0000000000000000000000")


async def test_an_app_has_a_bounded_number_of_live_keys(tree, app_and_key):
    app, first = app_and_key
    for _ in range(tree.max_keys_per_app - 1):
        await tree.create_api_key(SECRETARY, app.name)
    with pytest.raises(FailedPrecondition):
        await tree.create_api_key(SECRETARY, app.name)
    await tree.revoke_api_key(SECRETARY, app.name, first.key_id)
    await tree.create_api_key(SECRETARY, app.name)


async def test_apps_grant_no_more_than_their_creator_holds(tree):
    officer = staff(TOWN, "town_officer")
    with pytest.raises(PermissionDenied) as info:
        await tree.create_app(officer, XINGMING, "Care", ["people:read_sensitive"], 60)
    assert "people:read_sensitive" in info.value.message
    with pytest.raises(PermissionDenied):
        await tree.create_app(staff(XINGMING, "grid_worker"), XINGMING, "Mine", ["map:read"], 60)
    app, _ = await tree.create_app(SECRETARY, XINGMING, "Care", ["people:read_sensitive"], 60)
    # A town officer sees the village's app, but may not mint keys to what it lacks.
    assert await tree.get_app(officer, app.name) == app
    with pytest.raises(PermissionDenied):
        await tree.create_api_key(officer, app.name)
    with pytest.raises(PermissionDenied):
        await tree.update_app_scopes(officer, app.name, ["people:read_sensitive", "map:read"])
    changed = await tree.update_app_scopes(officer, app.name, ["map:read", "events:read"])
    assert changed.scopes == {"map:read", "events:read"}
    assert (await tree.get_app(SECRETARY, app.name)).scopes == changed.scopes


@pytest.mark.parametrize(
    ("scopes", "quota", "name", "field"),
    [
        (["map:read", "root"], 60, "App", "scopes"),
        ([], 60, "App", "scopes"),
        (["map:read"], 0, "App", "quota_per_minute"),
        (["map:read"], 60, " ", "display_name"),
    ],
)
async def test_bad_input_names_the_field(tree, scopes, quota, name, field):
    with pytest.raises(InvalidArgument) as info:
        await tree.create_app(SECRETARY, XINGMING, name, scopes, quota)
    assert info.value.violations[0].field == field


def test_a_quota_past_the_contracts_maximum_is_refused_before_the_domain():
    request = pb.CreateAppRequest(app=pb.App(display_name="App", quota_per_minute=1_000_001))
    assert [v.field for v in limits.violations(request)] == ["app.quota_per_minute"]


async def test_other_tenants_apps_are_not_found(tree, app_and_key):
    app, issued = app_and_key
    neighbour = staff(XIANGYANG, "village_secretary")
    for name in (app.name, f"tenants/-/apps/{app.id}", f"apps/{app.id}"):
        with pytest.raises(NotFound):
            await tree.get_app(neighbour, name)
    with pytest.raises(NotFound):
        await tree.get_app(SECRETARY, f"{tenant_name(XIANGYANG)}/apps/{app.id}")
    with pytest.raises(NotFound):
        await tree.create_api_key(neighbour, app.name)
    with pytest.raises(NotFound):
        await tree.revoke_api_key(neighbour, app.name, issued.key_id)
    with pytest.raises(NotFound):
        await tree.list_api_keys(neighbour, app.name)
    with pytest.raises(NotFound):
        await tree.create_app(neighbour, XINGMING, "Mine", ["map:read"], 60)
    await tree.authenticate_api_key(issued.api_key)


async def test_apps_are_listed_by_subtree(tree, app_and_key):
    app, _ = app_and_key
    other, _ = await tree.create_app(
        staff(XIANGYANG, "village_secretary"), XIANGYANG, "Other", ["map:read"], 60
    )
    officer = staff(TOWN, "town_officer")
    apps, token = await tree.list_apps(officer, TOWN)
    assert {a.id for a in apps} == {app.id, other.id} and token == ""
    first, token = await tree.list_apps(officer, TOWN, page_size=1)
    rest, last = await tree.list_apps(officer, TOWN, page_size=1, page_token=token)
    assert [a.id for a in first + rest] == sorted([app.id, other.id]) and last == ""
    assert [a.id for a in (await tree.list_apps(SECRETARY, XINGMING))[0]] == [app.id]
    with pytest.raises(NotFound):
        await tree.list_apps(SECRETARY, XIANGYANG)


def test_api_key_names_parse():
    with pytest.raises(InvalidArgument):
        parse_api_key_name("tenants/sh/apps/a1")
    with pytest.raises(Unauthenticated):
        parse_api_key("grk_01jd0000000000000000000000")

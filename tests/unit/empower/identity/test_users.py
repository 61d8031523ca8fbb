"""Users: created inside the caller's subtree, with no more power than the caller's."""

from __future__ import annotations

import pytest

from services.empower.domain.model import UserKind
from services.empower.domain.roles import ROLES
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.kit.principal import Principal
from services.kit.tenancy import tenant_name

from .conftest import (
    DISTRICT,
    GRID,
    PASSWORD,
    T0,
    TOWN,
    XIANGYANG,
    XINGMING,
    add_user,
    staff,
)


async def test_a_secretary_creates_a_grid_worker(tree):
    secretary = staff(XINGMING, "village_secretary")
    user = await tree.create_user(
        secretary, GRID, "  Zhang.Wei ", "Zhang Wei", "grid_worker", ["grid_worker"], PASSWORD
    )
    assert user.username == "zhang.wei"
    assert (user.tenant, user.kind, user.roles, user.disabled) == (
        GRID,
        UserKind.GRID_WORKER,
        ("grid_worker",),
        False,
    )
    assert user.name == f"{tenant_name(GRID)}/users/{user.id}"
    assert user.subject == f"users/{user.id}"
    assert user.create_time == user.update_time == T0
    assert not hasattr(user, "password_hash")
    assert await tree.get_user(secretary, user.name) == user
    assert await tree.get_user(secretary, f"tenants/-/users/{user.id}") == user
    assert await tree.get_user(secretary, user.subject) == user
    assert (await tree.login("zhang.wei", PASSWORD)).token_type == "Bearer"


async def test_creating_users_needs_the_scope(tree):
    with pytest.raises(PermissionDenied):
        await tree.create_user(
            staff(XINGMING, "grid_worker"), XINGMING, "li.na", "Li Na", "staff", ["resident"]
        )


async def test_another_villages_node_is_not_found(tree):
    secretary = staff(XIANGYANG, "village_secretary")
    for tenant in (XINGMING, TOWN, XIANGYANG + "/nowhere"):
        with pytest.raises(NotFound):
            await tree.create_user(secretary, tenant, "li.na", "Li Na", "staff", ["resident"])


async def test_usernames_are_unique_at_their_node(tree):
    await add_user(tree, XINGMING, "li.na")
    with pytest.raises(AlreadyExists):
        await add_user(tree, XINGMING, "Li.Na")
    # Another node may use the name (test_usernames_per_node.py).
    await add_user(tree, XIANGYANG, "Li.Na")


async def test_roles_are_granted_by_the_assignable_lists_not_by_scopes(tree):
    officer = staff(TOWN, "town_officer")
    with pytest.raises(PermissionDenied) as info:
        await tree.create_user(officer, XINGMING, "wang", "Wang", "staff", ["village_secretary"])
    assert "village_secretary" in info.value.message and "town_officer" in info.value.message
    # District IT gives a new village its first secretary and carers, though it cannot
    # read the sensitive records they can (issue 9, item 7).
    admin = staff(DISTRICT, "district_admin")
    assert "people:read_sensitive" not in admin.scopes
    secretary_user = await tree.create_user(
        admin, XINGMING, "dongfang.secretary", "Dongfang", "staff", ["village_secretary"], PASSWORD
    )
    assert "people:read_sensitive" in secretary_user.scopes
    carer = await tree.create_user(admin, XINGMING, "carer1", "Carer", "volunteer", ["carer"])
    assert carer.roles == ("carer",)
    with pytest.raises(PermissionDenied):
        await tree.create_user(admin, XINGMING, "peer", "Peer", "staff", ["district_admin"])
    secretary = staff(XINGMING, "village_secretary")
    await tree.create_user(secretary, XINGMING, "carer2", "Carer", "volunteer", ["carer"])
    # Nor can a secretary make a district administrator, or a town officer (whose
    # scopes it holds: holding scopes is not the right to assign).
    for role in ("district_admin", "town_officer"):
        with pytest.raises(PermissionDenied):
            await tree.create_user(secretary, XINGMING, "boss", "Boss", "staff", [role])
    # A caller without roles (a service, an app) grants only scopes it holds.
    with pytest.raises(PermissionDenied) as info:
        app = Principal(
            "apps/x", XINGMING, kind="app", scopes=ROLES["district_admin"], app="apps/x"
        )
        await tree.create_user(
            app, XINGMING, "secretary3", "Secretary", "staff", ["village_secretary"]
        )
    assert "people:read_sensitive" in info.value.message


@pytest.mark.parametrize(
    ("username", "kind", "roles", "password", "field"),
    [
        ("li.na", "staff", ["mayor"], PASSWORD, "roles"),
        ("li.na", "staff", [], PASSWORD, "roles"),
        ("li.na", "robot", ["resident"], PASSWORD, "kind"),
        ("li na", "staff", ["resident"], PASSWORD, "username"),
        ("ab", "staff", ["resident"], PASSWORD, "username"),
        ("li.na", "staff", ["resident"], "short1234", "password"),
        ("li.na.1234", "staff", ["resident"], "LI.NA.1234", "password"),
    ],
)
async def test_bad_input_names_the_field(tree, username, kind, roles, password, field):
    secretary = staff(XINGMING, "village_secretary")
    with pytest.raises(InvalidArgument) as info:
        await tree.create_user(secretary, XINGMING, username, "Li Na", kind, roles, password)
    assert info.value.violations[0].field == field


async def test_a_user_without_password_exists_but_cannot_log_in(tree):
    user = await add_user(tree, XINGMING, "resident1", "resident", password=None)
    assert user.kind is UserKind.STAFF
    with pytest.raises(Unauthenticated):
        await tree.login("resident1", "")
    with pytest.raises(Unauthenticated):
        await tree.login("resident1", PASSWORD)


async def test_users_of_other_tenants_are_not_found(tree):
    user = await add_user(tree, XINGMING, "li.na")
    other = staff(XIANGYANG, "village_secretary")
    for name in (user.name, f"tenants/-/users/{user.id}", user.subject):
        with pytest.raises(NotFound):
            await tree.get_user(other, name)
    # The right id under the wrong tenant is not found either.
    secretary = staff(XINGMING, "village_secretary")
    with pytest.raises(NotFound):
        await tree.get_user(secretary, f"{tenant_name(GRID)}/users/{user.id}")
    with pytest.raises(NotFound):
        await tree.get_user(secretary, "users/user_nope")
    with pytest.raises(InvalidArgument):
        await tree.get_user(secretary, "people/x")


async def test_reading_users_needs_a_scope_except_for_oneself(tree):
    user = await add_user(tree, XINGMING, "resident1", "resident")
    with pytest.raises(PermissionDenied):
        await tree.get_user(staff(XINGMING, "resident"), user.name)
    me = staff(XINGMING, "resident", subject=user.subject)
    assert await tree.get_user(me, user.name) == user


async def test_users_are_listed_by_subtree(tree):
    a = await add_user(tree, XINGMING, "a.user")
    b = await add_user(tree, GRID, "b.user")
    c = await add_user(tree, XIANGYANG, "c.user")
    officer = staff(TOWN, "town_officer")
    everyone, token = await tree.list_users(officer, TOWN)
    assert {u.id for u in everyone} == {a.id, b.id, c.id}
    assert token == ""
    village, _ = await tree.list_users(staff(XINGMING, "district_auditor"), XINGMING)
    assert {u.id for u in village} == {a.id, b.id}
    with pytest.raises(NotFound):
        await tree.list_users(staff(XINGMING, "village_secretary"), XIANGYANG)
    with pytest.raises(PermissionDenied):
        await tree.list_users(staff(XINGMING, "grid_worker"), XINGMING)
    seen, token = [], ""
    while True:
        page, token = await tree.list_users(officer, TOWN, page_size=2, page_token=token)
        seen.extend(u.id for u in page)
        if not token:
            break
    assert seen == sorted(u.id for u in everyone)


async def test_disabling_a_user_stops_login_and_refresh(tree, clock):
    user = await add_user(tree, GRID, "gw1", "grid_worker")
    tokens = await tree.login("gw1", PASSWORD)
    secretary = staff(XINGMING, "village_secretary")
    clock.advance(minutes=1)
    disabled = await tree.disable_user(secretary, user.name)
    assert disabled.disabled and disabled.update_time == T0.replace(minute=1)
    assert (await tree.get_user(secretary, user.name)).disabled
    with pytest.raises(Unauthenticated) as info:
        await tree.login("gw1", PASSWORD)
    assert info.value.reason == "ACCOUNT_DISABLED"
    with pytest.raises(Unauthenticated):
        await tree.refresh(tokens.refresh_token)
    enabled = await tree.enable_user(secretary, user.name)
    assert not enabled.disabled
    await tree.login("gw1", PASSWORD)


async def test_disabling_follows_the_same_walls(tree):
    boss = await add_user(tree, XINGMING, "boss", "village_secretary")
    worker = await add_user(tree, XINGMING, "worker", "grid_worker")
    officer = staff(TOWN, "town_officer")
    with pytest.raises(PermissionDenied):
        await tree.disable_user(officer, boss.name)
    with pytest.raises(NotFound):
        await tree.disable_user(staff(XIANGYANG, "village_secretary"), worker.name)
    with pytest.raises(PermissionDenied):
        await tree.disable_user(staff(XINGMING, "district_auditor"), worker.name)
    me = staff(XINGMING, "village_secretary", subject=boss.subject)
    with pytest.raises(FailedPrecondition):
        await tree.disable_user(me, boss.name)
    assert (await tree.disable_user(me, worker.name)).disabled

"""District IT's administration (issue 9, items 7 and 8), on both stores.

District IT appoints a village's secretary without reading what the secretary
reads, changes and removes tenants, users and apps, re-enables users and resets
passwords; every one of these actions, and every key issued or revoked, lands in the
hash-chained audit log, which district IT reads for its subtree.
"""

from __future__ import annotations

import pytest

from services.empower.domain.audit import AuditEntry, AuditLog
from services.empower.domain.model import Level, UserKind
from services.kit.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
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

ADMIN = staff(DISTRICT, "district_admin", subject="users/district-it")
NEW_PASSWORD = "another long password"


async def entries(audit_log: AuditLog, subject: str = ADMIN.subject) -> list[AuditEntry]:
    page = await audit_log.list_entries(ADMIN, DISTRICT, f'subject = "{subject}"', 1000)
    return list(reversed(page.entries))  # oldest first


async def test_district_it_appoints_a_secretary_and_reads_the_entry(tree, audit_log):
    dongfang = await tree.create_tenant(
        ADMIN, TOWN, "dongfang", "Dongfang Village", Level.VILLAGE, "310114102203"
    )
    secretary = await tree.create_user(
        ADMIN,
        dongfang.path,
        "dongfang.secretary",
        "Dongfang secretary",
        "staff",
        ["village_secretary"],
        PASSWORD,
    )
    assert "people:read_sensitive" in secretary.scopes
    assert (await tree.login("dongfang.secretary", PASSWORD)).token_type == "Bearer"
    created_tenant, created_user = await entries(audit_log)
    assert created_tenant.action == "identity.tenants.create"
    assert created_tenant.records == (dongfang.name,)
    assert created_user.action == "identity.users.create"
    assert created_user.records == (secretary.name,)
    assert "roles=village_secretary" in created_user.fields
    assert "password" in created_user.fields and PASSWORD not in repr(created_user)
    assert (created_user.tenant, created_user.time) == (DISTRICT, T0)
    assert (await audit_log.verify()).ok
    # A village secretary appoints no secretary, and reads no district log.
    with pytest.raises(PermissionDenied):
        await tree.create_user(
            staff(XINGMING, "village_secretary"),
            XINGMING,
            "second.secretary",
            "Second",
            "staff",
            ["village_secretary"],
        )
    with pytest.raises(PermissionDenied):
        await audit_log.list_entries(staff(XINGMING, "village_secretary"), XINGMING)


async def test_users_are_changed_within_the_assignable_roles(tree, audit_log, clock):
    worker = await add_user(tree, GRID, "gw1", "grid_worker")
    clock.advance(minutes=1)
    changed = await tree.update_user(
        ADMIN, worker.name, display_name="Zhang Wei", kind="grid_worker", roles=["carer"]
    )
    assert (changed.display_name, changed.kind, changed.roles) == (
        "Zhang Wei",
        UserKind.GRID_WORKER,
        ("carer",),
    )
    assert changed.update_time == T0.replace(minute=1) and changed.create_time == worker.create_time
    assert await tree.get_user(ADMIN, worker.name) == changed
    [entry] = await entries(audit_log)
    assert entry.action == "identity.users.update" and entry.records == (worker.name,)
    assert entry.fields == ("display_name", "kind=grid_worker", "roles=carer")
    town = staff(TOWN, "town_officer")
    # A town officer manages grid workers but not carers, and grants no secretary.
    with pytest.raises(PermissionDenied):
        await tree.update_user(town, worker.name, display_name="x")
    other = await add_user(tree, GRID, "gw2", "grid_worker")
    with pytest.raises(PermissionDenied):
        await tree.update_user(town, other.name, roles=["village_secretary"])
    with pytest.raises(NotFound):
        await tree.update_user(staff(XIANGYANG, "village_secretary"), other.name, display_name="x")
    for kwargs, field in (
        ({"roles": ["mayor"]}, "user.roles"),
        ({"roles": []}, "user.roles"),
        ({"kind": "robot"}, "user.kind"),
        ({"display_name": " "}, "user.display_name"),
        ({}, "update_mask"),
    ):
        with pytest.raises(InvalidArgument) as info:
            await tree.update_user(ADMIN, other.name, **kwargs)
        assert info.value.violations[0].field == field, kwargs
    assert (await tree.get_user(ADMIN, other.name)).roles == ("grid_worker",)


async def test_district_it_disables_and_re_enables_a_secretary(tree, audit_log):
    secretary = await add_user(tree, XINGMING, "xm.secretary", "village_secretary")
    # Before issue 9.7 this was refused: district IT lacks the secretary's scopes.
    assert (await tree.disable_user(ADMIN, secretary.name)).disabled
    with pytest.raises(Unauthenticated):
        await tree.login("xm.secretary", PASSWORD)
    assert not (await tree.enable_user(ADMIN, secretary.name)).disabled
    await tree.login("xm.secretary", PASSWORD)
    assert [e.action for e in await entries(audit_log)] == [
        "identity.users.disable",
        "identity.users.enable",
    ]


async def test_a_password_reset_clears_the_delay_and_signs_out(tree, audit_log):
    user = await add_user(tree, GRID, "gw1", "grid_worker")
    tokens = await tree.login("gw1", PASSWORD)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await tree.login("gw1", "wrong password!")
    with pytest.raises(Unauthenticated) as info:  # held back: the name must wait
        await tree.login("gw1", PASSWORD)
    assert info.value.reason == "INVALID_CREDENTIALS"
    with pytest.raises(InvalidArgument) as bad:
        await tree.reset_password(ADMIN, user.name, "short")
    assert bad.value.violations[0].field == "password"
    await tree.reset_password(ADMIN, user.name, NEW_PASSWORD)
    with pytest.raises(Unauthenticated):
        await tree.login("gw1", PASSWORD)
    assert (await tree.login("gw1", NEW_PASSWORD)).token_type == "Bearer"
    with pytest.raises(Unauthenticated):
        await tree.refresh(tokens.refresh_token)
    [entry] = await entries(audit_log)
    assert (entry.action, entry.records, entry.fields) == (
        "identity.users.reset_password",
        (user.name,),
        ("password",),
    )
    assert NEW_PASSWORD not in repr(entry)
    me = staff(GRID, "village_secretary", subject=user.subject)
    with pytest.raises(FailedPrecondition):
        await tree.reset_password(me, user.name, NEW_PASSWORD + "!")
    with pytest.raises(NotFound):
        await tree.reset_password(staff(XIANGYANG, "village_secretary"), user.name, NEW_PASSWORD)


async def test_a_deleted_user_is_gone_with_their_sessions(tree, audit_log):
    user = await add_user(tree, XINGMING, "leaver", "grid_worker")
    tokens = await tree.login("leaver", PASSWORD)
    with pytest.raises(NotFound):
        await tree.delete_user(staff(XIANGYANG, "village_secretary"), user.name)
    with pytest.raises(FailedPrecondition):
        await tree.delete_user(
            staff(XINGMING, "village_secretary", subject=user.subject), user.name
        )
    await tree.delete_user(ADMIN, user.name)
    with pytest.raises(NotFound):
        await tree.get_user(ADMIN, user.name)
    with pytest.raises(Unauthenticated):
        await tree.login("leaver", PASSWORD)
    with pytest.raises(Unauthenticated):
        await tree.refresh(tokens.refresh_token)
    with pytest.raises(NotFound):
        await tree.delete_user(ADMIN, user.name)
    # The username is free again.
    await add_user(tree, XINGMING, "leaver", "grid_worker")
    [entry] = await entries(audit_log)
    assert entry.action == "identity.users.delete" and "username=leaver" in entry.fields


async def test_apps_are_changed_and_deleted_with_their_keys(tree, audit_log):
    app, issued = await tree.create_app(ADMIN, XINGMING, "Noticeboard", ["events:read"], 600)
    changed = await tree.update_app(
        ADMIN,
        app.name,
        display_name="Board",
        scopes=["events:read", "map:read"],
        quota_per_minute=60,
    )
    assert (changed.display_name, changed.scopes, changed.quota_per_minute) == (
        "Board",
        {"events:read", "map:read"},
        60,
    )
    with pytest.raises(PermissionDenied):
        await tree.update_app(ADMIN, app.name, scopes=["people:read_sensitive"])
    for kwargs, field in (
        ({"quota_per_minute": 0}, "app.quota_per_minute"),
        ({"scopes": ["root"]}, "app.scopes"),
        ({"scopes": []}, "app.scopes"),
        ({"display_name": ""}, "app.display_name"),
        ({}, "update_mask"),
    ):
        with pytest.raises(InvalidArgument) as info:
            await tree.update_app(ADMIN, app.name, **kwargs)
        assert info.value.violations[0].field == field, kwargs
    with pytest.raises(NotFound):
        await tree.update_app(staff(XIANGYANG, "village_secretary"), app.name, display_name="x")
    second = await tree.create_api_key(ADMIN, app.name)
    await tree.revoke_api_key(ADMIN, app.name, second.key_id)
    with pytest.raises(NotFound):
        await tree.delete_app(staff(XIANGYANG, "village_secretary"), app.name)
    await tree.delete_app(ADMIN, app.name)
    with pytest.raises(NotFound):
        await tree.get_app(ADMIN, app.name)
    with pytest.raises(Unauthenticated):
        await tree.authenticate_api_key(issued.api_key)
    assert [(e.action, e.records[0]) for e in await entries(audit_log)] == [
        ("identity.apps.create", app.name),
        ("identity.api_keys.create", issued.name),
        ("identity.apps.update", app.name),
        ("identity.api_keys.create", second.name),
        ("identity.api_keys.revoke", second.name),
        ("identity.apps.delete", app.name),
    ]


async def test_tenants_are_renamed_and_empty_ones_deleted(tree, audit_log):
    renamed = await tree.update_tenant(ADMIN, XIANGYANG, display_name="Xiangyang Village")
    assert renamed.display_name == "Xiangyang Village" and renamed.admin_code == "310114102202"
    recoded = await tree.update_tenant(ADMIN, XIANGYANG, admin_code="310114102209")
    assert (await tree.get_tenant(ADMIN, XIANGYANG)).admin_code == recoded.admin_code
    with pytest.raises(InvalidArgument) as info:
        await tree.update_tenant(ADMIN, XIANGYANG, admin_code="12")
    assert info.value.violations[0].field == "tenant.admin_code"
    with pytest.raises(NotFound):
        await tree.update_tenant(staff(XINGMING, "district_admin"), XIANGYANG, display_name="x")
    with pytest.raises(PermissionDenied):
        await tree.update_tenant(staff(DISTRICT, "town_officer"), XIANGYANG, display_name="x")
    # A node with children, users or apps stays.
    with pytest.raises(FailedPrecondition) as busy:
        await tree.delete_tenant(ADMIN, XINGMING)
    assert "child nodes" in busy.value.message
    await add_user(tree, XIANGYANG, "xy.worker", "grid_worker")
    with pytest.raises(FailedPrecondition) as busy:
        await tree.delete_tenant(ADMIN, XIANGYANG)
    assert "users" in busy.value.message
    with pytest.raises(FailedPrecondition):
        await tree.delete_tenant(ADMIN, DISTRICT)  # one's own node
    await tree.delete_tenant(ADMIN, GRID)
    with pytest.raises(NotFound):
        await tree.get_tenant(ADMIN, GRID)
    with pytest.raises(NotFound):
        await tree.delete_tenant(ADMIN, GRID)
    assert [(e.action, e.records[0]) for e in await entries(audit_log)] == [
        ("identity.tenants.update", tenant_name(XIANGYANG)),
        ("identity.tenants.update", tenant_name(XIANGYANG)),
        ("identity.tenants.delete", tenant_name(GRID)),
    ]


async def test_a_requested_signing_key_rotation_is_audited(tree, audit_log):
    key = await tree.rotate_signing_key(ADMIN)
    await tree.rotate_signing_key()  # the platform's own schedule: not an action of anyone
    [entry] = await entries(audit_log)
    assert entry.action == "identity.signing_keys.rotate"
    assert entry.records == (f"signingKeys/{key.kid}",)
    assert (await audit_log.verify()).ok

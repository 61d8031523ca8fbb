"""A password someone else chose must be changed before the account gets any data.

The probe: district IT, which holds no `people:read_sensitive`, appointed a secretary
with a password it chose, signed in as her and read ID numbers in clear. Now an
account whose password an administrator set (at creation or by a reset) signs in to
a token that can only change the password; the change is the account's own, audited.
"""

from __future__ import annotations

import pytest

from services.empower.domain.identity import (
    PASSWORD_CHANGE_REQUIRED,
    PASSWORD_CHANGE_SCOPE,
    IdentityDirectory,
)
from services.empower.domain.model import TokenPair
from services.empower.domain.tokens import principal_from_claims, verify_access_token
from services.kit.errors import InvalidArgument, PermissionDenied, Unauthenticated
from services.kit.principal import Principal
from services.kit.tenancy import ALL_TENANTS

from .conftest import DISTRICT, PASSWORD, XINGMING, add_user, staff
from .test_admin import entries

ADMIN = staff(DISTRICT, "district_admin", subject="users/district-it")
CHOSEN = "chosen by district it"
OWN = "the secretary's own passphrase"


async def principal_of(directory: IdentityDirectory, tokens: TokenPair, clock) -> Principal:
    claims = verify_access_token(tokens.access_token, await directory.jwks(), now=clock.now)
    return principal_from_claims(claims)


async def appoint(tree: IdentityDirectory):
    return await tree.create_user(
        ADMIN, XINGMING, "shadow.sec", "Shadow", "staff", ["village_secretary"], CHOSEN
    )


async def test_an_appointed_password_signs_in_only_to_change_it(tree, clock, audit_log):
    user = await appoint(tree)
    assert user.password_change_required
    first = await tree.login("shadow.sec", CHOSEN)
    assert first.password_change_required and first.refresh_token == ""
    limited = await principal_of(tree, first, clock)
    assert (limited.subject, limited.tenant, limited.kind) == (user.subject, XINGMING, "user")
    assert limited.scopes == {PASSWORD_CHANGE_SCOPE} and limited.roles == ()
    assert not limited.has_scope("people:read_sensitive")
    # The chosen password works again, still only for the change.
    assert (await tree.login("shadow.sec", CHOSEN)).password_change_required

    with pytest.raises(InvalidArgument) as wrong:
        await tree.change_password(limited, "not the password", OWN)
    assert [v.field for v in wrong.value.violations] == ["current_password"]
    for new, problem in ((CHOSEN, "differ"), ("short", "at least")):
        with pytest.raises(InvalidArgument) as refused:
            await tree.change_password(limited, CHOSEN, new)
        assert [v.field for v in refused.value.violations] == ["new_password"]
        assert problem in refused.value.violations[0].description

    changed = await tree.change_password(limited, CHOSEN, OWN)
    assert not changed.password_change_required and changed.refresh_token.startswith("grr_")
    full = await principal_of(tree, changed, clock)
    assert "people:read_sensitive" in full.scopes and full.roles == ("village_secretary",)
    # District IT's password is gone; the secretary's own signs in with every scope.
    with pytest.raises(Unauthenticated):
        await tree.login("shadow.sec", CHOSEN)
    again = await tree.login("shadow.sec", OWN)
    assert not again.password_change_required and again.refresh_token
    # The change is the secretary's own entry in the audit chain, without the password.
    (entry,) = await entries(audit_log, subject=user.subject)
    assert (entry.action, entry.records, entry.fields) == (
        "identity.users.change_password",
        (user.name,),
        ("password",),
    )
    assert CHOSEN not in repr(entry) and OWN not in repr(entry)


async def test_a_reset_password_must_be_changed_too_and_old_sessions_end(tree, clock):
    user = await add_user(tree, XINGMING, "li.na", "village_secretary")
    assert not user.password_change_required  # the platform's installer set it
    session = await tree.login("li.na", PASSWORD)
    assert not session.password_change_required
    await tree.reset_password(ADMIN, user.name, CHOSEN)
    with pytest.raises(Unauthenticated):
        await tree.refresh(session.refresh_token)
    limited = await tree.login("li.na", CHOSEN)
    assert limited.password_change_required
    principal = await principal_of(tree, limited, clock)
    full = await tree.change_password(principal, CHOSEN, OWN)
    assert (await tree.refresh(full.refresh_token)).access_token


async def test_a_refresh_token_gives_nothing_while_a_change_is_required(tree, store, clock):
    user = await add_user(tree, XINGMING, "li.na", "village_secretary")
    session = await tree.login("li.na", PASSWORD)
    (credentials,) = await store.credentials(ALL_TENANTS, "li.na")
    await store.set_password(
        ALL_TENANTS, user.id, credentials.password_hash, clock.now, change_required=True
    )
    with pytest.raises(Unauthenticated) as refused:
        await tree.refresh(session.refresh_token)
    assert refused.value.reason == PASSWORD_CHANGE_REQUIRED


async def test_only_a_signed_in_person_changes_a_password(tree):
    app = Principal(subject="apps/a1", tenant=XINGMING, kind="app", scopes=frozenset())
    with pytest.raises(PermissionDenied):
        await tree.change_password(app, PASSWORD, OWN)
    gone = Principal(subject="users/nobody", tenant=XINGMING, kind="user")
    with pytest.raises(Unauthenticated):
        await tree.change_password(gone, PASSWORD, OWN)

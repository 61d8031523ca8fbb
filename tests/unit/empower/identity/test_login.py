"""Login: one answer for every wrong guess, lock-out after five, rehash on the way."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.tokens import principal_from_claims, verify_access_token
from services.kit.errors import Unauthenticated
from services.kit.tenancy import ALL_TENANTS

from .conftest import GRID, PASSWORD, T0, XINGMING, add_user, cheap_hasher, staff


class CountingHasher(PasswordHasher):
    """Real argon2 that counts verifications, to see the work done for unknown users."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash, password):
        self.verified += 1
        return super().verify(hash, password)


async def failed(directory: IdentityDirectory, username: str, password: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        await directory.login(username, password)
    return info.value


async def test_login_issues_tokens_for_the_users_roles(tree, clock):
    user = await add_user(tree, GRID, "gw1", "grid_worker")
    tokens = await tree.login(" GW1 ", PASSWORD)
    assert (tokens.token_type, tokens.expires_in) == ("Bearer", 900)
    assert tokens.refresh_token.startswith("grr_")
    claims = verify_access_token(tokens.access_token, await tree.jwks(), now=clock.now)
    principal = principal_from_claims(claims)
    assert (principal.subject, principal.tenant, principal.kind) == (user.subject, GRID, "user")
    assert principal.roles == ("grid_worker",)
    assert principal.scopes == {"events:read", "events:write", "map:read", "people:read"}
    assert principal.scopes == user.scopes


async def test_unknown_users_and_wrong_passwords_look_alike(tree, store, clock):
    await add_user(tree, XINGMING, "li.na")
    hasher = CountingHasher()
    directory = IdentityDirectory(store, clock=clock, hasher=hasher)
    unknown = await failed(directory, "nobody", PASSWORD)
    assert hasher.verified == 1  # a dummy hash was checked all the same
    wrong = await failed(directory, "li.na", "wrong password")
    assert hasher.verified == 2
    assert (unknown.message, unknown.reason) == (wrong.message, wrong.reason)
    assert unknown.reason == "INVALID_CREDENTIALS"
    assert "locked" not in wrong.message
    # Even a username that could never exist costs one verification.
    await failed(directory, "x", PASSWORD)
    assert hasher.verified == 3


async def test_five_failures_in_a_row_lock_the_account_for_fifteen_minutes(tree, clock):
    await add_user(tree, XINGMING, "li.na")
    for _ in range(4):
        assert (await failed(tree, "li.na", "wrong password")).reason == "INVALID_CREDENTIALS"
    fifth = await failed(tree, "li.na", "wrong password")
    assert fifth.reason == "ACCOUNT_LOCKED"
    assert "locked" in fifth.message
    assert fifth.metadata["locked_until"] == (T0 + timedelta(minutes=15)).isoformat()
    # The right password does not help while the lock lasts.
    clock.advance(minutes=14, seconds=59)
    assert (await failed(tree, "li.na", PASSWORD)).reason == "ACCOUNT_LOCKED"
    clock.advance(seconds=1)
    await tree.login("li.na", PASSWORD)


async def test_concurrent_guesses_are_all_counted(tree):
    await add_user(tree, XINGMING, "li.na")
    guesses = [tree.login("li.na", f"wrong password {i}") for i in range(5)]
    answers = await asyncio.gather(*guesses, return_exceptions=True)
    assert all(isinstance(a, Unauthenticated) for a in answers)
    assert [a.reason for a in answers].count("ACCOUNT_LOCKED") >= 1
    assert (await failed(tree, "li.na", PASSWORD)).reason == "ACCOUNT_LOCKED"


async def test_a_success_clears_the_count(tree, store):
    await add_user(tree, XINGMING, "li.na")
    for _ in range(4):
        await failed(tree, "li.na", "wrong password")
    await tree.login("li.na", PASSWORD)
    assert (await store.credentials(ALL_TENANTS, "li.na")).failed_logins == 0
    for _ in range(4):
        await failed(tree, "li.na", "wrong password")
    await tree.login("li.na", PASSWORD)


async def test_after_a_lock_the_count_starts_again(tree, clock):
    await add_user(tree, XINGMING, "li.na")
    for _ in range(5):
        await failed(tree, "li.na", "wrong password")
    clock.advance(minutes=15)
    for _ in range(4):
        assert (await failed(tree, "li.na", "wrong password")).reason == "INVALID_CREDENTIALS"
    assert (await failed(tree, "li.na", "wrong password")).reason == "ACCOUNT_LOCKED"


async def test_a_disabled_user_cannot_log_in(tree):
    user = await add_user(tree, XINGMING, "li.na")
    await tree.disable_user(staff(XINGMING, "village_secretary"), user.name)
    assert (await failed(tree, "li.na", PASSWORD)).reason == "ACCOUNT_DISABLED"
    # A wrong password still gets the answer that reveals nothing.
    assert (await failed(tree, "li.na", "wrong password")).reason == "INVALID_CREDENTIALS"


async def test_an_old_hash_is_replaced_at_login(tree, store, clock):
    await add_user(tree, XINGMING, "li.na")
    before = (await store.credentials(ALL_TENANTS, "li.na")).password_hash
    assert before.startswith("$argon2id$") and ",t=1," in before
    stronger = IdentityDirectory(store, clock=clock, hasher=cheap_hasher(time_cost=2))
    await stronger.login("li.na", PASSWORD)
    after = (await store.credentials(ALL_TENANTS, "li.na")).password_hash
    assert ",t=2," in after and after != before
    await stronger.login("li.na", PASSWORD)
    assert (await store.credentials(ALL_TENANTS, "li.na")).password_hash == after

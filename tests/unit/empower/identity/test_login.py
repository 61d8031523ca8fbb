"""Login: one answer for every failure, growing delays instead of a lock, rehash on the way."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.signin_throttle import SOURCE_POLICY
from services.empower.domain.tokens import principal_from_claims, verify_access_token
from services.kit.errors import Unauthenticated
from services.kit.tenancy import ALL_TENANTS

from .conftest import GRID, PASSWORD, XINGMING, add_user, cheap_hasher, staff


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
    assert principal.scopes == {
        "events:read",
        "events:write",
        "events:handle",
        "map:read",
        "people:read",
        "command:read",
        "command:dispatch",
        "forms:write",
    }
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


async def test_no_one_can_lock_an_account_the_owner_waits_seconds_not_minutes(tree, clock):
    await add_user(tree, XINGMING, "li.na")
    for _ in range(3):  # free failures
        assert (await failed(tree, "li.na", "wrong password")).reason == "INVALID_CREDENTIALS"
    clock.advance(milliseconds=1)
    # The fourth failure asks for a second's wait; within it even the right password
    # gets the one answer for every failure, and is not checked.
    await failed(tree, "li.na", "wrong password")
    assert (await failed(tree, "li.na", PASSWORD)).reason == "INVALID_CREDENTIALS"
    clock.advance(seconds=1)
    await tree.login("li.na", PASSWORD)  # no lock: the owner is in after a second


async def test_a_locked_looking_known_account_and_an_unknown_name_answer_alike(tree, clock):
    await add_user(tree, XINGMING, "li.na")
    answers = {}
    for name in ("li.na", "no.such.user"):
        for _ in range(6):
            await failed(tree, name, "wrong password")
        answers[name] = await failed(tree, name, PASSWORD if name == "li.na" else "x")
    known, unknown = answers["li.na"], answers["no.such.user"]
    assert (known.code, known.message, known.reason, known.metadata) == (
        unknown.code,
        unknown.message,
        unknown.reason,
        unknown.metadata,
    )
    assert "locked" not in known.message


async def test_concurrent_guesses_past_the_free_ones_are_not_all_checked(tree, store, clock):
    hasher = CountingHasher()
    await add_user(tree, XINGMING, "li.na")
    for _ in range(3):
        await failed(tree, "li.na", "wrong password")
    counting = IdentityDirectory(store, clock=clock, hasher=hasher, throttle=tree.throttle)
    guesses = [counting.login("li.na", f"wrong password {i}") for i in range(10)]
    answers = await asyncio.gather(*guesses, return_exceptions=True)
    assert all(isinstance(a, Unauthenticated) for a in answers)
    # Only the first one was checked against the account, and it could not sign in;
    # the others waited about as long as a check takes, without the work (a flood of
    # held-back guesses must not fill the queue of password checks).
    assert hasher.verified == 1
    with pytest.raises(Unauthenticated):
        await counting.login("li.na", PASSWORD)


async def test_one_source_cannot_spread_guesses_over_many_names(tree, clock):
    await add_user(tree, XINGMING, "li.na")
    for i in range(SOURCE_POLICY.free + 1):  # one guess per name: no name's count grows
        await failed_from(tree, f"guess{i}", "198.51.100.9")
    # The address has spent its free failures: even a right password from it waits.
    assert (await failed_from(tree, "li.na", "198.51.100.9", PASSWORD)).reason == (
        "INVALID_CREDENTIALS"
    )
    # Another address is not held back by it, and the wait is a second, not a lock.
    await tree.login("li.na", PASSWORD, "203.0.113.7")
    clock.advance(seconds=1)
    await tree.login("li.na", PASSWORD, "198.51.100.9")


async def failed_from(
    directory: IdentityDirectory, username: str, source: str, password: str = "wrong"
) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        await directory.login(username, password, source)
    return info.value


async def test_a_success_clears_the_names_count(tree, clock):
    await add_user(tree, XINGMING, "li.na")
    for _ in range(3):
        await failed(tree, "li.na", "wrong password")
    await tree.login("li.na", PASSWORD)
    for _ in range(3):
        await failed(tree, "li.na", "wrong password")
    await tree.login("li.na", PASSWORD)


async def test_a_disabled_user_cannot_log_in(tree):
    user = await add_user(tree, XINGMING, "li.na")
    await tree.disable_user(staff(XINGMING, "village_secretary"), user.name)
    assert (await failed(tree, "li.na", PASSWORD)).reason == "ACCOUNT_DISABLED"
    # A wrong password still gets the answer that reveals nothing.
    assert (await failed(tree, "li.na", "wrong password")).reason == "INVALID_CREDENTIALS"


async def test_an_old_hash_is_replaced_at_login(tree, store, clock):
    await add_user(tree, XINGMING, "li.na")
    before = (await store.credentials(ALL_TENANTS, "li.na"))[0].password_hash
    assert before.startswith("$argon2id$") and ",t=1," in before
    stronger = IdentityDirectory(store, clock=clock, hasher=cheap_hasher(time_cost=2))
    await stronger.login("li.na", PASSWORD)
    after = (await store.credentials(ALL_TENANTS, "li.na"))[0].password_hash
    assert ",t=2," in after and after != before
    await stronger.login("li.na", PASSWORD)
    assert (await store.credentials(ALL_TENANTS, "li.na"))[0].password_hash == after

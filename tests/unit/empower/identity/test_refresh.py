"""Refresh tokens: used once, rotated, and a replay signs the whole login out."""

from __future__ import annotations

import asyncio

import pytest

from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.model import TokenPair
from services.empower.domain.tokens import hash_secret, parse_refresh_token
from services.kit.errors import Unauthenticated

from .conftest import PASSWORD, XINGMING, add_user


async def refused(directory: IdentityDirectory, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        await directory.refresh(token)
    return info.value


@pytest.fixture
async def signed_in(tree):
    await add_user(tree, XINGMING, "li.na", "village_secretary")
    return await tree.login("li.na", PASSWORD)


async def test_the_token_is_opaque_and_only_its_hash_is_kept(tree, store, signed_in):
    token_id, secret = parse_refresh_token(signed_in.refresh_token)
    assert signed_in.refresh_token == f"grr_{token_id}_{secret}"
    assert len(secret) >= 43
    record = await store.get_refresh_token(token_id)
    assert record.token_hash == hash_secret(secret)
    assert secret not in repr(record) and record.family_id == token_id
    assert (record.expire_time - record.create_time).days == 30


async def test_a_refresh_rotates_the_token(tree, clock, signed_in):
    clock.advance(minutes=10)
    second = await tree.refresh(signed_in.refresh_token)
    assert second.refresh_token != signed_in.refresh_token
    assert second.access_token != signed_in.access_token
    clock.advance(minutes=10)
    third = await tree.refresh(second.refresh_token)
    assert isinstance(third, TokenPair)


async def test_a_replayed_token_revokes_the_whole_family(tree, signed_in):
    second = await tree.refresh(signed_in.refresh_token)
    other_login = await tree.login("li.na", PASSWORD)
    replay = await refused(tree, signed_in.refresh_token)
    assert replay.reason == "TOKEN_REUSED"
    # The descendant issued to whoever refreshed first is dead too ...
    assert (await refused(tree, second.refresh_token)).reason == "TOKEN_REVOKED"
    # ... while another login of the same user is a family of its own.
    await tree.refresh(other_login.refresh_token)


async def test_two_refreshes_racing_with_one_token_are_a_replay(tree, signed_in):
    results = await asyncio.gather(
        tree.refresh(signed_in.refresh_token),
        tree.refresh(signed_in.refresh_token),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, TokenPair)]
    losers = [r for r in results if isinstance(r, Unauthenticated)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].reason == "TOKEN_REUSED"
    await refused(tree, winners[0].refresh_token)


async def test_logout_revokes_the_family(tree, signed_in):
    second = await tree.refresh(signed_in.refresh_token)
    await tree.logout(second.refresh_token)
    assert (await refused(tree, second.refresh_token)).reason == "TOKEN_REVOKED"
    await tree.logout(second.refresh_token)  # twice is harmless
    with pytest.raises(Unauthenticated):
        await tree.logout("grr_not_a_token")


async def test_expired_malformed_and_guessed_tokens_are_refused(tree, clock, signed_in):
    for text in ("", "grr_", "grk_01jd0000000000000000000000_" + "a" * 43, "Bearer x"):
        assert (await refused(tree, text)).reason == "INVALID_TOKEN"
    token_id, secret = parse_refresh_token(signed_in.refresh_token)
    guessed = f"grr_{token_id}_{'A' * len(secret)}"
    assert (await refused(tree, guessed)).reason == "INVALID_TOKEN"
    # A wrong guess does not sign the real holder out.
    clock.advance(days=29, hours=23)
    renewed = await tree.refresh(signed_in.refresh_token)
    clock.advance(days=30)
    assert (await refused(tree, renewed.refresh_token)).reason == "TOKEN_EXPIRED"

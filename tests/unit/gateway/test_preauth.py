"""Sources that keep failing to authenticate are refused before authentication."""

from __future__ import annotations

import hashlib

import pytest

from gateway.security.authenticator import Authenticator, KeyRecord
from gateway.security.preauth import AuthenticationFailures
from gateway.security.ratelimit import Limit, RateLimiter
from services.kit.errors import Unauthenticated


async def test_a_source_is_refused_once_its_failures_are_spent_and_others_are_not():
    failures = AuthenticationFailures(RateLimiter(None), per_minute=60)
    burst = Limit.per_minute_with_burst("", 60).burst
    answers = [(await failures.failed("198.51.100.9")).allowed for _ in range(burst + 1)]
    assert answers == [True] * burst + [False]
    refused = failures.refused("198.51.100.9")
    assert refused is not None and not refused.allowed and refused.retry_after_seconds >= 1
    assert failures.refused("203.0.113.7") is None
    assert (await failures.failed("203.0.113.7")).allowed


async def test_the_refusal_ends_when_its_wait_is_over():
    failures = AuthenticationFailures(RateLimiter(None), per_minute=60)
    failures._remember("198.51.100.9", 0)
    assert failures.refused("198.51.100.9") is None


def test_the_memory_of_refused_sources_is_bounded():
    failures = AuthenticationFailures(RateLimiter(None), per_minute=60, max_sources=100)
    for i in range(1000):
        failures._remember(f"10.0.{i // 256}.{i % 256}", 60)
        assert len(failures._refused_until) <= 100


async def test_the_key_cache_keeps_at_most_its_size_and_the_recently_used():
    lookups: list[str] = []
    known = KeyRecord(
        secret_sha256=hashlib.sha256(b"secret").hexdigest(),
        revoked=False,
        app="tenants/sh-a/apps/app1",
        tenant="sh/a",
        scopes=frozenset({"events:read"}),
        quota_per_minute=60,
    )

    async def keys(key_id: str) -> KeyRecord | None:
        lookups.append(key_id)
        return known if key_id == "good" else None

    async def jwks() -> str:
        return '{"keys": []}'

    auth = Authenticator(jwks, keys, key_cache_seconds=60, key_cache_size=50)
    await auth.from_api_key("grk_good_secret")
    for i in range(400):
        with pytest.raises(Unauthenticated):
            await auth.from_api_key(f"grk_invented{i}_secret")
        if i % 10 == 0:
            await auth.from_api_key("grk_good_secret")  # in use: stays cached
        assert auth.cached_key_ids <= 50
    assert lookups.count("good") == 1

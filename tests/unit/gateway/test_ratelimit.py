"""Token buckets in the real Redis, shared by limiter instances, and what an outage does."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from gateway.security.ratelimit import Limit, LocalBuckets, RateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_client():
    client = Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        await client.ping()
    except OSError as exc:  # pragma: no cover - CI starts Redis; say so when it did not
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}", pytrace=False)
    yield client
    await client.aclose()


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_two_replicas_share_one_bucket(redis_client):
    """Two gateways (two limiters) draw from the same bucket: 10 allowed in all, not 20."""
    prefix = f"grassroots:rl:{uuid.uuid4().hex}:"
    one = RateLimiter(Redis.from_url(REDIS_URL), prefix=prefix)
    two = RateLimiter(Redis.from_url(REDIS_URL), prefix=prefix)
    limit = Limit("app:a", per_minute=60, burst=10)
    try:
        decisions = await asyncio.gather(*(r.check(limit) for r in [one, two] * 10))
        allowed = [d for d in decisions if d.allowed]
        refused = [d for d in decisions if not d.allowed]
        assert len(allowed) == 10
        assert refused and all(d.retry_after_seconds >= 1 for d in refused)
        assert not any(d.degraded for d in decisions)
        assert await redis_client.exists(prefix + "app:a")
    finally:
        await one.close()
        await two.close()


async def test_a_request_refused_by_the_tenant_does_not_spend_the_apps_token(redis_client):
    prefix = f"grassroots:rl:{uuid.uuid4().hex}:"
    limiter = RateLimiter(Redis.from_url(REDIS_URL), prefix=prefix)
    app, tenant = Limit("app", 60, 5), Limit("tenant", 60, 1)
    try:
        assert (await limiter.check(app, tenant)).allowed
        assert not (await limiter.check(app, tenant)).allowed
        tokens = float(await redis_client.hget(prefix + "app", "tokens"))
        assert 3.9 < tokens < 4.1  # one spent by the allowed call, none by the refused one
    finally:
        await limiter.close()


async def test_tokens_come_back_at_the_configured_rate(redis_client):
    prefix = f"grassroots:rl:{uuid.uuid4().hex}:"
    limiter = RateLimiter(Redis.from_url(REDIS_URL), prefix=prefix)
    limit = Limit("fast", per_minute=600, burst=1)  # one token every 100 ms
    try:
        assert (await limiter.check(limit)).allowed
        assert not (await limiter.check(limit)).allowed
        await asyncio.sleep(0.25)
        assert (await limiter.check(limit)).allowed
    finally:
        await limiter.close()


async def test_redis_outage_falls_back_to_local_limits_not_to_none_or_all():
    """A dead Redis: requests still pass within the limit, and the limit still holds."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    limiter = RateLimiter(dead, retry_after_outage_seconds=30)
    limit = Limit(_key(), per_minute=60, burst=3)
    try:
        decisions = [await limiter.check(limit) for _ in range(5)]
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        assert all(d.degraded for d in decisions)
        assert decisions[-1].retry_after_seconds >= 1
    finally:
        await limiter.close()


async def test_limiter_returns_to_redis_after_the_outage_window(redis_client):
    prefix = f"grassroots:rl:{uuid.uuid4().hex}:"
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    limiter = RateLimiter(dead, prefix=prefix, retry_after_outage_seconds=0.2)
    limit = Limit("back", 60, 5)
    try:
        assert (await limiter.check(limit)).degraded
        await dead.aclose()
        limiter.redis = Redis.from_url(REDIS_URL)  # Redis is back
        assert (await limiter.check(limit)).degraded  # still inside the outage window
        await asyncio.sleep(0.25)
        decision = await limiter.check(limit)
        assert decision.allowed and not decision.degraded
        assert await redis_client.exists(prefix + "back")
    finally:
        await limiter.close()


def test_local_buckets_refuse_past_the_burst_and_refill():
    import time

    buckets = LocalBuckets()
    limit = Limit("x", per_minute=600, burst=2)  # one token every 100 ms
    assert buckets.check((limit,)).allowed
    assert buckets.check((limit,)).allowed
    refused = buckets.check((limit,))
    assert not refused.allowed and refused.retry_after_seconds == 1
    time.sleep(0.15)
    assert buckets.check((limit,)).allowed

"""An app's quota is enforced with 429 and Retry-After, in buckets kept in Redis, so a
second gateway replica refuses the same app at once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import httpx
import pytest
from security_world import VILLAGE_A, A, AppKey, B, World, create_app

from devstack.stack import Stack, free_port
from gateway.security.ratelimit import Limit

QUOTA_PER_MINUTE = 5
PREFIX = "grassroots:rl:"


@pytest.fixture(scope="module")
def limited_app(world: World) -> AppKey:
    app = create_app(
        world.client, world.a_super, A, ["events:read"], quota=QUOTA_PER_MINUTE, name="Quota 5"
    )
    world.remember(app.key)
    return app


@pytest.fixture(scope="module")
def second_replica(world: World) -> Iterator[str]:
    """Another gateway process in front of the same components and the same Redis."""
    config = dataclasses.replace(world.stack.config, gateway_port=free_port())
    replica = Stack(config)
    replica.start("gateway")
    try:
        deadline = time.monotonic() + 30
        while not replica.gateway_ready():
            replica.check_alive()
            assert time.monotonic() < deadline, "the second gateway did not become ready"
            time.sleep(0.2)
        yield config.gateway_url
    finally:
        replica.stop_all()


def test_a_burst_beyond_the_quota_gets_429_with_retry_after(world, limited_app, redis_client):
    burst = Limit.per_minute_with_burst("", QUOTA_PER_MINUTE).burst
    responses = [
        world.client.get(
            f"/v1/tenants/{A}/events", params={"page_size": 1}, headers=limited_app.headers
        )
        for _ in range(burst + 5)
    ]
    codes = [r.status_code for r in responses]
    assert all(200 <= c < 300 for c in codes[:burst]), codes
    assert set(codes[burst:]) == {429}, codes
    refused = responses[burst]
    retry_after = refused.headers.get("Retry-After", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, refused.headers
    # A token every 12 s at 5 a minute: the wait it names is about that long.
    assert int(retry_after) <= 60 // QUOTA_PER_MINUTE + 1
    assert refused.json()["error"]["reason"] == "RATE_LIMITED"
    # The bucket is in Redis, keyed by the app, beside the tenant's bucket.
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{PREFIX}*", count=1000)}
    app_buckets = [k for k in keys if k.startswith(f"{PREFIX}sub:") and limited_app.app_id in k]
    assert app_buckets, sorted(keys)[:20]
    assert f"{PREFIX}tenant:{VILLAGE_A}" in keys
    bucket = redis_client.hgetall(app_buckets[0])
    assert float(bucket[b"tokens"]) < 1
    assert redis_client.pttl(app_buckets[0]) > 0, "buckets must expire"


def test_reading_one_event_is_limited_as_every_route_is(world):
    # GET of one event is answered past FastAPI's routing (gateway/fast_routes.py):
    # the app's bucket holds there all the same.
    reader = create_app(
        world.client, world.b_super, B, ["events:read"], quota=QUOTA_PER_MINUTE, name="Reads 5"
    )
    world.remember(reader.key)
    burst = Limit.per_minute_with_burst("", QUOTA_PER_MINUTE).burst
    url = f"/v1/tenants/{B}/events/{world.b.event_id}"
    codes = [world.client.get(url, headers=reader.headers).status_code for _ in range(burst + 3)]
    assert codes == [200] * burst + [429] * 3, codes


def test_another_replica_shares_the_bucket(world, limited_app, second_replica):
    # Spend the bucket through the first gateway (again, if tokens came back since);
    # the second one has never seen this key and refuses it all the same.
    first = world.client
    for _ in range(QUOTA_PER_MINUTE + 1):
        if first.get("/v1/me", headers=limited_app.headers).status_code == 429:
            break
    else:
        pytest.fail("the first gateway never refused the app")
    with httpx.Client(base_url=second_replica, timeout=10) as other:
        response = other.get(
            f"/v1/tenants/{A}/events", params={"page_size": 1}, headers=limited_app.headers
        )
        assert response.status_code == 429, response.text
        assert int(response.headers["Retry-After"]) >= 1
        # A caller with its own bucket is served by that replica.
        fine = other.get("/v1/me", headers=world.fuzzer.headers)
        assert fine.status_code == 200, fine.text

"""The Idempotency-Key replay store: shared by replicas through Redis, kept in memory without it."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from gateway import idempotency
from gateway.errors import ApiError
from gateway.idempotency import Kept, ReplayStore, applies, parse_key

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis():
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_two_replicas_share_a_slot_through_redis(redis):
    first, second = ReplayStore(redis), ReplayStore(redis)
    slot = f"idem:test:{uuid.uuid4().hex}"
    assert await first.claim(slot, "fp") is None
    pending = await second.claim(slot, "fp")
    assert pending is not None and pending.status == 0  # still running: 409 for the retry
    await first.keep(slot, Kept("fp", 201, [("location", "/v1/x")], "e30="))
    kept = await second.claim(slot, "fp")
    assert kept == Kept("fp", 201, [["location", "/v1/x"]], "e30=")  # type: ignore[list-item]
    await first.release(slot)
    assert await second.claim(slot, "fp") is None


async def test_without_redis_a_failed_first_request_frees_the_key():
    store = ReplayStore(None)
    assert await store.claim("idem:a", "fp") is None
    assert (await store.claim("idem:a", "fp")).status == 0  # type: ignore[union-attr]
    await store.release("idem:a")
    assert await store.claim("idem:a", "fp") is None


async def test_a_redis_that_does_not_answer_falls_back_to_memory():
    store = ReplayStore(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    assert await store.claim("idem:b", "fp") is None
    await store.keep("idem:b", Kept("fp", 201, [], ""))
    assert (await store.claim("idem:b", "fp")).status == 201  # type: ignore[union-attr]
    await store.redis.aclose()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/tenants/sh-jiading/children", True),
        ("POST", "/v1/tenants/sh-jiading/apps/app_1/apiKeys", True),
        ("POST", "/v1/tenants/sh-jiading/events/ev_1/comments", True),
        ("POST", "/v1/tenants/sh-jiading/events", False),  # the events store keeps the key
        ("POST", "/v1/tenants/sh-jiading/events/ev_1:transition", False),
        ("POST", "/v1/auth/token", False),
        ("GET", "/v1/tenants/sh-jiading/children", False),
    ],
)
def test_which_requests_are_creates(method, path, expected):
    assert applies(method, path) is expected


def test_keys_are_visible_ascii_and_lose_their_quotes():
    assert parse_key('"8e03978e-40d5"') == "8e03978e-40d5"
    for bad in ("", "with space", "x" * 256, "ключ"):
        with pytest.raises(ApiError) as caught:
            parse_key(bad)
        assert caught.value.violations[0].field == "Idempotency-Key"


async def test_memory_keeps_at_most_max_local_answers_dropping_the_oldest(monkeypatch):
    monkeypatch.setattr(idempotency, "MAX_LOCAL", 3)
    store = ReplayStore(None)
    for slot in ("idem:1", "idem:2", "idem:3", "idem:4"):
        assert await store.claim(slot, "fp") is None
    assert list(store.local) == ["idem:2", "idem:3", "idem:4"]
    assert await store.claim("idem:1", "fp") is None  # forgotten: a first request again

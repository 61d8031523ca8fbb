"""One bus suite, two adapters: every test taking `bus` runs on the local log and on Redis.

Redis tests need the server at GRASSROOTS_TEST_REDIS_URL (default 127.0.0.1:6379/0); when
it is down they fail and say so, because a skipped adapter is an untested adapter. Each
test gets its own key prefix and only those keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.kit.bus import Bus, LocalLogBus
from services.kit.bus.redis_streams import RedisStreamsBus

REDIS_URL = os.environ.get("GRASSROOTS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> str:
    """Unique per test, so tests never see each other's streams on a shared Redis."""
    return f"test-bus-{uuid.uuid4().hex}"


@pytest.fixture
def stream(prefix: str) -> str:
    return f"{prefix}.events"


async def _redis_or_fail() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    problem = ""
    try:
        await client.ping()
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if not problem:
        return client
    await client.aclose()
    pytest.fail(
        f"Redis is not reachable at {REDIS_URL} ({problem}); the Redis bus tests need a "
        "running server (start redis-server or set GRASSROOTS_TEST_REDIS_URL)",
        pytrace=False,
    )


@pytest.fixture(params=["local", "redis"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> AsyncIterator[Bus]:
    """A fresh bus of each kind; Redis keys under this test's prefix are removed after."""
    if request.param == "local":
        local = LocalLogBus(tmp_path / "bus.sqlite3")
        try:
            yield local
        finally:
            await local.close()
        return
    admin = await _redis_or_fail()
    remote = RedisStreamsBus(REDIS_URL)
    try:
        yield remote
    finally:
        await remote.close()
        keys = [key async for key in admin.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()

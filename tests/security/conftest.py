"""One real platform for the whole security suite, with the demo town and the objects
and credentials of `security_world`.

The gateway's rate limits run on the real Redis at 127.0.0.1:6379 (as a deployment
with several replicas would), so the suite fails at once when it is not reachable.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from security_world import ANONYMOUS_REPORTS_PER_HOUR, SIGN_IN_FIRST_DELAY_SECONDS, World, build

from devstack.stack import Stack, StackConfig
from services.kit import signing

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE_LIMIT_PREFIX = "grassroots:rl:"  # gateway.security.ratelimit's keys
# Last, in this order: the fuzzer spends the shared per-address bucket of anonymous
# calls, and the log check must see everything the suite did.
# The reports module spends the address's hourly bucket of reports without an account.
LAST_MODULES = ("test_anonymous_reports.py", "test_fuzzing.py", "test_secrets_not_logged.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the last modules to the end of this directory's tests, touching nothing else."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LAST_MODULES.index(name) + 1 if name in LAST_MODULES else 0

    ordered = sorted((items[i] for i in slots), key=rank)  # stable within each rank
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}); the security suite checks "
            "that rate limits live there. Start redis-server on 127.0.0.1:6379.",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def world(
    demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("security-stack")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env = {
        "GRASSROOTS_GATEWAY_REDIS_URL": REDIS_URL,
        # The suite calls far faster than any person or village would: only the app
        # quotas it sets itself (test_rate_limits.py) may throttle it.
        "GRASSROOTS_GATEWAY_USER_REQUESTS_PER_MINUTE": "100000",
        "GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE": "100000",
        # The route matrix sends hundreds of bad credentials from one address on
        # purpose; test_sources.py checks that limit on a gateway of its own.
        "GRASSROOTS_GATEWAY_UNAUTHENTICATED_REQUESTS_PER_MINUTE": "100000",
        # Reports without an account per address and hour: the routes' checks use a few,
        # test_anonymous_reports.py spends the rest and sees the limit.
        "GRASSROOTS_GATEWAY_ANONYMOUS_REPORTS_PER_HOUR": str(ANONYMOUS_REPORTS_PER_HOUR),
        # A name's first sign-in delay is long enough that a loaded machine's slow
        # password checks cannot outlast it (test_sources.py signs in during it).
        "GRASSROOTS_EMPOWER_SIGN_IN_FIRST_DELAY_SECONDS": str(SIGN_IN_FIRST_DELAY_SECONDS),
    }
    # The address's buckets of calls, reports and photos without an account outlive a
    # run in the shared Redis (the hourly ones by an hour): this run starts afresh.
    stale = list(redis_client.scan_iter(match=f"{RATE_LIMIT_PREFIX}anon*"))
    if stale:
        redis_client.delete(*stale)
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    # The suite signs principals (the bootstrap's) with the stack's key ring; the one
    # tests/conftest.py put in the environment is the one the stack is given.
    signing.configure(signing.KeyRing.parse(config.dev_secrets()[signing.KEYS_VARIABLE]))
    stack = Stack(config)
    stack.start_all()
    try:
        stack.wait_ready(60)
        demo = stack.install_demo_identities()
        with httpx.Client(base_url=config.gateway_url, timeout=15) as client:
            yield build(stack, demo, client)
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def openapi(world: World) -> dict[str, Any]:
    response = world.client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec

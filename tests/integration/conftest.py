"""A whole platform of real processes on free loopback ports, shared by a module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack, StackConfig
from tests.conftest import seed_demo_identities

# Load tests here measure the platform, not the gateway's per-tenant request budget.
GENEROUS_LIMITS = {
    "GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE": "10000000",
    # Open311 reads are public: the suites read anonymously far faster than a person.
    "GRASSROOTS_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE": "100000",
}


@pytest.fixture(scope="module")
def stack(
    demo_gpkg: Path, demo_identities: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env.update(GENEROUS_LIMITS)
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    seed_demo_identities(demo_identities, config.data_dir)
    platform = Stack(config)
    platform.start_all()
    try:
        platform.wait_ready(60)
        platform.install_demo_identities()
        yield platform
    finally:
        platform.stop_all()

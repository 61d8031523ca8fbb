"""A whole platform of real processes on free loopback ports, shared by a module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack, StackConfig


@pytest.fixture(scope="module")
def stack(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    platform = Stack(config)
    platform.start_all()
    try:
        platform.wait_ready(60)
        yield platform
    finally:
        platform.stop_all()

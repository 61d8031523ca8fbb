"""Scenario loop tests share ONE running platform for the whole session (see harness.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scenarios.harness import ATTACH_VARIABLE, Platform, attach, running_platform


@pytest.fixture(scope="session")
def platform(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Started once per session; or one already running when GRASSROOTS_SCENARIO_PLATFORM
    names its description (`python -m tests.scenarios.harness` prints the line)."""
    described = os.environ.get(ATTACH_VARIABLE)
    if described:
        yield attach(Path(described))
        return
    with running_platform(demo_gpkg, tmp_path_factory.mktemp("scenarios")) as started:
        yield started

"""The SDK's and CLI's tests run against a whole platform of real processes, as a village
developer's program would: the gateway over real HTTP, the demo town's keys and people.

One platform serves every test of this folder and stops after the last of them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
# The SDK of this checkout, whichever copy the environment has installed.
SDK = HERE.parents[1] / "sdk"
sys.path.insert(0, str(SDK))

from devstack.demo_identity import DemoCredentials  # noqa: E402
from devstack.stack import Stack, StackConfig  # noqa: E402
from tests.conftest import seed_demo_identities  # noqa: E402

XINGMING = "sh/jiading/anting/xingming"
XINGMING_ID = "sh-jiading-anting-xingming"
TOWN = "sh/jiading/anting"


@dataclass
class Platform:
    stack: Stack
    demo: DemoCredentials

    @property
    def url(self) -> str:
        return self.stack.config.gateway_url

    @property
    def edge(self) -> str:
        return self.stack.config.edge_address

    @property
    def village_key(self) -> str:
        """Xingming's app key: map:read, events:read, events:write, people:read."""
        return self.demo.app_keys[XINGMING]

    @property
    def town_key(self) -> str:
        """The town's operations app: map:write, events, command:read, twin:read, ..."""
        return self.demo.app_keys[TOWN]

    def password(self, username: str) -> str:
        return self.demo.account(username).password

    def token(self, username: str) -> str:
        answer = httpx.post(
            f"{self.url}/v1/auth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": self.password(username),
            },
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])


_running: list[Stack] = []


@pytest.fixture(scope="session")
def platform(
    demo_gpkg: Path, demo_identities: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """Started as tests/integration's `stack` starts it, with the town's routing rules and
    handlers (so a report becomes a task)."""
    root = tmp_path_factory.mktemp("sdk-stack")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    seed_demo_identities(demo_identities, config.data_dir)
    stack = Stack(config)
    _running.append(stack)
    try:
        stack.start_all()
        stack.wait_ready(120)  # a busy machine starts five services slowly
        stack.install_demo_identities()
        stack.install_demo_command()
        yield Platform(stack, DemoCredentials.load(stack.credentials_file))
    finally:
        _stop()


def _stop() -> None:
    while _running:
        _running.pop().stop_all()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the platform once the suite leaves this folder, not at the end of the run."""
    if nextitem is None or Path(nextitem.path).resolve().parent != HERE:
        _stop()

"""Settings are validated at start-up; a missing peer address stops the process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run_module(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_events_without_map_address_fails_fast_naming_the_variable():
    result = run_module("services.events", {"GRASSROOTS_EVENTS_GRPC_PORT": "0"})
    assert result.returncode == 2
    assert "GRASSROOTS_EVENTS_MAP_ADDRESS" in result.stderr
    assert "Traceback" not in result.stderr


def test_gateway_without_addresses_fails_fast():
    result = run_module("gateway", {})
    assert result.returncode == 2
    for name in ("MAP", "EVENTS", "COMMAND", "TWIN", "EMPOWER"):
        assert f"GRASSROOTS_GATEWAY_{name}_ADDRESS" in result.stderr


@pytest.mark.parametrize("value", ["-1", "70000", "abc"])
def test_bad_port_is_refused(value):
    result = run_module("services.twin", {"GRASSROOTS_TWIN_GRPC_PORT": value})
    assert result.returncode == 2
    assert "GRASSROOTS_TWIN_GRPC_PORT" in result.stderr

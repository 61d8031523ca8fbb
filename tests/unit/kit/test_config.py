"""Settings are validated at start-up; a missing peer address stops the process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.kit.components import NAMES

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


def events_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from services.kit.signing import generate_keys_value

    return {
        "GRASSROOTS_EVENTS_GRPC_PORT": "0",
        "GRASSROOTS_EVENTS_METRICS_PORT": "0",  # a platform running beside the tests holds 9102
        "GRASSROOTS_EVENTS_MAP_ADDRESS": "127.0.0.1:1",
        "GRASSROOTS_EVENTS_DATA_DIR": str(tmp_path),
        "GRASSROOTS_PRINCIPAL_KEYS": generate_keys_value(),
        "GRASSROOTS_EVENTS_SEAL_KEYS": generate_keys_value(),
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"GRASSROOTS_DISCOVERY": "bogus"}, "GRASSROOTS_DISCOVERY"),
        ({"GRASSROOTS_PRINCIPAL_KEYS": "junk"}, "GRASSROOTS_PRINCIPAL_KEYS"),
        ({"GRASSROOTS_PRINCIPAL_KEYS": ""}, "GRASSROOTS_PRINCIPAL_KEYS"),
        (
            {
                "GRASSROOTS_EVENTS_BACKEND": "postgres",
                "GRASSROOTS_EVENTS_POSTGRES_DSN": "not_a_dsn_hunter2",
            },
            "GRASSROOTS_EVENTS_POSTGRES_DSN",
        ),
        (
            {
                "GRASSROOTS_EVENTS_BACKEND": "postgres",
                "GRASSROOTS_EVENTS_POSTGRES_DSN": "postgresql://x:hunter2@127.0.0.1:1/none",
            },
            "GRASSROOTS_EVENTS_POSTGRES_DSN",
        ),
    ],
)
def test_bad_start_settings_stop_the_process_in_one_line(tmp_path, extra, named):
    """Wrong values a district might deploy stop the process before it serves, naming
    the variable, with no stack trace and no password echoed."""
    result = run_module("services.events", events_env(tmp_path, **extra))
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
    assert "serving on" not in result.stderr


@pytest.mark.parametrize("module", ["gateway", "gateway.edge"])
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"GRASSROOTS_DISCOVERY": "bogus"}, "GRASSROOTS_DISCOVERY"),
        ({"GRASSROOTS_PRINCIPAL_KEYS": "junk"}, "GRASSROOTS_PRINCIPAL_KEYS"),
        ({"GRASSROOTS_GATEWAY_REDIS_URL": "redis-1:6379"}, "GRASSROOTS_GATEWAY_REDIS_URL"),
    ],
)
def test_gateway_and_edge_refuse_bad_start_settings(module, extra, named):
    from services.kit.signing import generate_keys_value

    env = {f"GRASSROOTS_GATEWAY_{name}_ADDRESS": "127.0.0.1:1" for name in NAMES}
    env |= {"GRASSROOTS_GATEWAY_PORT": "0", "GRASSROOTS_EDGE_GRPC_PORT": "0"}
    env |= {"GRASSROOTS_PRINCIPAL_KEYS": generate_keys_value(), **extra}
    result = run_module(module, env)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_twin_refuses_a_redis_url_it_cannot_open():
    result = run_module(
        "services.twin",
        {"GRASSROOTS_TWIN_GRPC_PORT": "0", "GRASSROOTS_TWIN_REDIS_URL": "redis:6379"},
    )
    assert result.returncode == 2
    assert "GRASSROOTS_TWIN_REDIS_URL" in result.stderr

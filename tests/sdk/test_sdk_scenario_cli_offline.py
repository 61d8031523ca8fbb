"""`grassroots scenario ...` without a platform to talk to: each failure is one line saying
what was tried and what to set, with a non-zero exit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from grassroots_sdk.cli import app
from grassroots_sdk.cli import scenario as scenario_cli
from typer.testing import CliRunner

from services.kit.components import NAMES
from services.kit.signing import generate_keys_value

runner = CliRunner()
VILLAGE = "sh/jiading/anting/xingming"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_platform_that_is_not_running_is_one_line_naming_component_and_address() -> None:
    port = closed_port()
    env = {f"GRASSROOTS_{name.upper()}_ADDRESS": f"127.0.0.1:{port}" for name in NAMES}
    env["GRASSROOTS_PRINCIPAL_KEYS"] = generate_keys_value()
    result = runner.invoke(app, ["scenario", "list", "--village", VILLAGE], env=env)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and "AioRpcError" not in line and "Traceback" not in line
    assert f"at 127.0.0.1:{port}: is the platform running?" in line
    assert line.startswith("error: cannot reach ")
    assert "_ADDRESS" in line


def test_a_missing_secrets_file_names_the_path_and_the_way_to_set_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    result = runner.invoke(
        app,
        ["scenario", "show", "fire-smoke", "--village", VILLAGE, "--secrets", str(missing)],
        env={"GRASSROOTS_PRINCIPAL_KEYS": ""},
    )
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    assert "GRASSROOTS_PRINCIPAL_KEYS" in result.stderr and "--secrets" in result.stderr


def test_the_default_secrets_file_is_looked_for_here_and_in_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(scenario_cli, "DEFAULT_SECRETS", Path("var/none-such.json"))
    result = runner.invoke(
        app, ["scenario", "list", "--village", VILLAGE], env={"GRASSROOTS_PRINCIPAL_KEYS": ""}
    )
    assert result.exit_code == 1
    checkout = Path(__file__).resolve().parents[2]
    assert str(tmp_path.resolve() / "var/none-such.json") in result.stderr
    assert str(checkout / "var/none-such.json") in result.stderr


def test_a_components_refusal_is_one_line_with_its_status_and_field() -> None:
    """Never the repr of a gRPC error with its debug string."""
    import grpc
    from grassroots_sdk.cli._common import rpc_line

    from services.kit import errors
    from services.kit.status import STATUS_DETAILS_KEY, to_rich_status

    refused = errors.InvalidArgument.field(
        "installation.catalog_item", "must name a scenario template of the catalog"
    )
    status = to_rich_status(refused, "grassroots.empower.v1.CatalogService")
    exc = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
        details=str(refused),
        debug_error_string='UNKNOWN:Error received from peer {grpc_status:3, created_time:"x"}',
    )
    line = scenario_cli._refused(exc)
    assert line == (
        "INVALID_ARGUMENT: installation.catalog_item: must name a scenario template of the catalog"
    )
    # Any other command's gRPC error is one line too.
    assert rpc_line(exc).startswith("INVALID_ARGUMENT: ")
    assert "debug" not in rpc_line(exc) and "UNKNOWN:Error" not in rpc_line(exc)
    assert rpc_line(ValueError("x")) == ""

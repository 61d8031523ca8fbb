"""`make run` passes the developer's GRASSROOTS_* settings on: they win over devstack's
defaults, while the ports and peer addresses stay consistent across processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import StackConfig


def test_environment_settings_win_over_devstack_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = StackConfig.on_free_ports(tmp_path)
    assert config.env_for("events")["GRASSROOTS_EVENTS_DATABASE"] == str(
        tmp_path / "events.sqlite3"
    )
    monkeypatch.setenv("GRASSROOTS_EVENTS_DATABASE", "/elsewhere/events.sqlite3")
    monkeypatch.setenv("GRASSROOTS_EVENTS_AUTO_CLOSE_AFTER_HOURS", "5")
    monkeypatch.setenv("GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE", "77")

    events = config.env_for("events")
    gateway = config.env_for("gateway")

    assert events["GRASSROOTS_EVENTS_DATABASE"] == "/elsewhere/events.sqlite3"
    assert events["GRASSROOTS_EVENTS_AUTO_CLOSE_AFTER_HOURS"] == "5"
    assert gateway["GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE"] == "77"


def test_explicit_extra_env_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRASSROOTS_EVENTS_AUTO_CLOSE_AFTER_HOURS", "5")
    config = StackConfig.on_free_ports(tmp_path)
    config.extra_env["GRASSROOTS_EVENTS_AUTO_CLOSE_AFTER_HOURS"] = "9"
    assert config.env_for("events")["GRASSROOTS_EVENTS_AUTO_CLOSE_AFTER_HOURS"] == "9"


def test_port_variables_move_a_service_and_its_callers_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRASSROOTS_MAP_GRPC_PORT", "51999")
    monkeypatch.setenv("GRASSROOTS_GATEWAY_PORT", "18080")
    monkeypatch.setenv("GRASSROOTS_EMPOWER_METRICS_PORT", "19105")

    config = StackConfig.from_environment(tmp_path)

    assert config.gateway_url == "http://127.0.0.1:18080"
    assert config.env_for("map")["GRASSROOTS_MAP_GRPC_PORT"] == "51999"
    assert config.env_for("events")["GRASSROOTS_EVENTS_MAP_ADDRESS"] == "127.0.0.1:51999"
    assert config.env_for("gateway")["GRASSROOTS_GATEWAY_MAP_ADDRESS"] == "127.0.0.1:51999"
    assert config.env_for("empower")["GRASSROOTS_EMPOWER_METRICS_PORT"] == "19105"
    assert config.env_for("events")["GRASSROOTS_EVENTS_GRPC_PORT"] == "50052"  # default


def test_free_ports_are_not_overridden_by_port_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRASSROOTS_MAP_GRPC_PORT", "51999")
    config = StackConfig.on_free_ports(tmp_path)
    assert config.env_for("map")["GRASSROOTS_MAP_GRPC_PORT"] == str(config.grpc_ports["map"])

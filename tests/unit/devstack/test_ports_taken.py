"""`make run` where another process holds a port: one line naming it and the way out;
where it picked free ports: the line that points the CLI at them."""

from __future__ import annotations

import os
import socket

import pytest

from devstack.stack import SERVICES, Stack, StackConfig


def test_a_taken_port_stops_the_start_before_any_process(tmp_path):
    config = StackConfig.on_free_ports(tmp_path)
    with socket.socket() as holder:
        holder.bind((config.host, config.grpc_ports["twin"]))
        holder.listen()
        stack = Stack(config)
        with pytest.raises(RuntimeError) as refused:
            stack.start_all()
    message = str(refused.value)
    assert "\n" not in message
    assert f"twin gRPC {config.host}:{config.grpc_ports['twin']} (GRASSROOTS_TWIN_GRPC_PORT)" in (
        message
    )
    assert "--free-ports" in message
    assert "map gRPC" not in message  # only what is taken
    assert stack.processes == {}


def test_free_ports_pass(tmp_path):
    Stack(StackConfig.on_free_ports(tmp_path)).check_ports()


def test_the_ready_message_export_line_points_the_cli_at_free_ports(tmp_path, monkeypatch):
    from grassroots_sdk.cli import scenario as scenario_cli

    config = StackConfig.on_free_ports(tmp_path)
    line = config.client_exports()
    assert line.startswith("export ")
    for pair in line.removeprefix("export ").split():
        name, _, value = pair.partition("=")
        monkeypatch.setenv(name, value)
    assert scenario_cli._addresses() == {name: config.address(name) for name in SERVICES}
    assert os.environ["GRASSROOTS_URL"] == config.gateway_url

"""`make run` where another process holds a port: one line naming it and the way out."""

from __future__ import annotations

import socket

import pytest

from devstack.stack import Stack, StackConfig


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

"""A service whose port another process holds stops with one line saying what to do."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from services.kit.server import run_service, start_server
from services.twin.config import TwinSettings


class Nothing:
    service_names = ("grassroots.twin.v1.TwinService",)

    def register(self, server) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def taken() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


async def test_a_taken_grpc_port_is_one_line_naming_the_port_and_the_way_out(taken):
    settings = TwinSettings(host="127.0.0.1", grpc_port=taken)
    with pytest.raises(SystemExit) as stopped:
        await start_server("twin", settings, Nothing())
    message = str(stopped.value.code)
    assert "\n" not in message
    assert message.startswith(f"twin: cannot listen on 127.0.0.1:{taken}")
    assert "--free-ports" in message and "GRASSROOTS_TWIN_GRPC_PORT" in message


def test_a_taken_metrics_port_is_one_line_too(taken, tmp_path):
    settings = TwinSettings(
        host="127.0.0.1", metrics_port=taken, database=tmp_path / "twin.sqlite3"
    )

    async def never():
        raise AssertionError("built although the metrics port is taken")

    with pytest.raises(SystemExit) as stopped:
        run_service("twin", settings, never)
    message = str(stopped.value.code)
    assert f"127.0.0.1:{taken}" in message and "GRASSROOTS_TWIN_METRICS_PORT" in message

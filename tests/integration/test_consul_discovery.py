"""Discovery through Consul, against a stand-in of Consul's HTTP API (tests/consul_stand_in.py:
no Consul binary is on these machines).

Map processes started with `GRASSROOTS_DISCOVERY=consul` register with a gRPC health
check; a `consul:///map` channel resolves them through the health API and follows
changes by blocking queries:

* the first instance registers, its check passes, the channel calls it;
* a second instance appears in the channel's view without a new channel;
* SIGTERM deregisters an instance before it drains; the view drops it;
* an instance killed with -9 cannot deregister: its failing check removes it from the
  passing view, and the channel answers UNAVAILABLE naming the component.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.stack import REPO, StackConfig, free_port
from services.kit import discovery
from services.kit.client import open_channel
from tests.consul_stand_in import ConsulStandIn

MAP_SERVICE = "grassroots.map.v1.MapService"
SOON = 10.0  # seconds: a check round (0.2 s here) plus a blocking query's return


def start_map(
    config: StackConfig, agent: ConsulStandIn, n: int, logs: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = config.env_for("map") | {
        "GRASSROOTS_MAP_GRPC_PORT": str(port),
        "GRASSROOTS_MAP_METRICS_PORT": "0",
        "GRASSROOTS_MAP_STORE_FILE": str(config.data_dir / f"map-{n}.gpkg"),
        "GRASSROOTS_DISCOVERY": "consul",
        "GRASSROOTS_CONSUL_URL": agent.url,
        "GRASSROOTS_ADVERTISE_ADDRESS": "127.0.0.1",
    }
    env.pop("GRASSROOTS_MAP_SEED_FILE")  # an empty map is enough to be found
    out = open(logs / f"map-{n}.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "services.map"], cwd=REPO, env=env, stdout=out, stderr=out
    )
    return process, port


async def eventually(check: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < SOON + 60:  # generous: map starts GDAL first
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {SOON + 60} s: {what}")


async def serving(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=MAP_SERVICE), timeout=5
    )
    return answer.status


@pytest.mark.integration
def test_services_register_resolve_follow_changes_and_deregister(tmp_path):
    agent = ConsulStandIn(check_every=0.2).start()
    config = StackConfig.on_free_ports(tmp_path / "data", log_dir=tmp_path / "logs")
    config.data_dir.mkdir(parents=True)
    (tmp_path / "logs").mkdir(exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    settings = discovery.DiscoverySettings(
        discovery="consul", consul_url=agent.url, consul_wait_seconds=5
    )
    directory = discovery.ConsulDirectory(discovery.consul_client(settings), 5)
    discovery.use_directory(directory)

    async def scenario() -> None:
        first, first_port = start_map(config, agent, 1, tmp_path / "logs")
        processes.append(first)
        first_id = f"map-127.0.0.1-{first_port}"
        await eventually(lambda: first_id in agent.instances, "the first map registers")
        instance = agent.instances[first_id]
        assert (instance.name, instance.address, instance.port) == ("map", "127.0.0.1", first_port)
        assert [c.grpc for c in instance.checks] == [f"127.0.0.1:{first_port}/{MAP_SERVICE}"]
        assert instance.checks[0].deregister_after == 60

        channel = open_channel("consul:///map")
        assert isinstance(channel, discovery.DiscoveredChannel)
        await eventually(
            lambda: channel.addresses == (f"127.0.0.1:{first_port}",), "resolved once it passes"
        )
        assert await serving(channel) == health_pb2.HealthCheckResponse.SERVING

        second, second_port = start_map(config, agent, 2, tmp_path / "logs")
        processes.append(second)
        both = tuple(sorted((f"127.0.0.1:{first_port}", f"127.0.0.1:{second_port}")))
        seconds = await eventually(lambda: channel.addresses == both, "the second appears")
        print(f"second instance in the view {seconds:.1f} s after its start")
        blocking = [r for r in agent.requests if r.startswith("GET /v1/health/service/map")]
        assert any("index=" in r and "wait=5s" in r and "passing=1" in r for r in blocking), (
            "the view is refreshed by blocking queries on the passing instances"
        )

        first.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, 30) == 0
        assert f"PUT /v1/agent/service/deregister/{first_id}" in agent.requests
        assert first_id not in agent.instances
        await eventually(
            lambda: channel.addresses == (f"127.0.0.1:{second_port}",), "the first leaves"
        )
        assert await serving(channel) == health_pb2.HealthCheckResponse.SERVING

        second.kill()  # no deregistration: only its failing check can tell
        await asyncio.to_thread(second.wait, 10)
        seconds = await eventually(lambda: channel.addresses == (), "a dead instance fails")
        print(f"killed instance out of the passing view after {seconds:.1f} s")
        assert f"map-127.0.0.1-{second_port}" in agent.instances, "still registered, critical"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await serving(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no passing instance of map" in (refused.value.details() or "")
        await channel.close()

    try:
        asyncio.run(scenario())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        directory.close()
        discovery.use_directory(None)
        agent.stop()

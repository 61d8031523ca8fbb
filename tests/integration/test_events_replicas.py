"""Two events replicas on one PostgreSQL database and one Redis bus, behind one gateway,
calling two map replicas on PostGIS.

The gateway reaches both events replicas through one static target (`ipv4:a,b`,
balanced round robin), and they reach the maps the same way; the outbox relay and the
auto-close sweep run under a lease in one events replica. The replica holding the relay
is killed with -9 in the middle of a burst of reports, and later one map replica too:

* every acknowledged report is stored (the survivors answer the retries);
* after de-duplication by message key, every stored report was published exactly once;
* the surviving replica takes the relay over within its lease time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import psycopg
import pytest

from devstack.stack import REPO, SERVICES, Stack, StackConfig, free_port
from grassroots.events.v1 import events_service_pb2 as pb
from services.events.wiring import RELAY_LEASE
from services.kit import rls
from services.kit.bus import open_bus
from services.kit.tenancy import ALL_TENANTS
from tests.conftest import seed_demo_identities
from tests.integration.conftest import GENEROUS_LIMITS
from tests.integration.test_events_reliability import (
    REPORTED,
    STREAM,
    TOWN_EVENTS,
    private_redis,
    report_body,
    valid_points,
)

LEASE_SECONDS = 3.0
TOTAL, CONCURRENCY, KILL_AFTER, KILL_MAP_AFTER = 400, 16, 150, 250


def _relay_holder_pid(dsn: str) -> int | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT holder FROM leases WHERE name = %s AND expires_us > "
            "(extract(epoch from clock_timestamp()) * 1000000)::bigint",
            (RELAY_LEASE,),
        ).fetchone()
    return None if row is None else int(row[0].split(":")[1])


def _stored_ids(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config(%s, %s, false)", (rls.SCOPE_SETTING, ALL_TENANTS))
        return {row[0] for row in conn.execute("SELECT id FROM events")}


async def _published_keys(bus_url: str, wanted: set[str], seconds: float) -> dict[str, set[str]]:
    """Event id -> the distinct keys of its `event.reported` messages, read by a fresh
    consumer group until every wanted event has one (or time is up)."""
    bus = open_bus(bus_url)
    keys: dict[str, set[str]] = {}
    try:
        await bus.ensure_group(STREAM, "replica-check", "0")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = await bus.read(STREAM, "replica-check", "v", count=500, block_ms=200)
            for delivery in batch:
                if delivery.message.type == REPORTED:
                    event = pb.Event.FromString(delivery.message.payload)
                    keys.setdefault(event.name.rsplit("/", 1)[-1], set()).add(delivery.message.key)
            if batch:
                await bus.ack(STREAM, "replica-check", [d.id for d in batch])
            elif wanted <= set(keys):
                break
    finally:
        await bus.close()
    return keys


async def _burst(stack: Stack, bodies: dict[int, dict], on_progress) -> dict[int, str]:
    """POST every body (retrying a failed one with the same request id, as a client
    does); the event id of each acknowledged create."""
    acknowledged: dict[int, str] = {}
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=30
    ) as client:

        async def one(n: int) -> None:
            for _ in range(10):
                async with semaphore:
                    try:
                        response = await client.post(TOWN_EVENTS, json=bodies[n])
                    except httpx.TransportError:
                        continue
                if response.status_code == 201:
                    acknowledged[n] = response.json()["id"]
                    on_progress(len(acknowledged))
                    return
                assert response.status_code in (502, 503, 504), response.text[:300]
                await asyncio.sleep(0.2)

        await asyncio.gather(*(one(n) for n in bodies))
    return acknowledged


@pytest.mark.integration
def test_two_replicas_lose_nothing_publish_once_and_hand_the_relay_over(
    tmp_path, demo_gpkg, demo_identities, grid_index, postgis_test_dsn
):
    bodies = {
        n: report_body(lon, lat, n) for n, (lon, lat) in enumerate(valid_points(grid_index, TOTAL))
    }
    with private_redis(tmp_path / "redis") as bus:
        config = StackConfig.on_free_ports(tmp_path / "data", log_dir=tmp_path / "logs")
        second_port, second_metrics = free_port(), free_port()
        map_port = free_port()
        first_address = config.address("events")
        config.extra_env.update(GENEROUS_LIMITS)
        config.extra_env.update(
            {
                "GRASSROOTS_EVENTS_BACKEND": "postgres",
                "GRASSROOTS_EVENTS_POSTGRES_DSN": postgis_test_dsn,
                "GRASSROOTS_EVENTS_BUS_URL": bus.url,
                "GRASSROOTS_EVENTS_LEASE_SECONDS": str(LEASE_SECONDS),
                "GRASSROOTS_MAP_BACKEND": "postgis",
                "GRASSROOTS_MAP_POSTGRES_DSN": postgis_test_dsn,
                "GRASSROOTS_EVENTS_MAP_ADDRESS": (
                    f"ipv4:{config.address('map')},{config.host}:{map_port}"
                ),
                # One target, both replicas: the channel balances round robin.
                "GRASSROOTS_GATEWAY_EVENTS_ADDRESS": (
                    f"ipv4:{first_address},{config.host}:{second_port}"
                ),
            }
        )
        config.data_dir.mkdir(parents=True)
        shutil.copy(demo_gpkg, config.map_file)
        seed_demo_identities(demo_identities, config.data_dir)
        stack = Stack(config)
        second: subprocess.Popen[bytes] | None = None
        second_map: subprocess.Popen[bytes] | None = None
        log = open(tmp_path / "events-2.log", "ab")  # noqa: SIM115
        try:
            stack.ensure_demo_data()
            stack.start("map")  # seeds PostGIS once; the second map finds the layers there
            stack.wait_ready(90, services=("map",))
            second_map = subprocess.Popen(
                [sys.executable, "-m", "services.map"],
                cwd=REPO,
                env=config.env_for("map")
                | {"GRASSROOTS_MAP_GRPC_PORT": str(map_port), "GRASSROOTS_MAP_METRICS_PORT": "0"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for name in (*SERVICES, "gateway", "edge"):
                if name != "map":
                    stack.start(name)
            env = config.env_for("events") | {
                "GRASSROOTS_EVENTS_GRPC_PORT": str(second_port),
                "GRASSROOTS_EVENTS_METRICS_PORT": str(second_metrics),
            }
            second = subprocess.Popen(
                [sys.executable, "-m", "services.events"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.wait_ready(120)  # a busy shared machine starts seven processes slowly
            stack.install_demo_identities()
            replicas = {stack.processes["events"].pid: "first", second.pid: "second"}
            for _ in range(100):
                if _relay_holder_pid(postgis_test_dsn) in replicas:
                    break
                time.sleep(0.1)
            holder = _relay_holder_pid(postgis_test_dsn)
            assert holder in replicas, "one replica holds the relay"
            victim = stack.processes["events"] if replicas[holder] == "first" else second
            survivor = second.pid if victim is not second else stack.processes["events"].pid

            takeover: list[float] = []  # seconds from the kill to the survivor's lease

            def watch_lease(killed: float) -> None:
                while time.monotonic() - killed < 10 * LEASE_SECONDS:
                    if _relay_holder_pid(postgis_test_dsn) == survivor:
                        takeover.append(time.monotonic() - killed)
                        return
                    time.sleep(0.1)

            watcher = threading.Thread(target=watch_lease, args=(0.0,))

            def on_progress(done: int) -> None:
                nonlocal watcher
                if done >= KILL_MAP_AFTER and second_map.poll() is None:
                    os.kill(second_map.pid, signal.SIGKILL)
                if done >= KILL_AFTER and not watcher.is_alive() and not takeover:
                    os.kill(victim.pid, signal.SIGKILL)
                    watcher = threading.Thread(target=watch_lease, args=(time.monotonic(),))
                    watcher.start()

            acknowledged = asyncio.run(_burst(stack, bodies, on_progress))
            assert victim.wait(10) == -signal.SIGKILL
            assert second_map.wait(10) == -signal.SIGKILL, "a map replica died mid-burst too"
            watcher.join()
            assert takeover, "the surviving replica never took the relay over"
            # Expiry plus one renewal period of the survivor, plus scheduling slack.
            assert takeover[0] <= LEASE_SECONDS + LEASE_SECONDS / 3 + 2.0, takeover
            print(f"relay taken over {takeover[0]:.1f} s after kill -9 (lease {LEASE_SECONDS} s)")

            assert len(acknowledged) == TOTAL, "every report was acknowledged after retries"
            stored = _stored_ids(postgis_test_dsn)
            missing = set(acknowledged.values()) - stored
            assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
            assert len(stored) == TOTAL, "a retried create made a second event"

            keys = asyncio.run(_published_keys(bus.url, stored, 60))
            assert set(keys) == stored, f"never published: {sorted(stored - set(keys))[:5]}"
            repeated = {event: k for event, k in keys.items() if len(k) != 1}
            assert not repeated, f"published as two different facts: {list(repeated.items())[:3]}"
        finally:
            for process in (second, second_map):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(15)
            log.close()
            stack.stop_all()

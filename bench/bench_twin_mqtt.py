"""MQTT telemetry at village scale: simulated devices publishing once a minute, no loss.

The twin runs as its own process (`python -m services.twin`, SQLite, the MQTT bridge on,
a topic root of this run's own) against the machine's Mosquitto on 127.0.0.1:1883. This
process creates the entities over gRPC (WaterLevelGauge, built in) and simulates the
devices: each has its own device key and topic and publishes one reading per period at
QoS 1, spread evenly over the period; devices share MQTT connections (as field gateways
do), each connection publishing from its own thread.

Full mode: 10,000 devices over 100 connections, a reading a minute each, for 10 minutes
(100,000 readings at ~167/s). Quick mode (BENCH_QUICK=1): 500 devices, a 2-second period,
3 rounds. BENCH_TWIN_MQTT_ROUNDS=2 runs the full mode's rate for 2 minutes. Loss makes
the bench fail in either mode (Mosquitto drops what overflows a client's queue; see the
bridge's Receive Maximum). Figures:
  - readings published and acknowledged by the broker, stored by the twin, lost (must be 0),
    stored twice (redeliveries; harmless, counted);
  - sustained rate (readings/s) over the run;
  - publish -> committed -> seen by a WatchEntities watcher, p50 / p95 / p99 (the device
    clock is the bench's clock);
  - CPU seconds the twin spent per 1,000 readings.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import QUICK, command_line, scaled  # noqa: E402  (sets the key ring first)
from devstack.stack import free_port  # noqa: E402
from grassroots.twin.v1 import twin_service_pb2 as pb  # noqa: E402
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc  # noqa: E402
from grassroots.type.v1 import geo_pb2  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.twin.mqtt_bridge.device_keys import DeviceKeys  # noqa: E402

BROKER = ("127.0.0.1", 1883)
TENANT = "sh/jiading/anting/xingming"
TENANT_ID = TENANT.replace("/", "-")
DEVICES = scaled(10_000, 500)
CONNECTIONS = scaled(100, 10)
PERIOD_SECONDS = scaled(60.0, 2.0)
ROUNDS = int(os.environ.get("BENCH_TWIN_MQTT_ROUNDS") or scaled(10, 3))
DRAIN_SECONDS = scaled(120.0, 60.0)
OPERATOR = Principal(
    subject="users/bench",
    tenant=TENANT,
    kind="user",
    scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}),
)


def start_twin(folder: Path, root: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_TWIN_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "GRASSROOTS_TWIN_HOST": "127.0.0.1",
            "GRASSROOTS_TWIN_GRPC_PORT": str(port),
            "GRASSROOTS_TWIN_METRICS_PORT": "0",
            "GRASSROOTS_TWIN_DATABASE": str(folder / "twin.sqlite3"),
            "GRASSROOTS_TWIN_BUS_URL": str(folder / "twin-bus.sqlite3"),
            # No rules here: the events service is never called.
            "GRASSROOTS_TWIN_EVENTS_ADDRESS": f"127.0.0.1:{free_port()}",
            "GRASSROOTS_TWIN_MQTT_ENABLED": "true",
            "GRASSROOTS_TWIN_MQTT_TOPIC_ROOT": root,
            "GRASSROOTS_TWIN_MQTT_CLIENT_ID": f"bench-{root}",
            "GRASSROOTS_TWIN_LOG_LEVEL": "WARNING",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.twin"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    return process, port


async def create_entities(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.TwinServiceStub(channel)
        deadline = time.monotonic() + 60
        while True:
            try:
                await channel.channel_ready()
                break
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        ids = [f"gauge-{i:05d}" for i in range(DEVICES)]
        semaphore = asyncio.Semaphore(32)

        async def create(index: int, entity_id: str) -> None:
            async with semaphore:
                await stub.CreateEntity(
                    pb.CreateEntityRequest(
                        parent=f"tenants/{TENANT_ID}",
                        entity_id=entity_id,
                        entity=pb.Entity(
                            entity_type="WaterLevelGauge",
                            location=geo_pb2.GeoPoint(
                                longitude=121.15 + (index % 100) * 1e-4,
                                latitude=31.28 + (index // 100) * 1e-4,
                            ),
                        ),
                    ),
                    metadata=OPERATOR.to_metadata(),
                    timeout=30,
                )

        await asyncio.gather(*(create(i, e) for i, e in enumerate(ids)))
        return ids


class Connection(threading.Thread):
    """One MQTT connection publishing for its devices on schedule, counting PUBACKs."""

    def __init__(self, root: str, devices: list[tuple[str, str, float]], start: float) -> None:
        super().__init__(daemon=True)
        self.devices = devices  # (entity id, key, offset in the period)
        self.start_at = start
        self.published = 0
        self.acknowledged = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex}")
        self.client.max_inflight_messages_set(100)
        self.client.on_publish = self._on_publish
        self.client.connect(*BROKER)
        self.client.loop_start()
        self.root = root

    def _on_publish(self, *_args: object) -> None:
        with self._lock:
            self.acknowledged += 1

    def run(self) -> None:
        schedule = sorted(
            (self.start_at + r * PERIOD_SECONDS + offset, entity, key, r)
            for r in range(ROUNDS)
            for entity, key, offset in self.devices
        )
        for when, entity, key, round_ in schedule:
            delay = when - time.time()
            if delay > 0:
                time.sleep(delay)
            body = {
                "key": key,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "values": {"level_cm": float(round_)},
            }
            topic = f"{self.root}/{TENANT_ID}/{entity}/telemetry"
            self.client.publish(topic, json.dumps(body), qos=1)
            self.published += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored(database: Path) -> tuple[int, int]:
    """(distinct readings, rows) in the twin's history: batches still in the log plus
    the per-series chunks they are regrouped into (services/twin/store/chunks.py)."""
    series: list[np.ndarray] = []
    times: list[np.ndarray] = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        for ids, stamps in db.execute("SELECT series, times FROM twin_log"):
            series.append(np.frombuffer(ids, "<i8"))
            times.append(np.frombuffer(stamps, "<i8"))
        for series_id, n, stamps in db.execute("SELECT series_id, n, times FROM twin_chunks"):
            series.append(np.full(n, series_id, "<i8"))
            times.append(np.frombuffer(stamps, "<i8"))
    if not series:
        return 0, 0
    pairs = np.stack([np.concatenate(series), np.concatenate(times)], axis=1)
    return len(np.unique(pairs, axis=0)), len(pairs)


async def watch_lags(port: int, lags: list[float], stop: asyncio.Event) -> None:
    """Publish -> seen by a watcher of the tenant, in ms, for every change."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.TwinServiceStub(channel)
        call = stub.WatchEntities(
            pb.WatchEntitiesRequest(parent=f"tenants/{TENANT_ID}"),
            metadata=OPERATOR.to_metadata(),
        )
        stopper = asyncio.create_task(stop.wait())
        try:
            async for item in call:
                if item.WhichOneof("item") == "change":
                    for value in item.change.properties:
                        if value.HasField("observe_time"):
                            sent = value.observe_time.ToMilliseconds()
                            lags.append(time.time() * 1000 - sent)
                if stop.is_set():
                    break
        except grpc.aio.AioRpcError:
            pass
        finally:
            call.cancel()
            stopper.cancel()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(folder: Path, root: str) -> int:
    database = folder / "twin.sqlite3"
    twin, port = start_twin(folder, root)
    try:
        ids = await create_entities(port)
        lags: list[float] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_lags(port, lags, stop))
        keys = DeviceKeys()
        expected = DEVICES * ROUNDS
        start = time.time() + 2.0
        devices = [
            (
                entity,
                keys.issue(f"tenants/{TENANT_ID}/entities/{entity}"),
                i * PERIOD_SECONDS / DEVICES,
            )
            for i, entity in enumerate(ids)
        ]
        connections = [Connection(root, devices[c::CONNECTIONS], start) for c in range(CONNECTIONS)]
        cpu_before = cpu_seconds(twin.pid)
        for connection in connections:
            connection.start()
        for connection in connections:
            await asyncio.to_thread(connection.join)
        published_at = time.time()
        deadline = time.monotonic() + DRAIN_SECONDS
        distinct = rows = 0
        while time.monotonic() < deadline:
            distinct, rows = stored(database)
            acknowledged = sum(c.acknowledged for c in connections)
            if distinct >= expected and acknowledged >= expected:
                break
            await asyncio.sleep(0.5)
        drained_at = time.time()
        cpu = cpu_seconds(twin.pid) - cpu_before
        stop.set()
        await asyncio.sleep(0.5)
        watcher.cancel()
        for connection in connections:
            connection.close()
    finally:
        twin.terminate()
        twin.wait(30)
    published = sum(c.published for c in connections)
    acknowledged = sum(c.acknowledged for c in connections)
    span = drained_at - start
    lost = acknowledged - distinct
    mode = "quick" if QUICK else "full"
    print(
        f"{DEVICES:,} devices on {CONNECTIONS} connections, one reading per "
        f"{PERIOD_SECONDS:g} s for {ROUNDS} periods ({mode} mode)"
    )
    print(f"published {published:,}, acknowledged by the broker {acknowledged:,}")
    print(
        f"stored {distinct:,} distinct readings ({rows - distinct:,} stored twice), lost {lost:,}"
    )
    print(f"sustained {distinct / span:,.0f} readings/s over {span:.1f} s")
    print(f"drained {1000 * (drained_at - published_at):,.0f} ms after the last publish")
    if lags:
        p50, p95, p99 = np.percentile(np.array(lags), [50, 95, 99])
        print(
            f"publish -> stored -> watcher: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms "
            f"({len(lags):,} changes seen)"
        )
    print(f"twin CPU {1000 * cpu / max(distinct, 1):.3f} s per 1,000 readings")
    if lost or acknowledged < expected:
        print(f"LOSS: expected {expected:,}, acknowledged {acknowledged:,}, stored {distinct:,}")
        return 1
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(run(Path(folder), f"bench{uuid.uuid4().hex[:10]}"))


if __name__ == "__main__":
    command_line(__doc__)
    raise SystemExit(main())

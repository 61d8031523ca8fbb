"""Telemetry into the twin, with rules on, and the way from a reading to its event.

Figures, one line each with its target:
  1. in-process ingest: TwinHub.ingest on the embedded store (SQLite file, latest values
     in memory), batches of 100,000 readings over 2,000 entities (1,000 water-level
     gauges under a threshold rule with hysteresis and a minimum duration, 1,000 crowd
     counters under a three-level rule), values drawn so that a few series cross each
     batch: readings/s (target >= 300,000);
  2. gRPC IngestTelemetry, batches of 1,000 columnar readings, two calls in flight, to
     the twin running as its own process (`python -m services.twin`): readings/s
     (target >= 50,000);
  3. a reading that crosses a threshold -> the event it raises is stored in the events
     service (map, events and twin as their own processes; the time from sending the
     reading to the event arriving on the events service's WatchEvents stream): p50 /
     p95 (target p95 < 50 ms).
Every batch is checked: every reading accepted; every crossing raises exactly one event.
The issue's other twin figures have benches of their own: single readings over REST
through the gateway with wrk (bench_twin_rest.py, beside the floor) and MQTT devices
(bench_twin_mqtt.py); `make bench` runs all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import QUICK, QUICK_NOTE, command_line, scaled  # noqa: E402  (sets the key ring first)
from devstack.stack import Stack, StackConfig  # noqa: E402
from grassroots.events.v1 import events_service_pb2 as ev_pb  # noqa: E402
from grassroots.events.v1 import events_service_pb2_grpc as ev_grpc  # noqa: E402
from grassroots.twin.v1 import twin_service_pb2 as pb  # noqa: E402
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc  # noqa: E402
from grassroots.type.v1 import geo_pb2  # noqa: E402
from services.kit import tenancy  # noqa: E402
from services.kit.client import open_channel  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.twin.domain.entities import Entity, Point  # noqa: E402
from services.twin.domain.ingest import Columns  # noqa: E402
from services.twin.domain.rules import Direction, Levels, Rule, Threshold  # noqa: E402
from services.twin.domain.service import TwinHub  # noqa: E402
from services.twin.store.latest_memory import MemoryLatest  # noqa: E402
from services.twin.store.sqlite import SqliteTwinStore  # noqa: E402

VILLAGE = "sh/jiading/anting/xingming"
PARENT = tenancy.tenant_name(VILLAGE)
WRITER = Principal(
    "users/bench",
    VILLAGE,
    scopes=frozenset({"twin:read", "twin:write", "twin:ingest"}),
)
WATCHER = Principal("services/bench", VILLAGE, "service", scopes=frozenset({"events:read"}))
ENTITIES = 1000
BATCH = 100_000
GRPC_BATCH = 1000


def met(value: float, target: float, lower_is_better: bool = False) -> str:
    ok = value <= target if lower_is_better else value >= target
    return "met" if ok else "missed"


async def in_process(root: Path) -> None:
    store = SqliteTwinStore(root / "twin.sqlite3")
    hub = await TwinHub.open(store, MemoryLatest())
    for i in range(ENTITIES):
        await hub.create_entity(
            WRITER, Entity(VILLAGE, f"g{i}", "WaterLevelGauge", Point(121.16, 31.29))
        )
        await hub.create_entity(
            WRITER, Entity(VILLAGE, f"c{i}", "CrowdCounter", Point(121.16, 31.29))
        )
    await hub.create_rule(
        WRITER,
        Rule(
            VILLAGE,
            "flood",
            "WaterLevelGauge",
            "level_cm",
            Threshold(Direction.ABOVE, 30, 25, 60_000),
            "safety.flooding",
        ),
    )
    await hub.create_rule(
        WRITER,
        Rule(
            VILLAGE,
            "crowd",
            "CrowdCounter",
            "count",
            Levels((300, 600, 900), 50, 3),
            "safety.fire_hazard",
        ),
    )
    rng = np.random.default_rng(7)
    half = BATCH // 2
    entities = [f"g{i % ENTITIES}" for i in range(half)] + [f"c{i % ENTITIES}" for i in range(half)]
    properties = ["level_cm"] * half + ["count"] * half
    batches = scaled(30, 3)
    start_ms = int(time.time() * 1000) - 2 * 3_600_000
    per_series = half // ENTITIES
    elapsed = 0.0
    accepted = 0
    for b in range(-1, batches):  # batch -1 warms the caches (series ids) and is not counted
        levels = rng.uniform(0, 28, half)
        levels[rng.integers(0, half, 20)] = 45.0  # a few gauges cross
        counts = np.round(rng.uniform(50, 250, half))
        counts[rng.integers(0, half, 20)] = 950.0  # and a few crowds
        step = np.arange(half) // ENTITIES
        times = start_ms + ((b + 1) * per_series + step) * 100
        columns = Columns.of(
            entities,
            properties,
            np.concatenate([levels, counts]),
            np.concatenate([times, times]),
        )
        began = time.perf_counter()
        outcome = await hub.ingest(WRITER, VILLAGE, columns)
        assert outcome.rejected_count == 0, outcome.rejections[:3]
        if b >= 0:
            elapsed += time.perf_counter() - began
            accepted += outcome.accepted_count
    pending = await store.pending_alarms(100_000)
    rate = accepted / elapsed
    print(
        f"1. in-process ingest, rules on: {rate:,.0f} readings/s "
        f"({accepted:,} readings in batches of {BATCH:,}; {len(pending)} alarms raised) "
        f"target >= 300,000/s: {met(rate, 300_000)}",
        flush=True,
    )
    await store.close()


def village_point(map_file: Path) -> tuple[float, float]:
    import pyogrio

    meta, _fids, geometry, columns = pyogrio.raw.read(str(map_file), layer="grid_cells")
    tenants = columns[list(meta["fields"]).index("tenant")]
    cells = [g for t, g in zip(tenants, shapely.from_wkb(geometry), strict=True) if t == VILLAGE]
    point = shapely.point_on_surface(shapely.union_all(cells).buffer(-0.0008))
    return float(point.x), float(point.y)


async def create_gauges(
    stub: pb_grpc.TwinServiceStub, prefix: str, n: int, where: tuple[float, float]
) -> None:
    for i in range(n):
        try:
            await stub.CreateEntity(
                pb.CreateEntityRequest(
                    parent=PARENT,
                    entity_id=f"{prefix}{i}",
                    entity=pb.Entity(
                        entity_type="WaterLevelGauge",
                        location=geo_pb2.GeoPoint(longitude=where[0], latitude=where[1]),
                    ),
                ),
                metadata=WRITER.to_metadata(),
            )
        except grpc.aio.AioRpcError as exc:  # a retried create finds it made: fine
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


async def over_grpc(stack: Stack) -> None:
    channel = open_channel(stack.config.address("twin"), default_timeout=60)
    stub = pb_grpc.TwinServiceStub(channel)
    where = village_point(stack.config.map_file)
    await create_gauges(stub, "bg", ENTITIES, where)
    await stub.CreateRule(
        pb.CreateRuleRequest(
            parent=PARENT,
            rule_id="bench-flood",
            rule=pb.Rule(
                entity_type="WaterLevelGauge",
                property="level_cm",
                threshold=pb.Threshold(trigger=1500, clear=1400),
                event_category="safety.flooding",
            ),
        ),
        metadata=WRITER.to_metadata(),
    )
    rng = np.random.default_rng(11)
    now_ms = int(time.time() * 1000) - 3_600_000
    ids = [f"bg{i}" for i in range(ENTITIES)]
    counter = iter(range(10**9))

    def request() -> pb.IngestTelemetryRequest:
        k = next(counter)
        return pb.IngestTelemetryRequest(
            parent=PARENT,
            columns=pb.TelemetryColumns(
                entities=ids,
                properties=["level_cm"] * GRPC_BATCH,
                values=rng.uniform(0, 100, GRPC_BATCH).tolist(),
                observe_times_ms=[now_ms + k * 10] * GRPC_BATCH,
            ),
        )

    metadata = WRITER.to_metadata()
    await stub.IngestTelemetry(request(), metadata=metadata)  # warm up
    seconds = scaled(15.0, 3.0)
    done = 0
    began = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() - began < seconds:
            answer = await stub.IngestTelemetry(request(), metadata=metadata)
            assert answer.accepted_count == GRPC_BATCH, answer
            done += answer.accepted_count

    await asyncio.gather(worker(), worker())
    rate = done / (time.perf_counter() - began)
    print(
        f"2. gRPC IngestTelemetry, batches of {GRPC_BATCH:,}, 2 in flight: {rate:,.0f} readings/s "
        f"target >= 50,000/s: {met(rate, 50_000)}",
        flush=True,
    )
    await channel.close()


async def alarm_latency(stack: Stack) -> None:
    twin_channel = open_channel(stack.config.address("twin"), default_timeout=30)
    events_channel = open_channel(stack.config.address("events"), default_timeout=None)
    twin = pb_grpc.TwinServiceStub(twin_channel)
    events = ev_grpc.EventsServiceStub(events_channel)
    n = scaled(200, 30)
    await create_gauges(twin, "lat", n, village_point(stack.config.map_file))
    await twin.CreateRule(
        pb.CreateRuleRequest(
            parent=PARENT,
            rule_id="bench-latency",
            rule=pb.Rule(
                entity_type="WaterLevelGauge",
                property="level_cm",
                threshold=pb.Threshold(trigger=30, clear=25),
                event_category="safety.flooding",
            ),
        ),
        metadata=WRITER.to_metadata(),
    )
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    seen = asyncio.Event()
    stream = events.WatchEvents(
        ev_pb.WatchEventsRequest(parent=PARENT, after_offset=-1), metadata=WATCHER.to_metadata()
    )

    async def watch() -> None:
        async for change in stream:
            if change.type != "event.reported" or "/entities/lat" not in change.event.description:
                continue
            gauge = change.event.description.rsplit("/entities/", 1)[1].rstrip("]")
            if gauge in arrived:
                raise AssertionError(f"a second event for {gauge}'s episode")
            arrived[gauge] = time.perf_counter()
            if len(arrived) == n:
                seen.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    metadata = WRITER.to_metadata()
    for i in range(n):
        gauge = f"lat{i}"
        request = pb.IngestTelemetryRequest(
            parent=PARENT,
            columns=pb.TelemetryColumns(entities=[gauge], properties=["level_cm"], values=[45.0]),
        )
        sent[gauge] = time.perf_counter()
        await twin.IngestTelemetry(request, metadata=metadata)
        await asyncio.sleep(0.05)
    await asyncio.wait_for(seen.wait(), 60)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    latencies = np.array([arrived[g] - sent[g] for g in sent]) * 1000
    p50, p95 = np.percentile(latencies, [50, 95])
    print(
        f"3. reading over threshold -> event stored: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
        f"({n} episodes, one event each) target p95 < 50 ms: {met(p95, 50, True)}",
        flush=True,
    )
    await twin_channel.close()
    await events_channel.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-twin-") as tmp:
        root = Path(tmp)
        asyncio.run(in_process(root))
        config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
        stack = Stack(config)
        try:
            stack.ensure_demo_data()
            for name in ("map", "events", "twin"):
                stack.start(name)
            stack.wait_ready(120, services=("map", "events", "twin"))
            asyncio.run(over_grpc(stack))
            asyncio.run(alarm_latency(stack))
        finally:
            stack.stop_all()
    if QUICK:
        print(QUICK_NOTE)


if __name__ == "__main__":
    command_line(__doc__)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

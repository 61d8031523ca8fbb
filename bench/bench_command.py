"""Command: dispatch decisions, report -> offer through the whole platform, and timers.

Figures, one line each with its target:
  1. dispatch decisions/s in-process: the handler choice (on duty, role, capacity,
     nearest, least recently assigned) over a roster of 1,000 handlers carrying 10,000
     open tasks, each decision adding a task to the chosen one (target >= 5,000/s);
  2. report -> offer: reports POSTed through the gateway at a steady 100/s to the
     platform as `make run` starts it (devstack: real processes), its bus on a private
     redis-server as in production (Redis Streams),
     whose command store already holds 1,000 handlers and 10,000 open tasks; latency is
     the task's offer time (server clock) minus the report's scheduled send time, so
     queueing, the events outbox, the bus, dispatch and the offer are all inside it
     (target p95 < 100 ms);
  3. timers: 10,000 durable timers due within the same ten seconds, fired by the
     scheduler from the SQLite store; lateness = fire time - due time (target: every one
     within 5 s of its deadline).
`BENCH_QUICK=1` runs the same paths on fewer reports and timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyogrio
import shapely

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import QUICK, command_line, scaled  # noqa: E402  (sets the key ring first)
from devstack.stack import Stack, StackConfig, free_port  # noqa: E402
from services.command.domain.dispatch import Roster, choose  # noqa: E402
from services.command.domain.model import (  # noqa: E402
    HandlerProfile,
    Position,
    RoutingDecision,
    Task,
    TaskState,
)
from services.command.domain.ports import NewTask  # noqa: E402
from services.command.domain.roads import RoadNetwork  # noqa: E402
from services.command.domain.timers import Scheduler, Timer  # noqa: E402
from services.command.store.sqlite import SqliteCommandStore  # noqa: E402
from services.kit.layer_geometry import LayerGeometry  # noqa: E402

HANDLERS = 1_000
OPEN_TASKS = 10_000
TOWN = "sh-jiading-anting"
VILLAGES = ("sh/jiading/anting/xingming", "sh/jiading/anting/xiangyang")
# The demo town's extent (degrees), where bench handlers stand.
BOX = (121.150, 31.280, 121.175, 31.300)
PROBE = "safety.bench_probe"
REDIS_OPTIONS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
OFFER_TIMEOUT = timedelta(minutes=10)  # the demo rules' default


def say(text: str) -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def handlers(rng: np.random.Generator, count: int, now: datetime) -> list[HandlerProfile]:
    lon = rng.uniform(BOX[0], BOX[2], count)
    lat = rng.uniform(BOX[1], BOX[3], count)
    return [
        HandlerProfile(
            tenant=VILLAGES[i % 2],
            id=f"bench-h{i:04d}",
            user=f"users/bench-h{i:04d}",
            display_name=f"Bench handler {i}",
            roles=("grid_worker",),
            capacity=50,
            on_duty=True,
            position=Position(float(lon[i]), float(lat[i])),
            open_tasks=0,
            last_assigned=now - timedelta(seconds=float(rng.uniform(0, 3600))),
            create_time=now,
        )
        for i in range(count)
    ]


# -- 1. dispatch decisions -------------------------------------------------------------


def bench_decisions() -> None:
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    roster = Roster.of(handlers(rng, HANDLERS, now), now)
    roster.open_tasks[:] = rng.multinomial(OPEN_TASKS, np.full(HANDLERS, 1 / HANDLERS))
    decisions = scaled(20_000, 2_000)
    lon = rng.uniform(BOX[0], BOX[2], decisions)
    lat = rng.uniform(BOX[1], BOX[3], decisions)
    started = time.perf_counter()
    chosen = 0
    for i in range(decisions):
        choice = choose(roster, Position(float(lon[i]), float(lat[i])))
        if choice is not None:
            roster.open_tasks[choice.index] += 1
            roster.last_assigned[choice.index] = time.time()
            chosen += 1
    elapsed = time.perf_counter() - started
    say(
        f"1. dispatch decisions: {decisions / elapsed:,.0f} decisions/s in-process over "
        f"{HANDLERS:,} handlers and {OPEN_TASKS:,} open tasks ({chosen:,} of {decisions:,} "
        f"placed; target >= 5,000/s): {verdict(decisions / elapsed >= 5_000)}"
    )


def street_grid(spacing_deg: float = 0.0015) -> LayerGeometry:
    """Streets every ~150 m across the town's extent, noded where they cross."""
    west, south, east, north = BOX
    lines = [
        shapely.LineString([(x, south), (x, north)]) for x in np.arange(west, east, spacing_deg)
    ]
    lines += [
        shapely.LineString([(west, y), (east, y)]) for y in np.arange(south, north, spacing_deg)
    ]
    noded = shapely.get_parts(shapely.union_all(lines))
    return LayerGeometry("tenants/bench/layers/roads", tuple(noded), 1)


def bench_decisions_by_road() -> None:
    rng = np.random.default_rng(2)
    now = datetime.now(UTC)
    started = time.perf_counter()
    network = RoadNetwork.of(street_grid())
    assert network is not None
    built_ms = (time.perf_counter() - started) * 1000
    roster = Roster.of(handlers(rng, HANDLERS, now), now)
    decisions = scaled(2_000, 200)
    lon = rng.uniform(BOX[0], BOX[2], decisions)
    lat = rng.uniform(BOX[1], BOX[3], decisions)
    started = time.perf_counter()
    by_road = 0
    for i in range(decisions):
        choice = choose(roster, Position(float(lon[i]), float(lat[i])), roads=network)
        if choice is not None:
            by_road += choice.by_road
            roster.open_tasks[choice.index] += 1
    elapsed = time.perf_counter() - started
    say(
        f"1b. dispatch by road: {decisions / elapsed:,.0f} decisions/s over {HANDLERS:,} "
        f"handlers on a street grid of {network.graph.number_of_nodes():,} nodes (built once "
        f"in {built_ms:.0f} ms); {by_road:,} of {decisions:,} measured by road"
    )
    if by_road != decisions:
        raise SystemExit("every handler stands near a street: all should be measured by road")


# -- 2. report -> offer through the platform -------------------------------------------


def seed_command_store(path: Path) -> None:
    """1,000 handlers and 10,000 open (accepted) tasks, written before the service starts."""
    rng = np.random.default_rng(2)
    now = datetime.now(UTC)
    store = SqliteCommandStore(path, synchronous="NORMAL")
    profiles = handlers(rng, HANDLERS, now)

    async def seed() -> None:
        for profile in profiles:
            await store.create_handler(profile)
        owners = rng.integers(0, HANDLERS, OPEN_TASKS)
        seeded: list[NewTask] = []
        for i in range(OPEN_TASKS):
            owner = profiles[int(owners[i])]
            task = Task(
                tenant=owner.tenant,
                id=f"task_bench{i:05d}",
                event=f"tenants/{owner.tenant.replace('/', '-')}/events/ev_bench{i:05d}",
                state=TaskState.ACCEPTED,
                category="safety.fire_hazard",
                severity=3,
                grid_cell="",
                village=owner.tenant,
                location=owner.position or Position(0, 0),
                routing=RoutingDecision("", "seeded by the benchmark", "grid_worker", ""),
                create_time=now,
                update_time=now,
                handler=owner.user,
                offer_time=now,
                accept_time=now,
            )
            seeded.append(NewTask(task, [], []))
        for first in range(0, len(seeded), 1000):
            await store.create_tasks(seeded[first : first + 1000])
        await store.close()

    asyncio.run(seed())


def report_points(map_file: Path, count: int) -> list[tuple[float, float]]:
    """Points inside the demo villages' grid cells (where the map locates them)."""
    _meta, _fids, geometry, _columns = pyogrio.raw.read(str(map_file), layer="grid_cells")
    cells = shapely.from_wkb(geometry)
    rng = np.random.default_rng(3)
    points: list[tuple[float, float]] = []
    while len(points) < count:
        cell = cells[int(rng.integers(len(cells)))]
        minx, miny, maxx, maxy = cell.bounds
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if cell.contains(shapely.Point(lon, lat)):
            points.append((round(float(lon), 6), round(float(lat), 6)))
    return points


async def send_reports(
    base: str, headers: dict[str, str], points: list[tuple[float, float]], rate: float
) -> dict[str, float]:
    """POST every report at its scheduled moment; event name -> scheduled send (epoch s)."""
    sent: dict[str, float] = {}
    errors: list[str] = []
    retried: list[int] = []
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:
        start = time.time() + 0.5

        async def one(i: int, lon: float, lat: float) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            body = {
                "category": PROBE,
                "description": f"bench report {i}",
                "location": {"longitude": lon, "latitude": lat},
                "request_id": f"bench-command-{os.getpid()}-{i}",
            }
            for attempt in range(3):  # a dropped keep-alive connection: the key makes it safe
                try:
                    answer = await c.post(f"/v1/tenants/{TOWN}/events", json=body)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    retried.append(i)
            if answer.status_code != 201:
                errors.append(f"{answer.status_code} {answer.text[:200]}")
                return
            sent[answer.json()["name"]] = due

        await asyncio.gather(*(one(i, lon, lat) for i, (lon, lat) in enumerate(points)))
    if errors:
        raise RuntimeError(f"{len(errors)} reports failed, first: {errors[0]}")
    if retried:
        say(f"   ({len(retried)} reports sent again after a dropped connection)")
    return sent


async def offer_times(
    base: str, headers: dict[str, str], wanted: set[str], within: float
) -> dict[str, float | None]:
    """Event name -> offer time (epoch s; None when it waits) of each wanted event's task."""
    found: dict[str, float | None] = {}
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
        while time.monotonic() < deadline and len(found) < len(wanted):
            token = ""
            while True:
                page = await c.get(
                    f"/v1/tenants/{TOWN}/tasks",
                    params={"page_size": 1000, "page_token": token, "state": "assigned"},
                )
                page.raise_for_status()
                body = page.json()
                for task in body["tasks"]:
                    if task["event"] in wanted and task["offer_expire_time"]:
                        expire = datetime.fromisoformat(task["offer_expire_time"])
                        found[task["event"]] = (expire - OFFER_TIMEOUT).timestamp()
                token = body["next_page_token"]
                if not token:
                    break
            if len(found) < len(wanted):
                await asyncio.sleep(0.5)
    for name in wanted - set(found):
        found[name] = None
    return found


def start_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    """A private redis-server for the bus, as production runs it (Redis Streams)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), *REDIS_OPTIONS], stdout=out, stderr=out
        )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def bench_report_to_offer(tmp: Path) -> None:
    config = StackConfig.on_free_ports(tmp / "data", log_dir=tmp / "logs")
    config.extra_env["GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE"] = "100000000"
    redis_port = free_port()
    bus_url = f"redis://127.0.0.1:{redis_port}/0"
    config.extra_env["GRASSROOTS_EVENTS_BUS_URL"] = bus_url
    config.extra_env["GRASSROOTS_COMMAND_BUS_URL"] = bus_url
    redis_server = start_redis(redis_port, tmp / "logs" / "redis.log")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    seed_command_store(config.data_dir / "command.sqlite3")
    stack = Stack(config)
    try:
        stack.start_all()
        stack.wait_ready(120)
        stack.install_demo_identities()
        stack.install_demo_command()
        headers = stack.api_headers()
        base = config.gateway_url
        made = httpx.post(
            f"{base}/v1/tenants/{TOWN}/categories",
            headers=headers,
            json={
                "code": PROBE,
                "display_name": "Benchmark probe",
                "duplicate_radius_meters": 0,
                "duplicate_window_minutes": 0,
            },
            timeout=30,
        )
        assert made.status_code in (200, 201, 409), made.text
        count = scaled(3_000, 150)
        rate = 100.0
        points = report_points(config.map_file, count)
        sent = asyncio.run(send_reports(base, headers, points, rate))
        offers = asyncio.run(offer_times(base, headers, set(sent), within=60))
        latencies = [
            (offered - sent[name]) * 1000 for name, offered in offers.items() if offered is not None
        ]
        waiting = sum(1 for offered in offers.values() if offered is None)
        say(
            f"2. report -> offer through the gateway at {rate:.0f} reports/s ({len(sent):,} "
            f"reports, {HANDLERS:,} seeded handlers, {OPEN_TASKS:,} open tasks): "
            f"p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
            f"max {max(latencies, default=float('nan')):.1f} ms; {waiting} not offered "
            f"(target p95 < 100 ms): {verdict(percentile(latencies, 95) < 100 and not waiting)}"
        )
    finally:
        stack.stop_all()
        redis_server.terminate()
        redis_server.wait(10)


# -- 3. timers -------------------------------------------------------------------------


def bench_timers(tmp: Path) -> None:
    count = scaled(10_000, 1_000)
    spread = scaled(10.0, 2.0)

    async def run() -> list[float]:
        store = SqliteCommandStore(tmp / "timers.sqlite3")
        lateness: list[float] = []

        every_one = asyncio.Event()

        async def fired(timers: Sequence[Timer]) -> None:
            now = datetime.now(UTC)
            lateness.extend((now - t.due).total_seconds() for t in timers)
            if len(lateness) >= count:
                every_one.set()

        scheduler = Scheduler(store, owner="bench", batch=1000, poll_seconds=0.2)
        scheduler.on("bench.deadline", fired)
        start = datetime.now(UTC) + timedelta(seconds=3)
        timers = [
            Timer(
                f"bench-{i}",
                "sh/jiading/anting",
                "bench.deadline",
                start + timedelta(seconds=spread * i / count),
            )
            for i in range(count)
        ]
        for first in range(0, count, 1000):
            await store.schedule_timers(timers[first : first + 1000])
        stop = asyncio.Event()
        loop = asyncio.create_task(scheduler.run(stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(every_one.wait(), 3 + spread + 30)
        stop.set()
        scheduler.wake()
        await loop
        await store.close()
        return lateness

    lateness = asyncio.run(run())
    say(
        f"3. timers: {len(lateness):,} of {count:,} due within {spread:.0f} s fired; lateness "
        f"p50 {percentile(lateness, 50) * 1000:.0f} ms, p99 {percentile(lateness, 99) * 1000:.0f} "
        f"ms, max {max(lateness, default=float('nan')) * 1000:.0f} ms (target: all within 5 s): "
        f"{verdict(len(lateness) == count and max(lateness) < 5)}"
    )


def main() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(SystemExit(143)))
    started = time.perf_counter()
    bench_decisions()
    bench_decisions_by_road()
    with tempfile.TemporaryDirectory(prefix="bench-command-") as tmp:
        bench_timers(Path(tmp))
        bench_report_to_offer(Path(tmp))
    say(f"total {time.perf_counter() - started:.0f}s{' (quick)' if QUICK else ''}")


if __name__ == "__main__":
    command_line(__doc__)
    main()

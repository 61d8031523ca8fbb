"""Creating events end to end: HTTP through the gateway, gRPC batches, and the Redis bus.

The platform runs as real processes (devstack.Stack: five services and the gateway on free
loopback ports, with the demo village) plus a private redis-server on a free loopback port
that the events service publishes its outbox to (Redis Streams, stream "events"). The load
generator is this process; everything shares the machine's CPUs, so each HTTP run also
reports the CPU seconds every process spent per 1,000 creates (from /proc/<pid>/stat).

Reports are placed on per-category lattices inside the village's grid cells, spaced wider
than the category's duplicate radius and visited in a shuffled order, so a report repeats
an open one (and is stored as a duplicate) only once every (point, category) pair is used.
Every run starts the events service on a fresh SQLite file, so runs compare like with like;
a run that sends more reports than there are pairs (about 21,000: W1 at 64 connections on
a quiet machine) stores the rest as duplicates, which costs a little more each (the
original is found and linked), and its "checked" line says how many.

Figures, one line each with its target:
  W1. POST /v1/tenants/{town}/events driven by wrk (bench/wrk_events.lua: a fresh
      Idempotency-Key and a place per request, keep-alive, the town app's key), and
      beside it, in the same run, the floor (bench/events_floor.py: a bare FastAPI route
      forwarding one grpc.aio call to a bare grpc.aio server) with the same wrk settings:
      creates/s, ours as a fraction of the floor, CPU ms per create of every process
      (wrk's too); repeated WRK_REPEATS times on a fresh events file, then the medians;
  W2. the same for GET /v1/tenants/{town}/events/{id} of the events just created;
  W3. POST at a fixed 300 creates/s: wrk threads with one connection each, each sending
      on its own schedule; latency from each scheduled send time (queueing included);
  (without wrk installed the W lines say how to get it, and 1b runs instead of W3;
  `python bench/bench_events.py wrk` prints the W figures alone)
  1a. POST /v1/tenants/{town}/events, closed loop of N clients (16, 32, 64), each on
      its own keep-alive HTTP/1.1 connection, 15 s each: creates/s, p50 / p99; once more
      at the best N with GRASSROOTS_EVENTS_SQLITE_SYNCHRONOUS=NORMAL;
  1b. POST /v1/tenants/{town}/events, open loop at a fixed 300 requests/s for 15 s,
      latency counted from each request's scheduled send time (queueing included): p50 / p99;
  2.  gRPC BatchCreateEvents straight to the events service, batches of 500 (two calls in
      flight), for about 20 s: creates/s;
  3.  created -> delivered to a Redis consumer group at a steady 500 events/s: p50 / p99 of
      (receive time - the event's create_time from the payload).
Every HTTP answer is checked: 201 (`Idempotent-Replayed: false` for a fresh key), and the
grid cell the map service found is the one the point lies in; every read answers the
event asked for, in the grid cell it was stored with. The machine is shared, so absolute
figures move with its load: the floor measured in the same run is the yardstick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import redis
import shapely

# `python bench/bench_events.py` puts bench/ on sys.path, bench/run.py the repo root.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench import wrk_driver  # noqa: E402
from bench.common import (  # noqa: E402  (sets the key ring first)
    QUICK,
    QUICK_NOTE,
    UNTHROTTLED_GATEWAY_ENV,
    command_line,
    create_bench_app,
    scaled,
)
from bench.events_floor import Floor  # noqa: E402
from devstack.stack import Stack, StackConfig, free_port  # noqa: E402
from grassroots.events.v1 import events_service_pb2 as pb  # noqa: E402
from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc  # noqa: E402
from grassroots.type.v1 import geo_pb2  # noqa: E402
from services.events.domain.categories import DEFAULT_CATEGORIES  # noqa: E402
from services.kit import tenancy  # noqa: E402
from services.kit.bus import open_bus  # noqa: E402
from services.kit.client import open_channel  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.map.seed import load_grid_index  # noqa: E402

SEED = 20240611
TOWN = "sh/jiading/anting"
PARENT = tenancy.tenant_name(TOWN)
EVENTS = f"/v1/{PARENT}/events"
PRINCIPAL = Principal(
    "users/bench", TOWN, scopes=frozenset({"events:read", "events:write", "map:read"})
)
STREAM = "events"

CONCURRENCY = scaled((16, 32, 64), (16,))
RUN_SECONDS = scaled(15.0, 2.0)
WARMUP_SECONDS = 2.0
OPEN_RATE = 300
OPEN_SECONDS = scaled(15.0, 2.0)
OPEN_POOL = 64
OPEN_GRACE = 5.0
BATCH = 500
BATCH_SECONDS = scaled(20.0, 2.0)
BATCH_IN_FLIGHT = 2
BUS_RATE = 500
BUS_TICK = 0.02
BUS_SECONDS = scaled(15.0, 2.0)
BUS_BLOCK_MS = 5

WRK_THREADS = 2
# 16 connections from one caller is latency-bound: its creates go to the events service as
# one batch at a time, so the rate is connections / batch time. A district-wide burst comes
# from many senders at once; 64 connections is the level the creates target is judged at.
WRK_CONNECTION_LEVELS = (16, 64)
WRK_CONNECTIONS = WRK_CONNECTION_LEVELS[0]  # the level bench/profile_events.py samples at
JUDGED_CONNECTIONS = WRK_CONNECTION_LEVELS[-1]
WRK_SECONDS = scaled(10.0, 1.0)
WRK_REPEATS = scaled(3, 1)
FIXED_LEAD_SECONDS = scaled(3.0, 1.5)  # W3: wrk starts its threads before the schedule
FIXED_GRACE_SECONDS = scaled(5.0, 1.0)  # W3: answers still counted after the schedule
FIXED_CONNECTIONS = 32  # W3: wrk threads, one connection each, each on its own schedule

TARGET_HTTP_RATE = 1_000
TARGET_READ_RATE = 3_000
TARGET_CREATE_SHARE = 0.25  # of the floor's rate, in the same run
TARGET_READ_SHARE = 0.65
TARGET_OPEN_P99_MS = 50.0
TARGET_BATCH_RATE = 3_000
TARGET_BUS_P99_MS = 20.0

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Starting six processes took over 90 s on the shared two-core machine under load.
STARTUP_SECONDS = 240
REDIS_OPTIONS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")


def say(text: str) -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in milliseconds."""
    if not seconds:
        return float("nan"), float("nan"), float("nan")
    values = np.asarray(seconds) * 1000
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99), float(values.max())


# -- where reports go ------------------------------------------------------------------


@dataclass
class Slots:
    """(point, category) pairs that cannot repeat one another, in a shuffled order."""

    lon: np.ndarray
    lat: np.ndarray
    category: list[str]
    cell: list[str]

    def __len__(self) -> int:
        return len(self.category)

    def at(self, k: int) -> tuple[float, float, str, str]:
        i = k % len(self.category)
        return float(self.lon[i]), float(self.lat[i]), self.category[i], self.cell[i]


def make_slots(map_file: Path) -> Slots:
    grid = load_grid_index(map_file)
    minx, miny, maxx, maxy = shapely.total_bounds(grid.polygons)
    mid = (miny + maxy) / 2
    lons, lats, cats, cells = [], [], [], []
    for code, category in sorted(DEFAULT_CATEGORIES.items()):
        # Farther apart than the radius (and its search box), so no two can be duplicates.
        spacing = category.duplicate_radius_m * 1.2 + 1.0
        dlat = spacing / 110_000
        dlon = spacing / (111_320 * np.cos(np.radians(mid)))
        x, y = np.meshgrid(np.arange(minx, maxx, dlon), np.arange(miny, maxy, dlat))
        x, y = x.ravel(), y.ravel()
        inside = np.stack([shapely.contains_xy(p, x, y) for p in grid.polygons])
        one = inside.sum(axis=0) == 1  # skip points on a shared edge
        owner = inside.argmax(axis=0)
        for i in np.flatnonzero(one).tolist():
            lons.append(x[i])
            lats.append(y[i])
            cats.append(code)
            cells.append(grid.cells[owner[i]].grid_cell_id)
    order = np.random.default_rng(SEED).permutation(len(cats))
    return Slots(
        np.asarray(lons)[order],
        np.asarray(lats)[order],
        [cats[i] for i in order.tolist()],
        [cells[i] for i in order.tolist()],
    )


# -- CPU accounting --------------------------------------------------------------------


def process_cpu(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads), or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class CpuMeter:
    """CPU seconds per process between `start` and `per_request`.

    For the events service the event loop's thread is also shown on its own: the rest is
    mostly the SQLite thread (and a little of gRPC's C threads). A process that ran only
    in between (wrk) is passed to `per_request` with its own CPU seconds.
    """

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    machine: tuple[float, float] = (0.0, 0.0)

    def _now(self) -> dict[str, float]:
        found = {name: process_cpu(pid) for name, pid in self.pids.items()}
        if "events" in self.pids:
            found["events loop"] = process_cpu(self.pids["events"], self.pids["events"])
        return found

    def start(self) -> None:
        self.before = self._now()
        self.machine = machine_cpu()

    def spent(self, extra: dict[str, float] | None = None) -> dict[str, float]:
        """CPU seconds each process spent since `start` (plus `extra`'s)."""
        now = self._now()
        return {name: now[name] - self.before[name] for name in now} | (extra or {})

    def per_request(
        self, done: int, extra: dict[str, float] | None = None, what: str = "create"
    ) -> str:
        spent = self.spent(extra)
        busy, total = machine_cpu()
        share = (busy - self.machine[0]) / max(total - self.machine[1], 1e-9)

        def per(seconds: float) -> str:
            return f"{1000 * seconds / max(done, 1):.2f}"

        names = [name for name in spent if name != "events loop"]
        parts = [f"{name} {per(spent[name])}" for name in names]
        if "events loop" in spent:
            i = names.index("events")
            parts[i] += f" (event loop thread {per(spent['events loop'])})"
        every = sum(spent[name] for name in names)
        return (
            f"CPU ms per {what}: {', '.join(parts)}; all {per(every)}; "
            f"machine busy {share:.0%} of {os.cpu_count()} CPUs"
        )

    def per_thousand(self, creates: int) -> str:
        return self.per_request(creates)


# -- the platform ----------------------------------------------------------------------


class Platform:
    """The stack, a private redis-server, and a way to restart events on a fresh file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis_port = free_port()
        self.bus_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis: subprocess.Popen[bytes] | None = None
        self.config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
        self.config.extra_env.update(UNTHROTTLED_GATEWAY_ENV)
        self.stack = Stack(self.config)
        self.database = ""
        self.headers: dict[str, str] = {}

    def start(self, tag: str) -> None:
        self.config.log_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        log = open(self.root / "logs" / "redis.log", "ab")  # noqa: SIM115
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), *REDIS_OPTIONS],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(port=self.redis_port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.redis.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        self.config.extra_env["GRASSROOTS_EVENTS_BUS_URL"] = self.bus_url
        self._choose_database(tag, "FULL")
        self.stack.start_all()
        self.stack.wait_ready(STARTUP_SECONDS)
        self.stack.install_demo_identities()
        # The town's own app, with the largest quota an app may have: at thousands of
        # requests a second the demo app's quota, not the platform, would answer 429.
        key = asyncio.run(
            create_bench_app(
                self.config.address("empower"),
                PARENT,
                ["events:read", "events:write"],
                "events benchmark",
            )
        )
        self.headers = {"X-API-Key": key}

    def _choose_database(self, tag: str, synchronous: str) -> None:
        self.database = str(self.config.data_dir / f"events-{tag}.sqlite3")
        self.config.extra_env["GRASSROOTS_EVENTS_DATABASE"] = self.database
        self.config.extra_env["GRASSROOTS_EVENTS_SQLITE_SYNCHRONOUS"] = synchronous

    def fresh_events(self, tag: str, synchronous: str = "FULL") -> None:
        """Restart the events service on a new, empty SQLite file."""
        self.stack.stop("events")
        self._choose_database(tag, synchronous)
        self.stack.start("events")
        self.stack.wait_ready(STARTUP_SECONDS, services=("events",))

    def pids(self) -> dict[str, int]:
        found = {name: self.stack.processes[name].pid for name in ("gateway", "events", "map")}
        assert self.redis is not None
        found["redis"] = self.redis.pid
        found["load generator"] = os.getpid()
        return found

    def outbox_backlog(self) -> int:
        """Outbox entries of the current events file not yet published to Redis."""
        with sqlite3.connect(self.database, timeout=10) as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE published_us IS NULL")
            return int(row.fetchone()[0])

    def stop(self) -> None:
        try:
            self.stack.stop_all()
        finally:
            if self.redis is not None and self.redis.poll() is None:
                self.redis.terminate()
                try:
                    self.redis.wait(10)
                except subprocess.TimeoutExpired:
                    self.redis.kill()
                    self.redis.wait()


# -- 1. HTTP creates -------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    duplicates: int = 0
    errors: int = 0
    first_error: str = ""

    @property
    def created(self) -> int:
        return len(self.latencies)

    def fail(self, text: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = text[:300]


class Reports:
    """Bodies of POST /v1/tenants/{town}/events with distinct request ids, walking the slots."""

    def __init__(self, slots: Slots, tag: str) -> None:
        self.slots = slots
        self.tag = tag
        self.counter = itertools.count()

    def next(self) -> tuple[bytes, str]:
        k = next(self.counter)
        lon, lat, category, cell = self.slots.at(k)
        body = {
            "category": category,
            "description": f"bench report {k}",
            "location": {"longitude": lon, "latitude": lat},
            "request_id": f"{self.tag}-{k}",
        }
        return json.dumps(body).encode(), cell


JSON = {"content-type": "application/json"}


async def post_report(client: httpx.AsyncClient, reports: Reports, tally: Tally) -> bool:
    body, cell = reports.next()
    try:
        response = await client.post(EVENTS, content=body, headers=JSON)
    except httpx.HTTPError as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
        return False
    if response.status_code != 201:
        tally.fail(f"{response.status_code} {response.text}")
        return False
    event = response.json()
    if event["grid_cell"] != cell:
        tally.fail(f"located in {event['grid_cell']!r}, expected {cell!r}")
        return False
    if event["state"] == "duplicate":
        tally.duplicates += 1
    return True


class Connections:
    """`size` keep-alive HTTP/1.1 connections, each its own single-connection httpx client.

    One shared AsyncClient with a pool of N connections costs the load generator far more
    CPU per request as N grows (about 1.3 ms at 1, 3 ms at 16 and 10 ms at 64 on this
    machine; encode/httpx#3215), which would measure httpcore's pool, not the platform.
    """

    def __init__(self, base_url: str, size: int, headers: dict[str, str]) -> None:
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                headers=headers,
                http1=True,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=httpx.Timeout(30.0, pool=None),
            )
            for _ in range(size)
        ]
        self.idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self.clients:
            self.idle.put_nowait(client)

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


async def closed_loop(
    connections: Connections, reports: Reports, clients: int, seconds: float
) -> tuple[Tally, float]:
    """Each client sends its next report on its own connection when the last is answered."""
    tally = Tally()
    started = time.perf_counter()
    stop_at = started + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
        while (sent := time.perf_counter()) < stop_at:
            if await post_report(client, reports, tally):
                tally.latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(one_client(c) for c in connections.clients[:clients]))
    return tally, time.perf_counter() - started


async def settle(connections: Connections, reports: Reports) -> None:
    """Wait until a create goes through (the gateway reconnects to a restarted service)."""
    deadline = time.monotonic() + 20
    while True:
        tally = Tally()
        if await post_report(connections.clients[0], reports, tally):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"creates keep failing: {tally.first_error}")
        await asyncio.sleep(0.2)


async def bench_closed(
    platform: Platform, slots: Slots, clients: int, label: str
) -> tuple[float, str]:
    reports = Reports(slots, f"{label}-c{clients}")
    async with Connections(platform.config.gateway_url, clients, platform.headers) as connections:
        await settle(connections, reports)
        await closed_loop(connections, reports, clients, WARMUP_SECONDS)
        meter = CpuMeter(platform.pids())
        meter.start()
        tally, elapsed = await closed_loop(connections, reports, clients, RUN_SECONDS)
        cpu = meter.per_thousand(tally.created)
    rate = tally.created / elapsed
    p50, p99, _ = percentiles(tally.latencies)
    say(
        f"1a. POST {EVENTS}, closed loop, {clients} clients{label_suffix(label)}, "
        f"{RUN_SECONDS:.0f} s: {rate:,.0f} creates/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        + (
            f"(target >= {TARGET_HTTP_RATE:,}/s sustained): {verdict(rate >= TARGET_HTTP_RATE)}"
            if wrk_driver.missing()
            else "(for comparison: this load generator spends more CPU per request than "
            "a service; the target is judged with wrk, W1)"
        )
    )
    say(f"    {cpu}")
    say(f"    {detail(tally, platform)}")
    return rate, cpu


def label_suffix(label: str) -> str:
    return ", synchronous=NORMAL" if label == "normal" else ", synchronous=FULL"


def detail(tally: Tally, platform: Platform) -> str:
    share = tally.duplicates / max(tally.created, 1)
    text = (
        f"{tally.created:,} created, {share:.1%} stored as duplicates, {tally.errors} errors; "
        f"outbox not yet on Redis at the end: {platform.outbox_backlog():,}"
    )
    if tally.first_error:
        text += f"; first error: {tally.first_error}"
    return text


def open_percentiles(latencies: list[float], unanswered: int) -> tuple[str, str, float]:
    """p50 and p99 over every scheduled request, the unanswered ones counting as infinite."""
    values = np.concatenate([np.asarray(latencies) * 1000, np.full(unanswered, np.inf)])
    p50, p99 = np.percentile(values, [50, 99], method="inverted_cdf")
    cutoff = f"> {(OPEN_SECONDS + OPEN_GRACE) * 1000:,.0f} ms (unanswered)"
    text = [f"{p:.1f} ms" if np.isfinite(p) else cutoff for p in (p50, p99)]
    return text[0], text[1], float(p99)


async def bench_open(platform: Platform, slots: Slots) -> None:
    reports = Reports(slots, "open")
    tally = Tally()
    async with Connections(platform.config.gateway_url, OPEN_POOL, platform.headers) as connections:
        await settle(connections, reports)
        await closed_loop(connections, reports, 4, WARMUP_SECONDS)
        meter = CpuMeter(platform.pids())
        meter.start()
        n = int(OPEN_RATE * OPEN_SECONDS)
        start = time.perf_counter() + 0.05
        tasks: list[asyncio.Task[None]] = []
        late = 0

        async def one(scheduled: float) -> None:
            # Waiting for a free connection is queueing too: it counts in the latency.
            client = await connections.idle.get()
            try:
                if await post_report(client, reports, tally):
                    tally.latencies.append(time.perf_counter() - scheduled)
            finally:
                connections.idle.put_nowait(client)

        for i in range(n):
            scheduled = start + i / OPEN_RATE
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.005:
                late += 1
            tasks.append(asyncio.create_task(one(scheduled)))
        grace = start + OPEN_SECONDS + OPEN_GRACE - time.perf_counter()
        _done, pending = await asyncio.wait(tasks, timeout=max(grace, 0.1))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        cpu = meter.per_thousand(tally.created)
    unanswered = n - tally.created
    p50, p99, p99_ms = open_percentiles(tally.latencies, unanswered)
    say(
        f"1b. POST {EVENTS}, open loop at {OPEN_RATE}/s for {OPEN_SECONDS:.0f} s, from "
        f"scheduled send time: p50 {p50}, p99 {p99} "
        f"(target p99 < {TARGET_OPEN_P99_MS:g} ms): {verdict(p99_ms < TARGET_OPEN_P99_MS)}"
    )
    say(f"    {cpu}")
    say(
        f"    {detail(tally, platform)}; not answered within {OPEN_GRACE:.0f} s of the last "
        f"send: {len(pending):,}; sends more than 5 ms behind schedule: {late}"
    )


# -- W. creates and reads driven by wrk, beside the floor -------------------------------


def write_places(slots: Slots, path: Path) -> Path:
    """The report places for wrk_events.lua: lon,lat,category,cell per line."""
    with open(path, "w") as f:
        for i in range(len(slots)):
            lon, lat, category, cell = slots.at(i)
            f.write(f"{lon!r},{lat!r},{category},{cell}\n")
    return path


def write_ids(database: str, path: Path, limit: int = 50_000) -> Path:
    """Stored events for the read runs: id,cell per line."""
    with sqlite3.connect(database, timeout=10) as conn:
        rows = conn.execute("SELECT id, grid_cell FROM events LIMIT ?", (limit,)).fetchall()
    if not rows:
        raise RuntimeError("no stored events to read")
    with open(path, "w") as f:
        f.writelines(f"{event_id},{cell}\n" for event_id, cell in rows)
    return path


@dataclass
class Measured:
    """One wrk run against ours or the floor, with the CPU line for it."""

    run: wrk_driver.WrkRun
    cpu: str

    @property
    def rate(self) -> float:
        return self.run.rate


def drive(url: str, pids: dict[str, int], what: str, **settings: object) -> Measured:
    meter = CpuMeter(pids)
    meter.start()
    run = wrk_driver.run(url, **settings)  # type: ignore[arg-type]
    return Measured(run, meter.per_request(run.ok, {"wrk": run.cpu_seconds}, what))


def checked(run: wrk_driver.WrkRun, what: str) -> str:
    text = (
        f"checked: {run.ok:,} of {run.requests:,} answers {what}, "
        f"{run.duplicates:,} stored as duplicates, {run.errors:,} errors"
    )
    if run.first_error:
        text += f"; first error: {run.first_error}"
    return text


EXPECTED = {"creates": "201 in the right grid cell", "reads": "200, the event asked for"}


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def settle_sync(platform: Platform, reports: Reports) -> None:
    async def once() -> None:
        async with Connections(platform.config.gateway_url, 1, platform.headers) as c:
            await settle(c, reports)

    asyncio.run(once())


def bench_wrk(platform: Platform, floor: Floor, slots: Slots, places: Path) -> None:
    """W1 creates and W2 reads, each beside the floor, WRK_REPEATS times; W3 fixed rate."""
    results: dict[str, list[float]] = defaultdict(list)
    for connections in WRK_CONNECTION_LEVELS:
        bench_wrk_level(platform, floor, slots, places, connections, results)
    for connections in WRK_CONNECTION_LEVELS:
        judged = connections == JUDGED_CONNECTIONS
        for label, what, target, share in (
            ("W1.", "creates", TARGET_HTTP_RATE, TARGET_CREATE_SHARE),
            ("W2.", "reads", TARGET_READ_RATE, TARGET_READ_SHARE),
        ):
            ours, floor_rates, shares = (
                results[f"{what} {k} {connections}"] for k in ("ours", "floor", "share")
            )
            verdicts = (
                f"rate {verdict(median(ours) >= target)} (target >= {target:,}/s), "
                f"share {verdict(median(shares) >= share)} (target >= {share:.0%})"
                if judged
                else f"shown beside the judged level ({JUDGED_CONNECTIONS} connections)"
            )
            say(
                f"{label} {what} with wrk at {connections} connections, median of {WRK_REPEATS}: "
                f"{median(ours):,.0f}/s (runs {', '.join(f'{v:,.0f}' for v in ours)}), "
                f"floor {median(floor_rates):,.0f}/s, ours = {median(shares):.0%} of the floor "
                f"(runs {', '.join(f'{v:.0%}' for v in shares)}): {verdicts}"
            )
    bench_fixed_rate(platform, slots, places)


def bench_wrk_level(
    platform: Platform,
    floor: Floor,
    slots: Slots,
    places: Path,
    connections: int,
    results: dict[str, list[float]],
) -> None:
    """W1 creates and W2 reads at one number of connections, each beside the floor."""
    key = platform.headers["X-API-Key"]
    base = {"threads": WRK_THREADS, "connections": connections, "seconds": WRK_SECONDS}
    shape = f"wrk, {WRK_THREADS} threads, {connections} connections, {WRK_SECONDS:g} s"
    for r in range(WRK_REPEATS):
        tag = f"wrk{connections}-{r}"
        platform.fresh_events(tag)
        settle_sync(platform, Reports(slots, f"settle{r}"))
        ours_pids = {k: v for k, v in platform.pids().items() if k != "load generator"}
        if not QUICK:  # the platform's first second after a restart is not its steady state
            wrk_driver.run(
                platform.config.gateway_url,
                mode="create",
                path=EVENTS,
                api_key=key,
                tag=f"warm{connections}-{r}",
                places=places,
                first=len(slots) // 2,  # far from where the measured run reports
                threads=WRK_THREADS,
                connections=connections,
                seconds=1,
            )
        create = drive(
            platform.config.gateway_url,
            ours_pids,
            "create",
            mode="create",
            path=EVENTS,
            api_key=key,
            tag=tag,
            places=places,
            **base,
        )
        floor_create = drive(
            floor.url,
            floor.pids(),
            "request",
            mode="create",
            path=EVENTS,
            places=places,
            check=False,
            **base,
        )
        ids = write_ids(platform.database, platform.root / f"ids-{connections}-{r}.csv")
        read = drive(
            platform.config.gateway_url,
            ours_pids,
            "read",
            mode="get",
            path=EVENTS,
            api_key=key,
            ids=ids,
            **base,
        )
        floor_read = drive(
            floor.url,
            floor.pids(),
            "request",
            mode="get",
            path=EVENTS,
            ids=ids,
            check=False,
            **base,
        )
        run = f"run {r + 1}/{WRK_REPEATS}"
        for label, ours, bare, target, share, what in (
            ("W1. POST", create, floor_create, TARGET_HTTP_RATE, TARGET_CREATE_SHARE, "creates"),
            ("W2. GET", read, floor_read, TARGET_READ_RATE, TARGET_READ_SHARE, "reads"),
        ):
            fraction = ours.rate / max(bare.rate, 1e-9)
            results[f"{what} ours {connections}"].append(ours.rate)
            results[f"{what} floor {connections}"].append(bare.rate)
            results[f"{what} share {connections}"].append(fraction)
            path = EVENTS if label.startswith("W1") else EVENTS + "/{id}"
            say(
                f"{label} {path} ({shape}), {run}: {ours.rate:,.0f} {what}/s "
                f"({ours.run.latency()}); floor {bare.rate:,.0f} req/s "
                f"({bare.run.latency()}); ours = {fraction:.0%} of the floor "
                + (
                    f"(targets >= {target:,}/s, >= {share:.0%} of the floor, "
                    "judged on the median below)"
                    if connections == JUDGED_CONNECTIONS
                    else f"(not judged: the targets apply at {JUDGED_CONNECTIONS} connections)"
                )
            )
            say(f"    ours:  {ours.cpu}")
            say(f"    floor: {bare.cpu}")
            say(f"    {checked(ours.run, EXPECTED[what])}")
            if ours.run.errors or bare.run.errors:
                raise RuntimeError(f"wrong answers: {ours.run.first_error or bare.run.first_error}")
        say(f"    outbox not yet on Redis after the reads: {platform.outbox_backlog():,}")


def bench_fixed_rate(platform: Platform, slots: Slots, places: Path) -> None:
    """W3: creates sent on a schedule at OPEN_RATE/s; latency from each scheduled send."""
    if not QUICK:  # quick mode keeps the file of W1/W2: fewer restarts, same checks
        platform.fresh_events("fixed")
        settle_sync(platform, Reports(slots, "settle-fixed"))
    measured = drive(
        platform.config.gateway_url,
        {k: v for k, v in platform.pids().items() if k != "load generator"},
        "create",
        mode="create",
        path=EVENTS,
        api_key=platform.headers["X-API-Key"],
        tag="fixed",
        places=places,
        threads=FIXED_CONNECTIONS,
        connections=FIXED_CONNECTIONS,
        seconds=OPEN_SECONDS,
        rate=OPEN_RATE,
        first=len(slots) // 3,  # away from W1's places
        lead=FIXED_LEAD_SECONDS,
        grace=FIXED_GRACE_SECONDS,
    )
    run = measured.run
    scheduled = run.scheduled
    answered = len(run.from_schedule_ms)
    marks = wrk_driver.schedule_percentiles(run.from_schedule_ms, max(0, scheduled - answered))

    def ms(value: float) -> str:
        return f"{value:.1f} ms" if np.isfinite(value) else "unanswered"

    say(
        f"W3. POST {EVENTS} at a fixed {OPEN_RATE}/s (wrk, {FIXED_CONNECTIONS} connections "
        f"each sending on its own schedule, {OPEN_SECONDS:g} s), from the scheduled send "
        f"time: p50 {ms(marks['p50'])}, p90 {ms(marks['p90'])}, p99 {ms(marks['p99'])}, "
        f"p99.9 {ms(marks['p99.9'])}, max {ms(marks['max'])} "
        f"(target p99 < {TARGET_OPEN_P99_MS:g} ms): {verdict(marks['p99'] < TARGET_OPEN_P99_MS)}"
    )
    say(
        f"    sent {run.requests:,} of {scheduled:,} scheduled, {answered:,} answered "
        f"within {FIXED_GRACE_SECONDS:g} s of the schedule's end; "
        f"from each actual send (wrk's own figure, which leaves out waiting for a "
        f"connection): {run.latency()}"
    )
    say(f"    {measured.cpu}")
    say(f"    {checked(run, '201 in the right grid cell')}")
    if run.errors:
        raise RuntimeError(f"wrong answers: {run.first_error}")


# -- 2. gRPC BatchCreateEvents ---------------------------------------------------------


class Batches:
    """BatchCreateEventsRequests of distinct reports, walking the slots."""

    def __init__(self, slots: Slots, tag: str) -> None:
        self.slots = slots
        self.tag = tag
        self.counter = itertools.count()

    def next(self, size: int) -> pb.BatchCreateEventsRequest:
        items = []
        for _ in range(size):
            k = next(self.counter)
            lon, lat, category, _cell = self.slots.at(k)
            items.append(
                pb.CreateEventRequest(
                    request_id=f"{self.tag}-{k}",
                    event=pb.Event(
                        category=category,
                        description=f"bench report {k}",
                        location=geo_pb2.GeoPoint(longitude=lon, latitude=lat, crs="EPSG:4326"),
                    ),
                )
            )
        return pb.BatchCreateEventsRequest(parent=PARENT, requests=items)


async def bench_batches(platform: Platform, slots: Slots) -> None:
    channel = open_channel(platform.config.address("events"), default_timeout=60)
    try:
        stub = pb_grpc.EventsServiceStub(channel)
        metadata = PRINCIPAL.to_metadata()
        batches = Batches(slots, "batch")
        await stub.BatchCreateEvents(batches.next(BATCH), metadata=metadata)
        meter = CpuMeter(platform.pids())
        meter.start()
        created = duplicates = 0
        latencies: list[float] = []
        started = time.perf_counter()
        stop_at = started + BATCH_SECONDS

        async def caller() -> None:
            nonlocal created, duplicates
            while (sent := time.perf_counter()) < stop_at:
                response = await stub.BatchCreateEvents(batches.next(BATCH), metadata=metadata)
                latencies.append(time.perf_counter() - sent)
                created += len(response.events)
                duplicates += sum(e.state == pb.Event.STATE_DUPLICATE for e in response.events)

        await asyncio.gather(*(caller() for _ in range(BATCH_IN_FLIGHT)))
        elapsed = time.perf_counter() - started
        cpu = meter.per_thousand(created)
    finally:
        await channel.close()
    rate = created / elapsed
    p50, p99, _ = percentiles(latencies)
    say(
        f"2.  gRPC BatchCreateEvents, batches of {BATCH}, {BATCH_IN_FLIGHT} calls in flight, "
        f"{elapsed:.0f} s: {rate:,.0f} creates/s, per call p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"(target >= {TARGET_BATCH_RATE:,}/s): {verdict(rate >= TARGET_BATCH_RATE)}"
    )
    say(f"    {cpu}")
    say(
        f"    {created:,} created, {duplicates / max(created, 1):.1%} stored as duplicates "
        f"({len(slots):,} distinct point/category slots); "
        f"outbox not yet on Redis at the end: {platform.outbox_backlog():,} "
        f"(stored and durable; the relay publishes them after the run)"
    )


# -- 3. the bus ------------------------------------------------------------------------


async def bench_bus(platform: Platform, slots: Slots) -> None:
    bus = open_bus(platform.bus_url)
    channel = open_channel(platform.config.address("events"), default_timeout=10)
    per_tick = round(BUS_RATE * BUS_TICK)
    try:
        stub = pb_grpc.EventsServiceStub(channel)
        metadata = PRINCIPAL.to_metadata()
        batches = Batches(slots, "bus")
        await stub.BatchCreateEvents(batches.next(per_tick), metadata=metadata)
        await bus.ensure_group(STREAM, "bench", "$")
        # event id -> (seconds from create to receipt, from create to XADD)
        seen: dict[str, tuple[float, float]] = {}
        created: set[str] = set()
        stop = asyncio.Event()
        produced = asyncio.Event()
        all_seen = asyncio.Event()

        async def consume() -> None:
            while not stop.is_set():
                deliveries = await bus.read(STREAM, "bench", "bench-1", 1000, BUS_BLOCK_MS)
                now = time.time()
                for d in deliveries:
                    event = pb.Event.FromString(d.message.payload)
                    made = event.create_time.seconds + event.create_time.nanos / 1e9
                    added = int(d.id.split("-")[0]) / 1000
                    seen[d.message.headers["event_id"]] = (now - made, added - made)
                if deliveries:
                    await bus.ack(STREAM, "bench", [d.id for d in deliveries])
                if produced.is_set() and created <= seen.keys():
                    all_seen.set()

        async def produce(request: pb.BatchCreateEventsRequest) -> None:
            response = await stub.BatchCreateEvents(request, metadata=metadata)
            created.update(e.name.rsplit("/", 1)[-1] for e in response.events)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        meter = CpuMeter(platform.pids())
        meter.start()
        ticks = int(BUS_SECONDS / BUS_TICK)
        start = time.perf_counter() + 0.02
        producers = []
        for i in range(ticks):
            delay = start + i * BUS_TICK - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            producers.append(asyncio.create_task(produce(batches.next(per_tick))))
        await asyncio.gather(*producers)
        produced.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), 5)
        cpu = meter.per_thousand(len(created))
        stop.set()
        await consumer
    finally:
        await channel.close()
        await bus.close()
    mine = [seen[i] for i in created if i in seen]
    p50, p99, worst = percentiles([m[0] for m in mine])
    x50, x99, _ = percentiles([m[1] for m in mine])
    say(
        f"3.  created -> delivered to a Redis consumer group, {BUS_RATE} events/s "
        f"({per_tick} per BatchCreateEvents every {BUS_TICK * 1000:.0f} ms) for "
        f"{BUS_SECONDS:.0f} s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.0f} ms "
        f"(target p99 < {TARGET_BUS_P99_MS:g} ms): {verdict(p99 < TARGET_BUS_P99_MS)}"
    )
    say(
        f"    of which create_time -> XADD (Redis entry id, 1 ms resolution): p50 {x50:.1f} ms, "
        f"p99 {x99:.1f} ms; {len(mine):,} of {len(created):,} created events delivered"
    )
    say(f"    {cpu}")


# -- main ------------------------------------------------------------------------------


def load_line(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"{when}: {os.cpu_count()} CPUs, load average {one:.1f} (1 min), {five:.1f} (5 min)"


def filesystem_of(path: Path) -> str:
    best = ("", "?")
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, kind, *_ = line.split()
            if str(path).startswith(mount) and len(mount) > len(best[0]):
                best = (mount, kind)
    return best[1]


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` stops every process this run started."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    only_wrk = command_line(__doc__, {"wrk": "the W figures alone"}) == "wrk"
    stop_on_sigterm()
    started = time.perf_counter()
    say(load_line("machine at start"))
    if QUICK:
        say(QUICK_NOTE)
    try:
        run_parts(only_wrk)
    finally:
        say(load_line("machine at end"))
        say(f"total {time.perf_counter() - started:.0f}s")


def run_parts(only_wrk: bool) -> None:
    """The W figures, then (unless only they are asked for) the others."""
    started = time.perf_counter()
    without_wrk = wrk_driver.missing()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        platform = Platform(Path(tmp))
        floor = Floor(Path(tmp))
        try:
            say(
                f"setup: starting the platform and redis-server on port {platform.redis_port} "
                f"(data on {filesystem_of(Path(tmp))})"
            )
            if not without_wrk:
                say(
                    "setup: starting the floor, a bare FastAPI route forwarding one grpc.aio "
                    "call to a bare grpc.aio server: each wrk figure is shown as a share of it"
                )
                floor.start()
            platform.start("c16")
            slots = make_slots(platform.config.map_file)
            say(
                f"setup: ready after {time.perf_counter() - started:.0f} s; {len(slots):,} "
                f"point/category slots in {len(set(slots.cell))} grid cells"
            )
            if without_wrk:
                say(f"W.  skipped: {without_wrk}")
            else:
                floor.wait_ready()
                bench_wrk(platform, floor, slots, write_places(slots, Path(tmp) / "places.csv"))
            if only_wrk:
                return
            rates: dict[int, float] = {}
            for i, clients in enumerate(CONCURRENCY):
                if i or not without_wrk:
                    platform.fresh_events(f"c{clients}")
                rates[clients], _ = asyncio.run(bench_closed(platform, slots, clients, "full"))
            if without_wrk:  # W3 measures the fixed rate with wrk, which costs far less CPU
                platform.fresh_events("open")
                asyncio.run(bench_open(platform, slots))
            platform.fresh_events("batch")
            asyncio.run(bench_batches(platform, slots))
            platform.fresh_events("bus")
            asyncio.run(bench_bus(platform, slots))
            best = max(rates, key=lambda c: rates[c])
            if QUICK:
                return  # the durability comparison needs full-length runs to mean anything
            platform.fresh_events("normal", synchronous="NORMAL")
            normal, _ = asyncio.run(bench_closed(platform, slots, best, "normal"))
            say(
                f"1a. synchronous=NORMAL / FULL at {best} clients: {normal / rates[best]:.2f}x "
                f"(NORMAL skips the fsync at each commit: a committed create survives a "
                f"process crash but may be lost on power loss or an OS crash)"
            )
        finally:
            floor.stop()
            platform.stop()


if __name__ == "__main__":
    main()

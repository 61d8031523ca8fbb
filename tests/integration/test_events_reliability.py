"""Reliability of the events service with its outbox relay on a real Redis, as processes.

Each test builds its own platform on free loopback ports and its own private
redis-server (never the shared one on 6379), with the events relay publishing to it:

* SIGKILL in the middle of 1,000 concurrent creates loses no acknowledged report,
  retries are idempotent, and the bus ends up carrying exactly the events that exist.
* With Redis down, creates keep succeeding; once Redis is back the relay catches up.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
import redis
import shapely

from devstack.stack import Stack, StackConfig, free_port
from grassroots.events.v1 import events_service_pb2 as pb
from services.kit.bus import open_bus
from tests.conftest import seed_demo_identities
from tests.integration.conftest import GENEROUS_LIMITS

STREAM = "events"
REPORTED = "event.reported"
CATEGORIES = ("environment.garbage", "public.facility", "roads.damage")

# The demo town app key reports into the town; its villages' events are its own.
TOWN_EVENTS = "/v1/tenants/sh-jiading-anting/events"


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, keeping no data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = open(self.directory / "redis.log", "ab")  # noqa: SIM115
        # --dir keeps redis away from any dump.rdb in the working directory.
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            if self.ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def ping(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def platform_on(root: Path, demo_gpkg: Path, identities: Path, bus_url: str) -> Iterator[Stack]:
    """The whole platform on free ports, its relay publishing to `bus_url`."""
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env["GRASSROOTS_EVENTS_BUS_URL"] = bus_url
    config.extra_env.update(GENEROUS_LIMITS)
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    seed_demo_identities(identities, config.data_dir)
    stack = Stack(config)
    try:
        stack.start_all()
        stack.wait_ready(60)
        stack.install_demo_identities()
        yield stack
    finally:
        stack.stop_all()


def valid_points(grid_index, count: int, seed: int = 7) -> list[tuple[float, float]]:
    """`count` points spread over the grid cells, each inside its cell."""
    rng = random.Random(seed)
    points = []
    for i in range(count):
        polygon = grid_index.polygons[i % len(grid_index.cells)]
        base = shapely.point_on_surface(polygon)
        candidate = shapely.Point(
            base.x + rng.uniform(-2e-4, 2e-4), base.y + rng.uniform(-2e-4, 2e-4)
        )
        chosen = candidate if polygon.contains(candidate) else base
        points.append((chosen.x, chosen.y))
    return points


def report_body(lon: float, lat: float, n: int) -> dict:
    return {
        "category": CATEGORIES[n % len(CATEGORIES)],
        "description": f"Reliability report {n}",
        "location": {"longitude": lon, "latitude": lat},
        "request_id": f"rel-{uuid.uuid4().hex}",
    }


def stored_event_ids(stack: Stack) -> set[str]:
    with sqlite3.connect(stack.config.data_dir / "events.sqlite3") as conn:
        return {row[0] for row in conn.execute("SELECT id FROM events")}


@dataclass
class Delivered:
    """What a fresh consumer group saw of the "event.reported" messages."""

    event_ids: set[str]
    messages: int
    mismatched: list[str]


async def _consume_reports(
    bus_url: str, group: str, wanted: set[str], seconds: float, settle: bool
) -> Delivered:
    """Read `group` (created at "0" if missing) until `wanted` is covered or time is up.

    With `settle`, keep reading after coverage until the stream yields nothing more, so
    that the result also shows what was delivered beyond `wanted`.
    """
    bus = open_bus(bus_url)
    seen: set[str] = set()
    mismatched: list[str] = []
    messages = 0
    try:
        await bus.ensure_group(STREAM, group, "0")
        deadline = time.monotonic() + seconds
        while True:
            batch = await bus.read(STREAM, group, "verifier", count=500, block_ms=200)
            for delivery in batch:
                message = delivery.message
                if message.type != REPORTED:
                    continue
                messages += 1
                from_payload = pb.Event.FromString(message.payload).name.rsplit("/", 1)[-1]
                header = message.headers.get("event_id", "")
                if header != from_payload or not message.key.startswith(f"{header}:"):
                    mismatched.append(f"{delivery.id}: key={message.key} header={header}")
                seen.add(from_payload)
            if batch:
                await bus.ack(STREAM, group, [d.id for d in batch])
                if not settle and wanted <= seen:
                    break
                continue
            if wanted <= seen or time.monotonic() > deadline:
                break
    finally:
        await bus.close()
    return Delivered(seen, messages, mismatched)


def consume_reports(
    bus_url: str, group: str, wanted: set[str], timeout: float = 30.0, settle: bool = True
) -> Delivered:
    return asyncio.run(_consume_reports(bus_url, group, wanted, timeout, settle))


@dataclass
class Outcome:
    status: int | None  # None: the request never got an HTTP answer
    event_id: str | None
    detail: str


def _outcome(response: httpx.Response) -> Outcome:
    event_id = None
    if 200 <= response.status_code < 300:
        try:
            event_id = response.json().get("id") or None
        except ValueError:
            event_id = None
    return Outcome(response.status_code, event_id, response.text[:300])


async def _post_all(
    stack: Stack,
    bodies: dict[int, dict],
    concurrency: int,
    kill_after: int | None = None,
) -> tuple[dict[int, Outcome], dict[int, Outcome]]:
    """POST every body with `concurrency` in flight; SIGKILL events after `kill_after`.

    Returns every outcome, and the outcomes that completed before the kill.
    """
    outcomes: dict[int, Outcome] = {}
    before_kill: dict[int, Outcome] = {}
    killed = False
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=30, limits=limits
    ) as client:

        async def one(n: int) -> None:
            nonlocal killed
            async with semaphore:
                try:
                    response = await client.post(TOWN_EVENTS, json=bodies[n])
                except httpx.TransportError as exc:
                    outcome = Outcome(None, None, repr(exc))
                else:
                    outcome = _outcome(response)
            outcomes[n] = outcome
            if kill_after is not None and not killed:
                before_kill[n] = outcome
                if len(before_kill) >= kill_after:
                    killed = True
                    stack.signal("events", signal.SIGKILL)

        await asyncio.gather(*(one(n) for n in bodies))
    return outcomes, before_kill


async def _get_all(stack: Stack, event_ids: list[str], concurrency: int = 50) -> dict[str, int]:
    semaphore = asyncio.Semaphore(concurrency)
    found: dict[str, int] = {}
    async with httpx.AsyncClient(
        base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=30
    ) as client:

        async def one(event_id: str) -> None:
            async with semaphore:
                response = await client.get(f"{TOWN_EVENTS}/{event_id}")
            found[event_id] = response.status_code
            if response.status_code == 200:
                assert response.json()["id"] == event_id

        await asyncio.gather(*(one(e) for e in event_ids))
    return found


@pytest.mark.integration
def test_kill_9_during_1000_concurrent_creates_loses_nothing_acknowledged(
    tmp_path, demo_gpkg, demo_identities, grid_index
):
    total, concurrency, kill_after = 1000, 50, 300
    points = valid_points(grid_index, total)
    bodies = {n: report_body(lon, lat, n) for n, (lon, lat) in enumerate(points)}

    with (
        private_redis(tmp_path / "redis") as bus,
        platform_on(tmp_path / "stack", demo_gpkg, demo_identities, bus.url) as stack,
    ):
        logs = stack.config.log_dir
        outcomes, before_kill = asyncio.run(_post_all(stack, bodies, concurrency, kill_after))
        assert len(outcomes) == total
        assert stack.processes["events"].wait(20) == -signal.SIGKILL

        # Before the kill the platform was healthy: every completed create succeeded.
        early_failures = {n: o for n, o in before_kill.items() if o.event_id is None}
        assert not early_failures, f"failed before the kill (logs in {logs}): {early_failures}"

        acknowledged: dict[int, str] = {}
        failed: list[int] = []
        for n, outcome in outcomes.items():
            if outcome.status is not None and 200 <= outcome.status < 300:
                assert outcome.status == 201, outcome.detail
                assert outcome.event_id, f"2xx without an event id: {outcome.detail}"
                acknowledged[n] = outcome.event_id
            else:
                assert outcome.status in (None, 503, 504), (
                    f"request {n} answered {outcome.status}: {outcome.detail} (logs in {logs})"
                )
                failed.append(n)
        assert len(acknowledged) >= kill_after
        assert failed, "the kill did not interrupt the burst"
        assert len(set(acknowledged.values())) == len(acknowledged)

        stack.stop("events")  # reap the killed process
        stack.start("events")
        stack.wait_ready(30)

        # Every acknowledged create survived the kill.
        found = asyncio.run(_get_all(stack, list(acknowledged.values())))
        lost = sorted(e for e, status in found.items() if status != 200)
        assert not lost, f"{len(lost)} acknowledged events lost (logs in {logs}): {lost[:10]}"

        # Retrying each failed create once with the same request id succeeds; one that
        # committed before the kill comes back with its first id, never as a second event.
        retried, _ = asyncio.run(_post_all(stack, {n: bodies[n] for n in failed}, concurrency))
        not_retried = {n: o for n, o in retried.items() if o.status != 201 or not o.event_id}
        assert not not_retried, f"retries failed (logs in {logs}): {list(not_retried.items())[:5]}"
        final = {**acknowledged, **{n: o.event_id for n, o in retried.items()}}
        assert len(final) == total
        assert len(set(final.values())) == total, "two request ids share one event"
        existing = stored_event_ids(stack)
        assert existing == set(final.values()), (
            f"stored but never returned: {sorted(existing - set(final.values()))[:10]}; "
            f"returned but not stored: {sorted(set(final.values()) - existing)[:10]}"
        )

        # The relay delivered every event that exists, and nothing else, at least once.
        delivered = consume_reports(bus.url, f"verify-{uuid.uuid4().hex[:8]}", existing)
        assert not delivered.mismatched, delivered.mismatched[:10]
        missing = existing - delivered.event_ids
        extra = delivered.event_ids - existing
        assert not missing, f"{len(missing)} events never delivered: {sorted(missing)[:10]}"
        assert not extra, f"{len(extra)} delivered events do not exist: {sorted(extra)[:10]}"
        assert delivered.messages >= total


@pytest.mark.integration
def test_redis_outage_creates_keep_succeeding_and_delivery_catches_up(
    tmp_path, demo_gpkg, demo_identities, grid_index
):
    # Long enough for the relay's pause between attempts to grow to its cap (0.1 s
    # doubling: 6.3 s in, then 5 s), so the outage spans capped retries too and the
    # catch-up below starts from the longest pause; longer only repeats those retries.
    outage_seconds, per_second = 12.0, 5
    points = valid_points(grid_index, int(outage_seconds * per_second) + 10, seed=11)

    with (
        private_redis(tmp_path / "redis") as bus,
        platform_on(tmp_path / "stack", demo_gpkg, demo_identities, bus.url) as stack,
        httpx.Client(
            base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=10
        ) as api,
    ):
        logs = stack.config.log_dir
        group = "outage-watcher"
        # Before the outage: a consumer group exists and sees a report arrive.
        first = api.post(TOWN_EVENTS, json=report_body(*points[0], 0))
        assert first.status_code == 201, first.text
        before = consume_reports(bus.url, group, {first.json()["id"]}, timeout=15, settle=False)
        assert first.json()["id"] in before.event_ids

        bus.stop()
        assert not bus.ping()

        during: list[str] = []
        started = time.monotonic()
        n = 1
        while time.monotonic() - started < outage_seconds:
            slot = started + (n - 1) / per_second
            time.sleep(max(0.0, slot - time.monotonic()))
            response = api.post(TOWN_EVENTS, json=report_body(*points[n % len(points)], n))
            assert response.status_code == 201, (
                f"create {n} during the outage answered {response.status_code}: "
                f"{response.text[:300]} (logs in {logs})"
            )
            during.append(response.json()["id"])
            n += 1
        assert len(during) >= outage_seconds * per_second * 0.8

        bus.start()  # same port, empty: redis kept nothing (--save "", no AOF)
        # The restarted redis-server has no stream and no groups: the group made before
        # the outage is gone with the data. Creating it again from "0" (ensure_group)
        # reads everything the relay has (re)published since Redis came back, which
        # must include every report made during the outage.
        caught_up = consume_reports(bus.url, group, set(during), timeout=30)
        missing = set(during) - caught_up.event_ids
        assert not missing, (
            f"{len(missing)} of {len(during)} outage reports not delivered within 30 s "
            f"(logs in {logs}): {sorted(missing)[:10]}"
        )
        assert not caught_up.mismatched, caught_up.mismatched[:10]

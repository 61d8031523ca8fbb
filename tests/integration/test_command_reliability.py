"""Reliability of the command service as processes, on the platform `make run` starts.

* SIGKILL of the command service in the middle of a burst of 500 reports: after a
  restart every report has exactly one task, and none has two.
* A response deadline that comes due while the command service is down escalates the
  task once after the restart, never twice.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import shapely
from google.protobuf.duration_pb2 import Duration

from devstack.demo_events import IMPORTER
from devstack.stack import Stack, StackConfig
from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.command.v1 import command_service_pb2_grpc as command_grpc
from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.bus import open_bus
from services.kit.principal import Principal
from tests.conftest import seed_demo_identities
from tests.integration.conftest import GENEROUS_LIMITS

TOWN = "sh/jiading/anting"
XINGMING = "sh/jiading/anting/xingming"
PROBE = "public.reliability_probe"  # no duplicates: every report is its own event
URGENT = "safety.reliability_urgent"
BURST = 500


@pytest.fixture(scope="module")
def stack(
    demo_gpkg: Path, demo_identities: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("command-reliability")
    config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
    config.extra_env.update(GENEROUS_LIMITS)
    config.extra_env["GRASSROOTS_COMMAND_TIMER_POLL_SECONDS"] = "0.2"
    config.extra_env["GRASSROOTS_COMMAND_REDELIVERY_IDLE_MS"] = "2000"
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo_gpkg, config.map_file)
    seed_demo_identities(demo_identities, config.data_dir)
    platform = Stack(config)
    platform.start_all()
    try:
        platform.wait_ready(90)
        platform.install_demo_identities()
        platform.install_demo_command()
        asyncio.run(_categories(platform))
        yield platform
    finally:
        platform.stop_all()


async def _categories(stack: Stack) -> None:
    importer = Principal(IMPORTER.subject, TOWN, "service", scopes=frozenset({"events:configure"}))
    async with grpc.aio.insecure_channel(stack.config.address("events")) as channel:
        stub = pb_grpc.EventsServiceStub(channel)
        for code, severity in ((PROBE, 2), (URGENT, 4)):
            try:
                await stub.CreateCategory(
                    pb.CreateCategoryRequest(
                        parent=tenancy.tenant_name(TOWN),
                        category=pb.Category(
                            code=code,
                            display_name=code,
                            default_severity=severity,
                            duplicate_radius_meters=0,
                            duplicate_window_minutes=0,
                        ),
                    ),
                    metadata=importer.to_metadata(),
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise


def village_points(grid_index, village: str, count: int) -> list[tuple[float, float]]:
    cells = [
        p
        for p, c in zip(grid_index.polygons, grid_index.cells, strict=True)
        if c.village == village
    ]
    points = []
    for i in range(count):
        point = shapely.point_on_surface(cells[i % len(cells)])
        points.append((point.x + (i // len(cells)) * 1e-7, point.y))
    return points


async def report_burst(stack: Stack, points: list[tuple[float, float]], tag: str) -> list[str]:
    reporter = Principal(
        "services/reliability", TOWN, "service", scopes=frozenset({"events:write", "events:read"})
    )
    names: list[str] = []
    async with grpc.aio.insecure_channel(stack.config.address("events")) as channel:
        stub = pb_grpc.EventsServiceStub(channel)
        for start in range(0, len(points), 50):
            chunk = points[start : start + 50]
            made = await stub.BatchCreateEvents(
                pb.BatchCreateEventsRequest(
                    parent=tenancy.tenant_name(XINGMING),
                    requests=[
                        pb.CreateEventRequest(
                            parent=tenancy.tenant_name(XINGMING),
                            request_id=f"{tag}-{start + i}",
                            event=pb.Event(
                                category=PROBE,
                                description=f"reliability report {start + i}",
                                location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
                            ),
                        )
                        for i, (lon, lat) in enumerate(chunk)
                    ],
                ),
                metadata=reporter.to_metadata(),
                timeout=60,
            )
            names.extend(e.name for e in made.events if e.state == pb.Event.STATE_REPORTED)
    return names


def task_counts(stack: Stack) -> dict[str, int]:
    with sqlite3.connect(stack.config.data_dir / "command.sqlite3", timeout=30) as conn:
        return dict(conn.execute("SELECT event, count(*) FROM tasks GROUP BY event").fetchall())


def kill_command(stack: Stack) -> None:
    process = stack.processes.pop("command")
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def restart_command(stack: Stack) -> None:
    stack.start("command")
    stack.wait_ready(60, services=("command",))


def wait_for(check, within: float = 120.0, every: float = 0.5):
    """Poll `check()` until it returns something truthy (generous: a loaded machine)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)


def test_kill_during_a_burst_leaves_exactly_one_task_per_event(stack, grid_index):
    points = village_points(grid_index, XINGMING, BURST)

    async def burst_and_kill() -> list[str]:
        sending = asyncio.create_task(report_burst(stack, points, f"burst-{time.time_ns()}"))
        # Kill once dispatch is under way, while reports are still arriving.
        for _ in range(2000):  # polling another process's file: no event to await
            if sending.done() or len(task_counts(stack)) >= 20:
                break
            await asyncio.sleep(0.05)
        kill_command(stack)
        return await sending

    names = asyncio.run(burst_and_kill())
    assert len(names) == BURST
    restart_command(stack)
    counts = wait_for(lambda: (c := task_counts(stack)) and set(names) <= set(c) and c)
    assert {name: counts[name] for name in names} == dict.fromkeys(names, 1)
    assert all(n == 1 for n in counts.values()), "an event has two tasks"


def test_a_deadline_due_while_down_escalates_once_after_restart(stack, grid_index):
    headers = stack.api_headers()
    base = stack.config.gateway_url
    village = tenancy.path_to_id(XINGMING)
    asyncio.run(urgent_rule(stack))
    lon, lat = village_points(grid_index, XINGMING, 1)[0]
    event = httpx.post(
        f"{base}/v1/tenants/{village}/events",
        headers=headers,
        json={
            "category": URGENT,
            "description": "smoke in the stairwell",
            "location": {"longitude": lon, "latitude": lat},
            "request_id": f"urgent-{time.time_ns()}",
        },
        timeout=30,
    ).json()

    def task() -> dict | None:
        listed = httpx.get(
            f"{base}/v1/tenants/{village}/tasks",
            headers=headers,
            params={"event": event["name"]},
            timeout=30,
        ).json()["tasks"]
        return listed[0] if listed else None

    offered = wait_for(task)
    assert offered["escalation_level"] == 0, offered
    kill_command(stack)
    time.sleep(5)  # the response deadline (3 s) passes while the service is down
    restart_command(stack)
    escalated = wait_for(lambda: (t := task()) and t["escalation_level"] >= 1 and t)
    assert escalated["escalation_level"] == 1
    assert escalated["escalated_to"] == TOWN
    time.sleep(3)  # long enough for a second firing, were there one
    assert task()["escalation_level"] == 1
    facts = asyncio.run(escalation_facts(stack, escalated["name"]))
    assert facts == 1, f"{facts} task.escalated facts for one breach"


async def urgent_rule(stack: Stack) -> None:
    """The village's rule for urgent reports: 3 seconds to accept (as its desk would)."""
    desk = Principal(
        "services/reliability", XINGMING, "service", scopes=frozenset({"command:write"})
    )
    async with grpc.aio.insecure_channel(stack.config.address("command")) as channel:
        await command_grpc.CommandServiceStub(channel).CreateRoutingRule(
            command_pb.CreateRoutingRuleRequest(
                parent=tenancy.tenant_name(XINGMING),
                routing_rule=command_pb.RoutingRule(
                    category=URGENT,
                    handler_role="grid_worker",
                    response_sla=Duration(seconds=3),
                    sla=Duration(seconds=3600),
                    display_name="reliability: 3 s to accept",
                ),
            ),
            metadata=desk.to_metadata(),
        )


async def escalation_facts(stack: Stack, task_name: str) -> int:
    """How many distinct `task.escalated` facts the command stream carries for a task."""
    bus = open_bus(str(stack.config.data_dir / "events-bus.sqlite3"))
    keys: set[str] = set()
    try:
        group = f"verify-{time.time_ns()}"
        await bus.ensure_group("command", group, "0")
        while True:
            batch = await bus.read("command", group, "verifier", count=1000, block_ms=500)
            if not batch:
                break
            task_id = task_name.rsplit("/", 1)[-1]
            keys |= {
                d.message.key
                for d in batch
                if d.message.type == "task.escalated" and d.message.key.startswith(task_id)
            }
    finally:
        await bus.close()
    return len(keys)

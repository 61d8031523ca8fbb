"""Two replicas of command, twin and empower on one PostgreSQL database: each singleton
job (outbox relays, alarm relay, silence checks, compaction, the MQTT bridge's one
broker session, scheduled reports, notice deliveries) runs in exactly one of them, and
a replica that stops hands its jobs to the other at once (it gives its leases back)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.command.plans import RELAY_LEASE as PLANS_RELAY
from services.command.wiring import RELAY_LEASE as COMMAND_RELAY
from services.empower.empowerment import (
    DELIVERIES_LEASE,
    NOTICES_RELAY_LEASE,
    POINTS_RELAY_LEASE,
    REPORTS_LEASE,
)
from services.kit.lease import Singletons
from services.twin.feeds import BRIDGE_LEASE
from services.twin.wiring import ALARM_RELAY_LEASE, COMPACT_LEASE, SILENCE_LEASE

Replica = tuple[Singletons, Callable[[], Awaitable[None]]]


async def command_replica(dsn: str, tmp: Path, n: int) -> Replica:
    from services.command.config import CommandSettings
    from services.command.wiring import assemble

    settings = CommandSettings(
        grpc_port=0,
        backend="postgres",
        postgres_dsn=dsn,
        database=tmp / f"command-{n}.sqlite3",
        bus_url=str(tmp / "bus.sqlite3"),
        events_address="127.0.0.1:9",  # never called here
        consumer_name=f"replica-{n}",
        lease_seconds=2,
    )
    parts = await assemble(settings)
    return parts.singletons, parts.component.close


class NoEvents:
    async def raise_event(self, *args: object) -> str:
        raise AssertionError("no alarms in this test")

    async def clear_event(self, *args: object) -> None:
        raise AssertionError("no alarms in this test")


async def twin_replica(dsn: str, tmp: Path, n: int) -> Replica:
    from services.twin.config import TwinSettings
    from services.twin.wiring import assemble

    settings = TwinSettings(
        grpc_port=0,
        backend="postgres",
        postgres_dsn=dsn,
        database=tmp / f"twin-{n}.sqlite3",
        bus_url=str(tmp / "twin-bus.sqlite3"),
        events_address="127.0.0.1:9",
        lease_seconds=2,
    )
    parts = await assemble(settings, events=NoEvents())
    return parts.singletons, parts.component.close


SEAL = "k1:" + base64.b64encode(os.urandom(32)).decode()
INDEX = base64.b64encode(os.urandom(32)).decode()


async def empower_replica(dsn: str, tmp: Path, n: int) -> Replica:
    from services.empower.config import EmpowerSettings
    from services.empower.empowerment import open_empowerment
    from services.empower.wiring import open_empower

    settings = EmpowerSettings(
        grpc_port=0,
        backend="postgres",
        postgres_dsn=dsn,
        database=tmp / f"empower-{n}.sqlite3",
        bus_url=str(tmp / "bus.sqlite3"),
        seal_keys=SEAL,  # type: ignore[arg-type]
        index_key=INDEX,  # type: ignore[arg-type]
        lease_seconds=2,
    )
    opened = await open_empower(settings)
    work = await open_empowerment(
        settings,
        opened.audit,
        opened.directory.store,
        opened.registry.store,
        opened.registry.sealer,
    )
    assert work.singletons is not None

    async def close() -> None:
        for closer in [*work.closers, *opened.closers]:
            result = closer()
            if asyncio.iscoroutine(result):
                await result

    return work.singletons, close


CASES = {
    "command": (command_replica, {COMMAND_RELAY, PLANS_RELAY}),
    "twin": (twin_replica, {ALARM_RELAY_LEASE, SILENCE_LEASE, COMPACT_LEASE, BRIDGE_LEASE}),
    "empower": (
        empower_replica,
        {REPORTS_LEASE, DELIVERIES_LEASE, POINTS_RELAY_LEASE, NOTICES_RELAY_LEASE},
    ),
}


async def _settled(first: Singletons, second: Singletons, jobs: set[str]) -> None:
    for _ in range(100):
        if first.running | second.running == jobs:
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("component", sorted(CASES))
async def test_each_singleton_job_runs_in_one_replica_and_moves_when_it_stops(
    component, postgis_test_dsn, tmp_path, monkeypatch
):
    # The twin's MQTT bridge on the machine's broker: replicas share one session.
    monkeypatch.setenv("GRASSROOTS_TWIN_MQTT_ENABLED", "true")
    monkeypatch.setenv("GRASSROOTS_TWIN_MQTT_CLIENT_ID", f"replicas-{os.getpid()}-{id(tmp_path)}")
    monkeypatch.setenv("GRASSROOTS_TWIN_MQTT_TOPIC_ROOT", f"replicas{os.getpid()}")
    monkeypatch.setenv("GRASSROOTS_TWIN_MQTT_SESSION_EXPIRY_SECONDS", "60")
    open_replica, jobs = CASES[component]
    first, close_first = await open_replica(postgis_test_dsn, tmp_path, 1)
    second, close_second = await open_replica(postgis_test_dsn, tmp_path, 2)
    closed_first = False
    try:
        await _settled(first, second, jobs)
        assert first.running | second.running == jobs, "every job runs somewhere"
        assert not first.running & second.running, "no job runs in both replicas"
        # The second replica tried meanwhile (every third of its lease) and still waits.
        await asyncio.sleep(1.0)
        assert not first.running & second.running
        assert first.running | second.running == jobs

        await close_first()
        closed_first = True
        assert first.running == set()
        for _ in range(60):  # its next try, a third of the lease later
            if second.running == jobs:
                break
            await asyncio.sleep(0.05)
        assert second.running == jobs, "the other replica took every job over"
    finally:
        if not closed_first:
            await close_first()
        await close_second()

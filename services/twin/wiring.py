"""Assemble the twin service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from services.kit.bus import Bus, open_bus
from services.kit.clock import offset_clock
from services.kit.component import ServiceComponent
from services.kit.lease import Singletons
from services.kit.map_layers import follow_map_notices
from services.twin.alarms import AlarmRelay
from services.twin.api import build_component
from services.twin.config import TwinSettings
from services.twin.domain.ports import EventSink, LatestState, TwinStore
from services.twin.domain.service import TwinHub
from services.twin.events_client import BusFacts, EventsClient
from services.twin.feeds import Feeds, start_feeds
from services.twin.map_layers import MapLayers
from services.twin.store.latest_memory import MemoryLatest
from services.twin.store.sqlite import SqliteTwinStore

log = logging.getLogger(__name__)

# Logged batches regrouped per compaction transaction.
COMPACT_BATCHES = 200
ALARM_RELAY_LEASE = "twin.alarm-relay"
SILENCE_LEASE = "twin.silence-check"
COMPACT_LEASE = "twin.compaction"


def check_backend(settings: TwinSettings) -> None:
    """Refuse to start, naming the variable, when a chosen backend lacks its address."""
    if settings.backend == "postgres" and not settings.postgres_dsn:
        raise SystemExit(
            "invalid configuration for TwinSettings: GRASSROOTS_TWIN_POSTGRES_DSN must be set "
            "when GRASSROOTS_TWIN_BACKEND is postgres"
        )
    if not settings.events_address:
        raise SystemExit(
            "invalid configuration for TwinSettings: GRASSROOTS_TWIN_EVENTS_ADDRESS must be set"
        )


async def open_store(settings: TwinSettings) -> TwinStore:
    if settings.backend == "postgres":
        from services.twin.store.postgres import PostgresTwinStore

        return await PostgresTwinStore.open(settings.postgres_dsn)
    return SqliteTwinStore(settings.database, synchronous=settings.sqlite_synchronous)


async def open_latest(settings: TwinSettings, store: TwinStore) -> LatestState:
    """Redis when configured (falling back to the store while it is down), else memory
    filled from the store's history."""
    if settings.redis_url:
        from services.twin.store.latest_redis import RedisLatest

        return RedisLatest(settings.redis_url, store)
    return MemoryLatest(await store.latest_of(None))


@dataclass
class Twin:
    """A started twin service: its component and the parts behind it (tests and the
    MQTT bridge look in)."""

    component: ServiceComponent
    hub: TwinHub
    store: TwinStore
    latest: LatestState
    relay: AlarmRelay
    bus: Bus
    feeds: Feeds
    singletons: Singletons


async def assemble(settings: TwinSettings, events: EventSink | None = None) -> Twin:
    """Store, latest state, hub, alarm relay and inactivity checks, as production runs them."""
    check_backend(settings)
    store = await open_store(settings)
    latest = await open_latest(settings, store)
    bus = open_bus(settings.bus_url or str(settings.database.with_name("twin-bus.sqlite3")))
    client = EventsClient(settings.events_address, settings.call_timeout_seconds)
    layers = (
        MapLayers(
            settings.map_address, settings.call_timeout_seconds, settings.layer_recheck_seconds
        )
        if settings.map_address
        else None
    )
    notices = (
        await follow_map_notices(settings.bus_url, bus, layers.on_notice)
        if layers is not None
        else None
    )
    relay_box: list[AlarmRelay] = []
    clock = offset_clock(settings.clock_offset_file)
    hub = await TwinHub.open(
        store,
        latest,
        on_alarm=lambda: relay_box[0].wake(),
        layers=layers,
        clock=lambda: int(clock().timestamp() * 1000),
    )
    relay = AlarmRelay(hub, store, events or client, BusFacts(bus))
    relay_box.append(relay)
    # One replica at a time delivers alarms, checks for silent devices and compacts the
    # log (ADR 23); a replica that does not hold the relay wakes it by its own poll.
    singletons = Singletons(
        settings.postgres_dsn if settings.backend == "postgres" else "", settings.lease_seconds
    )

    async def check_silence(until: asyncio.Event) -> None:
        while not until.is_set():
            with contextlib.suppress(Exception):
                await hub.check_silence()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), settings.silence_check_seconds)

    async def compact(until: asyncio.Event) -> None:
        """Regroup logged batches by series while the log has any (see store.chunks)."""
        while not until.is_set():
            moved = 0
            with contextlib.suppress(Exception):
                moved = await store.compact(COMPACT_BATCHES)
            if moved < COMPACT_BATCHES:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), settings.compact_every_seconds)

    singletons.start(ALARM_RELAY_LEASE, relay.run)
    singletons.start(SILENCE_LEASE, check_silence)
    singletons.start(COMPACT_LEASE, compact)

    async def stop_tasks() -> None:
        await singletons.stop(relay.wake)

    closers: list[Callable[[], object]] = [
        stop_tasks,
        client.close,
        *([notices.stop] if notices is not None else []),
        *([layers.close] if layers is not None else []),
        bus.close,
        latest.close,
        store.close,
    ]
    # The bridge's closer goes first: it stops taking messages before the store closes.
    shared = singletons if settings.backend == "postgres" else None
    feeds = await start_feeds(hub, closers, singletons=shared)
    component = build_component(hub, closers, feeds)
    return Twin(component, hub, store, latest, relay, bus, feeds, singletons)


async def build(settings: TwinSettings) -> ServiceComponent:
    """The component `run_service` serves."""
    return (await assemble(settings)).component

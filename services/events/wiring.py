"""Assemble the events service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta

from services.events.api import build_component, event_to_proto
from services.events.config import EventsSettings
from services.events.domain.categories import CategoryCatalog
from services.events.domain.model import Event
from services.events.domain.service import EventHub
from services.events.feed import ChangeFeed
from services.events.locator import MapLocator
from services.events.relay import events_relay
from services.events.store.contacts import ReporterContacts
from services.events.store.postgres import PostgresEventStore
from services.events.store.sqlite import SqliteEventStore
from services.events.sweeper import run_auto_close
from services.kit import masking
from services.kit.bus import Bus, BusMessage, open_bus
from services.kit.cache_notices import CacheNotices
from services.kit.component import ServiceComponent
from services.kit.lease import Singletons
from services.kit.sealing import Sealer

RELAY_LEASE = "events.outbox-relay"
SWEEP_LEASE = "events.auto-close"
CATEGORY_CHANGED = "events.category_changed"


def serialize(event: Event) -> bytes:
    """An event as the outbox and the bus carry it: the full message, with the reporter's
    contact masked (the outbox table and a local bus log are files on disk, and
    consumers have no use for the number; the sealed one stays in the events table)."""
    masked = replace(event, reporter_contact=masking.mask_contact(event.reporter_contact))
    return event_to_proto(masked).SerializeToString()


def check_backend(settings: EventsSettings) -> None:
    """Refuse to start, naming the variable, when PostgreSQL is chosen without a DSN."""
    if settings.backend == "postgres" and not settings.postgres_dsn:
        raise SystemExit(
            "invalid configuration for EventsSettings: GRASSROOTS_EVENTS_POSTGRES_DSN must be "
            "set when GRASSROOTS_EVENTS_BACKEND is postgres"
        )


async def open_store(settings: EventsSettings) -> SqliteEventStore | PostgresEventStore:
    """The store the settings choose; PostgreSQL is reached (and its schema made) here."""
    check_backend(settings)
    contacts = ReporterContacts(Sealer.from_env_value(settings.seal_keys.get_secret_value()))
    if settings.backend == "postgres":
        return await PostgresEventStore.open(
            settings.postgres_dsn, serialize=serialize, contacts=contacts
        )
    return SqliteEventStore(
        settings.database,
        serialize=serialize,
        synchronous=settings.sqlite_synchronous,
        contacts=contacts,
    )


@dataclass
class Events:
    """A started events service: its component and the parts behind it (tests look in)."""

    component: ServiceComponent
    store: SqliteEventStore | PostgresEventStore
    bus: Bus
    hub: EventHub
    feed: ChangeFeed
    singletons: Singletons


async def assemble(settings: EventsSettings) -> Events:
    """Store, bus, categories, hub, outbox relay and auto-close, as production runs them."""
    store = await open_store(settings)
    bus = open_bus(settings.bus_url or str(settings.database.with_name("events-bus.sqlite3")))
    feed = ChangeFeed()
    locator = MapLocator(settings.map_address, settings.call_timeout_seconds)
    categories = CategoryCatalog(await store.list_categories())
    hub_box: list[EventHub] = []

    async def reload(_: BusMessage) -> None:
        await hub_box[0].reload_categories()

    # Other replicas hold the category tree too: tell them of a change (ADR 23).
    notices = CacheNotices(bus, "events", reload)
    await notices.start()

    async def category_changed(tenant: str, code: str) -> None:
        await notices.announce(CATEGORY_CHANGED, code, tenant)

    hub = EventHub(
        store, locator, on_change=feed.notify, categories=categories, on_category=category_changed
    )
    hub_box.append(hub)
    relay = events_relay(store, bus, feed, batch=settings.outbox_batch)
    # The relay and the sweep run in one replica at a time (ADR 23).
    dsn = settings.postgres_dsn if settings.backend == "postgres" else ""
    singletons = Singletons(dsn, settings.lease_seconds)
    singletons.start(RELAY_LEASE, relay.run)
    if settings.auto_close_after_hours > 0:
        after = timedelta(hours=settings.auto_close_after_hours)
        every = settings.auto_close_check_seconds

        async def sweep(until: asyncio.Event) -> None:
            await run_auto_close(hub, after, every, until)

        singletons.start(SWEEP_LEASE, sweep)

    async def stop_tasks() -> None:
        await notices.stop()
        await singletons.stop(feed.notify)

    component = build_component(hub, feed, [stop_tasks, locator.close, bus.close, store.close])
    return Events(component, store, bus, hub, feed, singletons)


async def build(settings: EventsSettings) -> ServiceComponent:
    """The component `run_service` serves."""
    return (await assemble(settings)).component

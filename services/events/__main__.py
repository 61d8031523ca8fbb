"""Start the events service: `python -m services.events`."""

from __future__ import annotations

import asyncio

from services.events.api import build_component, event_to_proto
from services.events.config import EventsSettings
from services.events.domain.service import EventHub
from services.events.feed import ChangeFeed
from services.events.locator import MapLocator
from services.events.relay import OutboxRelay
from services.events.store.sqlite import SqliteEventStore
from services.kit.bus import open_bus
from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.discovery import StaticDiscovery
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(EventsSettings)
    discovery = StaticDiscovery({"map": settings.map_address})

    async def build() -> ServiceComponent:
        store = SqliteEventStore(
            settings.database,
            serialize=lambda event: event_to_proto(event).SerializeToString(),
            synchronous=settings.sqlite_synchronous,
        )
        bus = open_bus(settings.bus_url or str(settings.database.with_name("events-bus.sqlite3")))
        feed = ChangeFeed()
        locator = MapLocator(discovery.resolve("map"), settings.call_timeout_seconds)
        hub = EventHub(store, locator, on_change=feed.notify)
        relay = OutboxRelay(store, bus, feed, batch=settings.outbox_batch)
        stop = asyncio.Event()
        relay_task = asyncio.create_task(relay.run(stop))

        async def stop_relay() -> None:
            stop.set()
            feed.notify()
            await relay_task

        return build_component(hub, feed, [stop_relay, locator.close, bus.close, store.close])

    run_service("events", settings, build)


if __name__ == "__main__":
    main()

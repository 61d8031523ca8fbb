"""Start the events service: `python -m services.events`."""

from __future__ import annotations

from services.events.api import build_component
from services.events.config import EventsSettings
from services.events.domain.service import EventHub
from services.events.locator import MapLocator
from services.events.store.sqlite import SqliteEventStore
from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.discovery import StaticDiscovery
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(EventsSettings)
    discovery = StaticDiscovery({"map": settings.map_address})

    async def build() -> ServiceComponent:
        store = SqliteEventStore(settings.database, synchronous=settings.sqlite_synchronous)
        locator = MapLocator(discovery.resolve("map"), settings.call_timeout_seconds)
        return build_component(EventHub(store, locator), [locator.close, store.close])

    run_service("events", settings, build)


if __name__ == "__main__":
    main()

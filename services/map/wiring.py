"""Assemble the map service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.kit.bus import Bus, BusMessage, open_bus
from services.kit.cache_notices import CacheNotices
from services.kit.component import ServiceComponent
from services.map.api import build_component
from services.map.config import MapSettings
from services.map.domain.model import LayerKey
from services.map.domain.service import MapCatalog, MapStore
from services.map.seed import seed_demo

log = logging.getLogger("grassroots.map")
LAYER_CHANGED = "map.layer_changed"


def check_backend(settings: MapSettings) -> None:
    """Refuse to start, naming the variable, when PostGIS is chosen without a DSN."""
    if settings.backend == "postgis" and not settings.postgres_dsn:
        raise SystemExit("GRASSROOTS_MAP_POSTGRES_DSN is required when backend=postgis")


def open_store(settings: MapSettings) -> MapStore:
    check_backend(settings)
    if settings.backend == "postgis":
        from services.map.store.postgis import PostgisStore

        return PostgisStore(settings.postgres_dsn)
    from services.map.store.geopackage import GeoPackageStore

    return GeoPackageStore(settings.store_file)


def load_catalog(settings: MapSettings) -> MapCatalog:
    """The store with the demo layers installed when a seed file is set (blocking)."""
    catalog = MapCatalog(open_store(settings))
    if settings.seed_file is not None:
        added = seed_demo(catalog, settings.seed_file)
        if added:
            log.info("installed %d demo features from %s", added, settings.seed_file)
    return catalog


async def share_changes(catalog: MapCatalog, bus: Bus) -> Callable[[], Awaitable[None]]:
    """Tell other replicas of this one's layer writes, and reload the layers they
    write (ADR 23); returns what stops it. A write's call returns once its notice is
    on the bus."""
    loop = asyncio.get_running_loop()

    async def reload(message: BusMessage) -> None:
        tenant, _, layer_id = message.key.partition(":")
        await asyncio.to_thread(catalog.reload_layer, LayerKey(tenant, layer_id))
        log.info("layer %s reloaded: another replica changed it", message.key)

    notices = CacheNotices(bus, "map", reload)
    await notices.start()

    def changed(key: LayerKey) -> None:  # on the writer's worker thread
        announce = notices.announce(LAYER_CHANGED, str(key), key.tenant)
        asyncio.run_coroutine_threadsafe(announce, loop).result(timeout=10)

    catalog.on_change(changed)

    async def stop() -> None:
        await notices.stop()
        await bus.close()

    return stop


async def build(settings: MapSettings) -> ServiceComponent:
    """The component `run_service` serves; closing it closes the store."""
    catalog = await asyncio.to_thread(load_catalog, settings)
    log.info("map ready: %d layers, %d grid cells", len(catalog.layers), len(catalog.grid))
    closers = [await share_changes(catalog, open_bus(settings.bus_url))] if settings.bus_url else []
    return build_component(catalog, settings.max_locate_batch, closers)

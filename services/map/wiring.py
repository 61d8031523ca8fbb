"""Assemble the map service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import asyncio
import logging

from services.kit.component import ServiceComponent
from services.map.api import build_component
from services.map.config import MapSettings
from services.map.domain.service import MapCatalog, MapStore
from services.map.seed import seed_demo

log = logging.getLogger("grassroots.map")


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


async def build(settings: MapSettings) -> ServiceComponent:
    """The component `run_service` serves; closing it closes the store."""
    catalog = await asyncio.to_thread(load_catalog, settings)
    log.info("map ready: %d layers, %d grid cells", len(catalog.layers), len(catalog.grid))
    return build_component(catalog, settings.max_locate_batch)

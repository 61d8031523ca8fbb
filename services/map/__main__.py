"""Start the map service: `python -m services.map`."""

from __future__ import annotations

import asyncio
import logging

from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.server import run_service
from services.map.api import build_component
from services.map.config import MapSettings
from services.map.domain.service import MapCatalog, MapStore
from services.map.seed import seed_demo

log = logging.getLogger("grassroots.map")


def open_store(settings: MapSettings) -> MapStore:
    if settings.backend == "postgis":
        from services.map.store.postgis import PostgisStore

        if not settings.postgres_dsn:
            raise SystemExit("GRASSROOTS_MAP_POSTGRES_DSN is required when backend=postgis")
        return PostgisStore(settings.postgres_dsn)
    from services.map.store.geopackage import GeoPackageStore

    return GeoPackageStore(settings.store_file)


def main() -> None:
    settings = load_settings(MapSettings)

    async def build() -> ServiceComponent:
        def load() -> MapCatalog:
            catalog = MapCatalog(open_store(settings))
            if settings.seed_file is not None:
                added = seed_demo(catalog, settings.seed_file)
                if added:
                    log.info("installed %d demo features from %s", added, settings.seed_file)
            return catalog

        catalog = await asyncio.to_thread(load)
        log.info("map ready: %d layers, %d grid cells", len(catalog.layers), len(catalog.grid))
        return build_component(catalog, settings.max_locate_batch)

    run_service("map", settings, build)


if __name__ == "__main__":
    main()

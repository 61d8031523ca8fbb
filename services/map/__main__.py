"""Start the map service: `python -m services.map`."""

from __future__ import annotations

import logging

from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.server import run_service
from services.map.api import build_component
from services.map.config import MapSettings
from services.map.store.geopackage import load_grid_index


def main() -> None:
    settings = load_settings(MapSettings)

    async def build() -> ServiceComponent:
        index = load_grid_index(settings.data_file)
        logging.getLogger("grassroots.map").info(
            "loaded %d grid cells from %s", len(index), settings.data_file
        )
        return build_component(index, settings.max_locate_batch)

    run_service("map", settings, build)


if __name__ == "__main__":
    main()

"""Start the map service: `python -m services.map`."""

from __future__ import annotations

from services.kit.config import load_settings
from services.kit.server import run_service
from services.map.config import MapSettings
from services.map.wiring import build, check_backend


def main() -> None:
    settings = load_settings(MapSettings)
    check_backend(settings)
    run_service("map", settings, lambda: build(settings))


if __name__ == "__main__":
    main()

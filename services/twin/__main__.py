"""Start the twin service: `python -m services.twin`."""

from __future__ import annotations

from services.kit.config import load_settings
from services.kit.server import run_service
from services.twin.config import TwinSettings
from services.twin.wiring import build


def main() -> None:
    settings = load_settings(TwinSettings)
    run_service("twin", settings, lambda: build(settings))


if __name__ == "__main__":
    main()

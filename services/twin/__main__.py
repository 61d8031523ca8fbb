"""Start the twin service: `python -m services.twin`."""

from __future__ import annotations

from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.server import run_service
from services.twin.api import build_component
from services.twin.config import TwinSettings


def main() -> None:
    settings = load_settings(TwinSettings)

    async def build() -> ServiceComponent:
        return build_component()

    run_service("twin", settings, build)


if __name__ == "__main__":
    main()

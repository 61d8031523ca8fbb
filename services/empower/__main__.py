"""Start the empower service: `python -m services.empower`."""

from __future__ import annotations

from services.empower.api import build_component
from services.empower.config import EmpowerSettings
from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(EmpowerSettings)

    async def build() -> ServiceComponent:
        return build_component()

    run_service("empower", settings, build)


if __name__ == "__main__":
    main()

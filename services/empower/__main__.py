"""Start the empower service: `python -m services.empower`."""

from __future__ import annotations

from services.empower.api import build_component
from services.empower.config import EmpowerSettings
from services.empower.stores import open_empower
from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(EmpowerSettings)
    if settings.backend == "postgres" and not settings.postgres_dsn:
        raise SystemExit(
            "invalid configuration for EmpowerSettings: GRASSROOTS_EMPOWER_POSTGRES_DSN must "
            "be set when GRASSROOTS_EMPOWER_BACKEND is postgres"
        )

    async def build() -> ServiceComponent:
        opened = await open_empower(settings)
        return build_component(opened.directory, opened.registry, opened.audit, opened.closers)

    run_service("empower", settings, build)


if __name__ == "__main__":
    main()

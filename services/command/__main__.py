"""Start the command service: `python -m services.command`."""

from __future__ import annotations

from services.command.api import build_component
from services.command.config import CommandSettings
from services.kit.component import ServiceComponent
from services.kit.config import load_settings
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(CommandSettings)

    async def build() -> ServiceComponent:
        return build_component()

    run_service("command", settings, build)


if __name__ == "__main__":
    main()

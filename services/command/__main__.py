"""Start the command service: `python -m services.command`."""

from __future__ import annotations

from services.command.config import CommandSettings
from services.command.wiring import build
from services.kit.config import load_settings
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(CommandSettings)
    run_service("command", settings, lambda: build(settings))


if __name__ == "__main__":
    main()

"""Start the events service: `python -m services.events`."""

from __future__ import annotations

from services.events.config import EventsSettings
from services.events.wiring import build, check_backend
from services.kit.config import load_settings
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(EventsSettings)
    # Before the metrics port opens: a missing DSN is a configuration error, not a crash.
    check_backend(settings)
    run_service("events", settings, lambda: build(settings))


if __name__ == "__main__":
    main()

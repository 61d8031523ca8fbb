"""Start the empower service: `python -m services.empower`."""

from __future__ import annotations

from services.empower.config import EmpowerSettings
from services.empower.wiring import build, check_backend
from services.kit.config import load_settings
from services.kit.server import run_service


def main() -> None:
    settings = load_settings(EmpowerSettings)
    check_backend(settings)
    run_service("empower", settings, lambda: build(settings))


if __name__ == "__main__":
    main()

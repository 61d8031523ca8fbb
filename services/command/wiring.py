"""Assemble the command service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

from services.command.api import build_component
from services.command.config import CommandSettings
from services.kit.component import ServiceComponent


async def build(settings: CommandSettings) -> ServiceComponent:
    """The component `run_service` serves (no store yet: every method is UNIMPLEMENTED)."""
    return build_component()

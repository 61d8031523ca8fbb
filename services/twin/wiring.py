"""Assemble the twin service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

from services.kit.component import ServiceComponent
from services.twin.api import build_component
from services.twin.config import TwinSettings


async def build(settings: TwinSettings) -> ServiceComponent:
    """The component `run_service` serves (no store yet: every method is UNIMPLEMENTED)."""
    return build_component()

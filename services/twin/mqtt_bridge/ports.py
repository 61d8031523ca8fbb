"""What the bridge needs from the twin: one call that stores readings durably.

The bridge depends on this protocol only; `wiring` adapts the twin's domain ingest to
it, and tests may hand in their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.kit.principal import Principal


@dataclass(frozen=True)
class DeviceReading:
    """One value of one attribute of one entity, as a device reported it."""

    entity: str  # resource name: tenants/{tenant}/entities/{entity}
    attribute: str
    value: Any
    observe_time: datetime


@dataclass(frozen=True)
class ReadingRefusal:
    """A reading the twin would not store: its position in the call, and why."""

    index: int
    field: str
    reason: str


class TelemetrySink(Protocol):
    async def ingest(
        self, principal: Principal, readings: Sequence[DeviceReading]
    ) -> Sequence[ReadingRefusal]:
        """Store what is valid and return the refusals; returns only once the stored
        readings are committed (the bridge acknowledges the messages then). Storing
        the same reading twice must leave the twin as storing it once."""
        ...

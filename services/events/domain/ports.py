"""What the events domain needs from the outside world, as interfaces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from services.events.domain.model import Event, GridPlace, NewReport, Point


class Locator(Protocol):
    async def locate(self, parent: str, point: Point) -> GridPlace | None:
        """The grid place of `point` within tenant `parent`, or None if outside."""
        ...


class EventStore(Protocol):
    async def find_by_request(
        self, parent: str, reporter: str, request_id: str
    ) -> tuple[Event, str] | None:
        """The event an earlier create with this key made, and that create's fingerprint."""
        ...

    async def create(self, report: NewReport, event: Event) -> tuple[Event, bool]:
        """Store the event and its idempotency key atomically.

        Returns the stored event and True, or, if the key was taken meanwhile, the
        event stored under it and False.
        """
        ...

    async def get(self, event_id: str) -> Event | None: ...

    async def list(
        self,
        scope: str,
        filters: Mapping[str, str],
        limit: int,
        cursor: Mapping[str, object] | None,
    ) -> tuple[list[Event], dict[str, object] | None]:
        """Events in the subtree of `scope`, newest first; returns the next cursor."""
        ...

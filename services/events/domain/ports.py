"""What the events domain needs from the outside world, as interfaces."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from services.events.domain.attachments import Attachment
from services.events.domain.categories import Category
from services.events.domain.intake import IntakeSettings
from services.events.domain.model import (
    Comment,
    Event,
    GridPlace,
    NewReport,
    OutboxEntry,
    Point,
    State,
    StatisticsRow,
    TimelineEntry,
)

# Open events of a category inside a lon/lat box created since a moment.
NearbyQuery = Callable[
    [str, tuple[float, float, float, float], datetime, frozenset[State]], list[Event]
]
# Given a way to ask for nearby events, decide what the new event becomes.
OriginalFinder = Callable[[NearbyQuery, Event], Event]
# Called in a create's transaction for a key taken by another create, with that create's
# fingerprint and event id; raising refuses the whole batch, so nothing of it is stored.
TakenKeyCheck = Callable[[NewReport, str, str], None]
# A change to an event: the new event, a timeline entry and a comment to add.
Change = Callable[[Event], tuple[Event, TimelineEntry | None, Comment | None]]


class Locator(Protocol):
    async def locate_many(self, parent: str, points: list[Point]) -> list[GridPlace | None]:
        """The grid places of many points in one round trip."""
        ...


class EventStore(Protocol):
    async def find_by_requests(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[Event, str]]:
        """Events earlier creates made under these (parent, reporter, request id) keys,
        with each create's fingerprint; keys never used are absent."""
        ...

    async def create_many(
        self,
        items: list[tuple[NewReport, Event]],
        find_original: OriginalFinder,
        check_taken: TakenKeyCheck,
    ) -> list[tuple[Event, bool]]:
        """Store events (as `find_original` decides) with their keys, in one transaction.

        Each result is the stored event and True, or, where the key was taken meanwhile
        (and `check_taken` let it pass), the given event and False.
        """
        ...

    async def get(self, event_id: str) -> Event | None:
        """The event with its timeline and comments."""
        ...

    async def get_many(self, event_ids: list[str]) -> dict[str, Event]:
        """`get` for several events at once, by id; ids not stored are absent."""
        ...

    async def update(self, event_id: str, change: Change, fact: str) -> Event:
        """Apply `change` to the current event atomically (NOT_FOUND if there is none),
        writing the whole row and one outbox entry of type `fact` (domain.facts)."""
        ...

    async def unpublished(self, limit: int) -> list[OutboxEntry]:
        """Outbox entries not yet published, oldest first."""
        ...

    async def mark_published(self, seqs: list[int]) -> None: ...

    async def save_category(self, tenant: str, category: Category) -> None:
        """Store a tenant's category definition, replacing its earlier one."""
        ...

    async def list_categories(self) -> list[tuple[str, Category]]:
        """Every tenant's category definitions, to build the catalog at start."""
        ...

    async def save_intake_settings(self, tenant: str, settings: IntakeSettings) -> None:
        """Store a tenant's intake settings, replacing its earlier ones."""
        ...

    async def intake_settings(self, tenants: list[str]) -> dict[str, IntakeSettings]:
        """The intake settings defined at these tenants (those without are absent)."""
        ...

    async def count_reports(self, tenant: str, reporter_prefix: str, since: datetime) -> int:
        """Events of one village whose reporter starts with the prefix, created since."""
        ...

    async def save_attachment(self, attachment: Attachment, content: bytes) -> None:
        """Store a photo and its bytes."""
        ...

    async def get_attachment(
        self, attachment_id: str, *, content: bool
    ) -> tuple[Attachment, bytes] | None:
        """A photo, with its bytes when `content` (else b"")."""
        ...

    async def latest_offset(self) -> int:
        """The offset of the newest outbox entry (0 when there is none)."""
        ...

    async def changes(self, subtree: str, after: int, limit: int) -> list[OutboxEntry]:
        """Outbox entries of a tenant subtree after an offset."""
        ...

    async def statistics_rows(
        self, subtree: str, filters: Mapping[str, object]
    ) -> list[StatisticsRow]:
        """Per matching event: category, state, grid cell, created and first resolved."""
        ...

    async def list(
        self,
        subtree: str,
        filters: Mapping[str, object],
        limit: int,
        cursor: Mapping[str, object] | None,
    ) -> tuple[list[Event], dict[str, object] | None]:
        """Events under `subtree`, newest first; returns the next cursor."""
        ...

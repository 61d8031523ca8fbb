"""The event and the values it is made of."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    REPORTED = "reported"
    ACCEPTED = "accepted"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    REOPENED = "reopened"
    WITHDRAWN = "withdrawn"


class Source(StrEnum):
    RESIDENT = "resident"
    GRID_PATROL = "grid_patrol"
    TWIN_RULE = "twin_rule"
    ENTERPRISE = "enterprise"
    OPEN311 = "open311"


@dataclass(frozen=True)
class Point:
    """A location in the storage CRS (WGS84), plus the CRS it was reported in."""

    longitude: float
    latitude: float
    reported_crs: str = "EPSG:4326"


# Marks a fingerprint made by `NewReport.fingerprint` (the earlier form had no prefix).
FINGERPRINT_PREFIX = "v2:"


@dataclass(frozen=True)
class GridPlace:
    """Where the map service put a point."""

    village: str
    grid_cell: str
    grid_worker: str


@dataclass(frozen=True)
class NewReport:
    """A validated report, not yet located or stored."""

    parent: str
    category: str
    description: str
    location: Point
    source: Source
    request_id: str
    reporter: str
    severity: int = 0
    media: tuple[str, ...] = ()
    reporter_contact: str = ""
    address: str = ""
    # The twin entity it is about (`tenants/.../entities/...`), from a platform service.
    entity: str = ""
    # When it happened, for imports of earlier records by a platform service (the
    # service adapter passes it only for service principals); None means now.
    reported_time: datetime | None = None
    # The W3C traceparent of the request that made it (opaque; "" when not traced): its
    # outbox row keeps it so the bus message continues the trace. Not part of the report.
    trace_context: str = field(default="", compare=False, repr=False)

    def fingerprint(self) -> str:
        """What makes two creates with the same request id the same request: a hash of
        every field, each kept whole (a JSON array), so text cannot move from one field
        to the next and still match. The prefix tells it from the earlier form."""
        fields = [
            self.category,
            self.description,
            repr(self.location.longitude),
            repr(self.location.latitude),
            self.location.reported_crs,
            self.source.value,
            self.severity,
            list(self.media),
            self.reporter_contact,
            self.address,
            self.entity,
        ]
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        return FINGERPRINT_PREFIX + hashlib.sha256(body.encode()).hexdigest()

    def same_request(self, stored: str) -> bool:
        """Whether a create stored with fingerprint `stored` was this request. Keys
        stored before the prefixed form are compared in their own form."""
        if stored.startswith(FINGERPRINT_PREFIX):
            return stored == self.fingerprint()
        return stored == self._joined_fingerprint()

    def _joined_fingerprint(self) -> str:
        """The earlier form: the fields joined with '|', which let text move between
        fields; kept only to recognise retries of requests stored in that form."""
        body = "|".join(
            [
                self.category,
                self.description,
                repr(self.location.longitude),
                repr(self.location.latitude),
                self.location.reported_crs,
                self.source.value,
                str(self.severity),
                "\n".join(self.media),
                self.reporter_contact,
                self.address,
            ]
            + ([self.entity] if self.entity else [])
        )
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class TimelineEntry:
    actor: str
    time: datetime
    from_state: State | None
    to_state: State
    note: str = ""


@dataclass(frozen=True)
class Evaluation:
    score: int
    text: str
    time: datetime


@dataclass(frozen=True)
class Comment:
    author: str
    text: str
    create_time: datetime


@dataclass(frozen=True)
class Event:
    id: str
    tenant: str
    category: str
    description: str
    location: Point
    source: Source
    state: State
    place: GridPlace
    reporter: str
    create_time: datetime
    update_time: datetime
    version: int = 1
    duplicate_of: str = ""
    evaluation: Evaluation | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    comments: tuple[Comment, ...] = ()
    severity: int = 2
    media: tuple[str, ...] = ()
    reporter_contact: str = ""
    address: str = ""
    # The joint application this event is one department's part of (an event id).
    parent_event: str = ""
    entity: str = ""
    # Set on a new event only (from its report), for its outbox row; never stored.
    trace_context: str = field(default="", compare=False, repr=False)

    @property
    def etag(self) -> str:
        """Opaque, and different after every change (the version counts changes)."""
        raw = f"{self.id}|{self.version}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    next_page_token: str


@dataclass(frozen=True)
class OutboxEntry:
    """A domain event recorded with the change that caused it, to be published."""

    seq: int
    tenant: str
    type: str
    event_id: str
    payload: bytes
    # The traceparent of the request that made the change ("" when not traced).
    trace_context: str = ""


@dataclass(frozen=True)
class StatisticsRow:
    """What dashboards count about one event."""

    category: str
    state: State
    grid_cell: str
    create_time: datetime
    resolved_time: datetime | None
    village: str = ""


@dataclass(frozen=True)
class Statistics:
    total: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    by_grid_cell: dict[str, int]
    by_day: dict[str, int]
    sla_breach_rate: float
    resolved_count: int
    mean_hours_to_resolve: float
    by_village: dict[str, int] = field(default_factory=dict)

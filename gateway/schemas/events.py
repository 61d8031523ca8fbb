"""JSON shapes of the events API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn, GeoPointOut

SourceName = Literal["resident", "grid_patrol", "twin_rule", "enterprise", "open311"]
StateName = Literal[
    "reported",
    "accepted",
    "dispatched",
    "in_progress",
    "resolved",
    "closed",
    "rejected",
    "duplicate",
    "reopened",
    "withdrawn",
]


REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class EventCreate(BaseModel):
    """A report: what, where, and a key that makes retrying safe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: str = Field(..., min_length=1, max_length=64, examples=["environment.garbage"])
    description: str = Field(..., min_length=1, max_length=4000)
    location: GeoPointIn
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=REQUEST_ID_PATTERN,
        description="client-chosen key; a retry with the same key returns the same event. "
        "Or send it as the Idempotency-Key header; one of the two is required",
    )
    source: SourceName = "resident"
    severity: int = Field(0, ge=0, le=5, description="1-5; 0 takes the category's default")
    media_uris: list[str] = Field(default_factory=list, max_length=10)
    reporter_contact: str = Field("", max_length=100, description="phone or e-mail")
    address: str = Field("", max_length=500, description="where it is, in words")


class TimelineEntryOut(BaseModel):
    actor: str
    time: datetime
    from_state: StateName | None
    to_state: StateName
    note: str


class EvaluationOut(BaseModel):
    score: int
    text: str
    time: datetime


class CommentOut(BaseModel):
    author: str
    text: str
    create_time: datetime


class TransitionIn(BaseModel):
    """Move an event along its lifecycle; send the etag you read to avoid lost updates."""

    model_config = ConfigDict(extra="forbid", strict=True)

    state: StateName
    note: str = Field("", max_length=2000)
    etag: str = Field("", max_length=64)
    duplicate_of: str = Field(
        "", max_length=64, description="with state duplicate: the id of the event it repeats"
    )


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    score: int = Field(..., ge=1, le=5)
    text: str = Field("", max_length=2000)
    etag: str = Field("", max_length=64)


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(..., min_length=1, max_length=2000)


class EventOut(BaseModel):
    id: str
    name: str
    category: str
    description: str
    location: GeoPointOut
    source: SourceName
    state: StateName
    village: str
    grid_cell: str
    grid_worker: str
    create_time: datetime
    update_time: datetime
    etag: str
    duplicate_of: str | None = None
    timeline: list[TimelineEntryOut] = []
    evaluation: EvaluationOut | None = None
    comments: list[CommentOut] = []
    severity: int = 0
    media_uris: list[str] = []
    reporter_contact: str = ""
    address: str = ""


class EventList(BaseModel):
    events: list[EventOut]
    next_page_token: str = ""


class EventStatisticsOut(BaseModel):
    total: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    by_grid_cell: dict[str, int]
    by_village: dict[str, int] = Field(
        default_factory=dict, description="counts by village path: a town's breakdown"
    )
    by_day: dict[str, int] = Field(description="counts by day of creation, China Standard Time")
    sla_breach_rate: float
    resolved_count: int
    mean_hours_to_resolve: float


class CategoryIn(BaseModel):
    """A category for your tenant's subtree, or an override of an inherited one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code: str = Field(..., min_length=1, max_length=130, examples=["animals.stray_dog"])
    display_name: str = Field(..., min_length=1, max_length=100)
    default_severity: int = Field(2, ge=1, le=5)
    sla_minutes: int = Field(1440, ge=0, le=525_600)  # at most a year
    duplicate_radius_meters: float = Field(50.0, ge=0, le=1000)
    duplicate_window_minutes: int = Field(120, ge=0, le=10080)
    public: bool = Field(False, description="anyone may read its events, without personal fields")


class CategoryOut(BaseModel):
    name: str
    code: str
    display_name: str
    default_severity: int
    sla_minutes: int
    duplicate_radius_meters: float
    duplicate_window_minutes: int
    public: bool


class CategoryList(BaseModel):
    categories: list[CategoryOut]

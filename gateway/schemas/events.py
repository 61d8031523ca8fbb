"""JSON shapes of the events API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn, GeoPointOut
from gateway.schemas.contract import item, limited
from grassroots.events.v1 import events_service_pb2 as pb
from services.kit import limits

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
# The Idempotency-Key header carries a request id too.
REQUEST_ID_PATTERN = f"^(?:{limits.of(pb.CreateEventRequest, 'request_id').pattern})$"


class EventCreate(BaseModel):
    """A report: what, where, and a key that makes retrying safe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: str = limited(pb.Event, "category", examples=["environment.garbage"])
    description: str = limited(pb.Event, "description")
    location: GeoPointIn
    request_id: str | None = limited(
        pb.CreateEventRequest,
        "request_id",
        None,
        description="client-chosen key; a retry with the same key returns the same event. "
        "Or send it as the Idempotency-Key header; one of the two is required",
    )
    source: SourceName = "resident"
    severity: int = limited(
        pb.Event, "severity", 0, description="1-5; 0 takes the category's default"
    )
    media_uris: list[Annotated[str, item(pb.Event, "media_uris")]] = limited(
        pb.Event, "media_uris", [], description="http(s) URIs of photos or videos"
    )
    reporter_contact: str = limited(pb.Event, "reporter_contact", "", description="phone or e-mail")
    address: str = limited(pb.Event, "address", "", description="where it is, in words")


class EventPatch(BaseModel):
    """A correction by staff: the fields sent are the fields changed (JSON merge patch)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: str | None = limited(pb.Event, "category", None, examples=["roads.pothole"])
    location: GeoPointIn | None = None
    note: str = limited(pb.UpdateEventRequest, "note", "", description="why, for the timeline")
    etag: str = limited(pb.Event, "etag", "", description="the etag you read; 409 if it changed")


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
    note: str = limited(pb.TransitionEventRequest, "note", "")
    etag: str = limited(pb.TransitionEventRequest, "etag", "")
    # An event id here; the contract's field is the resource name the gateway builds.
    duplicate_of: str = Field(
        "", max_length=64, description="with state duplicate: the id of the event it repeats"
    )


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    score: int = limited(pb.EvaluateEventRequest, "score")
    text: str = limited(pb.EvaluateEventRequest, "text", "")
    etag: str = limited(pb.EvaluateEventRequest, "etag", "")


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = limited(pb.AddCommentRequest, "text")


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
    parent: str | None = Field(
        None, description="for one department's part of a joint application: the application's id"
    )
    entity: str = Field("", description="the twin entity a rule raised it for")


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

    code: str = limited(pb.Category, "code", examples=["animals.stray_dog"])
    display_name: str = limited(pb.Category, "display_name")
    default_severity: int = limited(pb.Category, "default_severity", 2)
    sla_minutes: int = limited(pb.Category, "sla_minutes", 1440)
    duplicate_radius_meters: float = limited(pb.Category, "duplicate_radius_meters", 50.0)
    duplicate_window_minutes: int = limited(pb.Category, "duplicate_window_minutes", 120)
    public: bool = Field(False, description="anyone may read its events, without personal fields")
    joint_categories: list[Annotated[str, item(pb.Category, "joint_categories")]] = limited(
        pb.Category,
        "joint_categories",
        [],
        description="joint handling: one event per listed category (each department's part) "
        "is recorded with each application, which is resolved once every part is answered",
    )


class CategoryOut(BaseModel):
    name: str
    code: str
    display_name: str
    default_severity: int
    sla_minutes: int
    duplicate_radius_meters: float
    duplicate_window_minutes: int
    public: bool
    joint_categories: list[str] = []


class CategoryList(BaseModel):
    categories: list[CategoryOut]


class IntakeSettingsIn(BaseModel):
    """Whether the tenant's villages take reports without an account (ADR 35). Fields
    left out keep the values that apply at the tenant now."""

    model_config = ConfigDict(extra="forbid", strict=True)

    anonymous_reports: bool | None = None
    anonymous_reports_per_hour: int | None = limited(
        pb.IntakeSettings,
        "anonymous_reports_per_hour",
        None,
        description="at most this many reports without an account per village and hour",
    )


class IntakeSettingsOut(BaseModel):
    name: str
    anonymous_reports: bool
    anonymous_reports_per_hour: int
    defined_at: str = Field(
        description="the tenant path whose definition applies; empty: the default (off)"
    )


class AnonymousReportIn(BaseModel):
    """A report from someone without an account: what, where, and a secret key."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: str = limited(pb.Event, "category", examples=["environment.garbage"])
    description: str = limited(pb.Event, "description")
    location: GeoPointIn
    request_id: str = limited(
        pb.ReportAnonymouslyRequest,
        "request_id",
        description="a random secret of yours (a UUID will do): a retry with it is the same "
        "report, and it is part of the receipt",
    )
    media_uris: list[Annotated[str, item(pb.Event, "media_uris")]] = limited(
        pb.Event, "media_uris", [], description="http(s) URIs of photos"
    )
    address: str = limited(pb.Event, "address", "", description="where it is, in words")


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    receipt: str = limited(pb.GetAnonymousReportRequest, "receipt")


class ReceiptEvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    receipt: str = limited(pb.EvaluateAnonymousReportRequest, "receipt")
    score: int = limited(pb.EvaluateAnonymousReportRequest, "score")
    text: str = limited(pb.EvaluateAnonymousReportRequest, "text", "")


class AnonymousReportOut(BaseModel):
    receipt: str | None = Field(
        None, description="keep it to follow and rate the report; given once, when reported"
    )
    event: EventOut

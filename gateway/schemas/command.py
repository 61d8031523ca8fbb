"""JSON shapes of the command API: handlers, routing rules, tasks and the board."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn, GeoPointOut

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
HANDLER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TaskStateName = Literal["assigned", "accepted", "in_progress", "done", "waiting", "cancelled"]
SlaStatusName = Literal["on_track", "at_risk", "overdue", "stopped"]
EscalationName = Literal["add_supervisor", "reassign"]


class ShiftIn(BaseModel):
    """A weekly on-duty time, local (Asia/Shanghai)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    weekdays: list[int] = Field(
        default_factory=list, max_length=7, description="ISO weekdays 1-7; empty: every day"
    )
    start: str = Field(..., pattern=HHMM_PATTERN, examples=["08:00"])
    end: str = Field(
        ..., pattern=HHMM_PATTERN, examples=["17:30"], description="before start: overnight"
    )


class HandlerIn(BaseModel):
    """A command profile for a user of the tenant who handles tasks."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user: str = Field(
        ...,
        pattern=r"^users/[A-Za-z0-9_-]{1,64}$",
        description="the user's subject, users/{id}, as GET /v1/me shows it",
    )
    handler_id: str | None = Field(
        None,
        pattern=HANDLER_ID_PATTERN,
        description="the last segment of the profile's name; defaults to the user's id",
    )
    display_name: str = Field("", max_length=200)
    roles: list[str] = Field(..., min_length=1, max_length=20, examples=[["grid_worker"]])
    skills: list[str] = Field(default_factory=list, max_length=20)
    teams: list[str] = Field(default_factory=list, max_length=20)
    capacity: int = Field(5, ge=1, le=100, description="most open tasks at once")
    on_duty: bool = True
    shifts: list[ShiftIn] = Field(default_factory=list, max_length=20)
    position: GeoPointIn | None = None
    supervisor: bool = Field(False, description="supervises escalations at this tenant")


class HandlerPatch(BaseModel):
    """Fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str | None = Field(None, max_length=200)
    roles: list[str] | None = Field(None, min_length=1, max_length=20)
    skills: list[str] | None = Field(None, max_length=20)
    teams: list[str] | None = Field(None, max_length=20)
    capacity: int | None = Field(None, ge=1, le=100)
    on_duty: bool | None = None
    shifts: list[ShiftIn] | None = Field(None, max_length=20)
    supervisor: bool | None = None


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    position: GeoPointIn


class ShiftOut(BaseModel):
    weekdays: list[int]
    start: str
    end: str


class HandlerOut(BaseModel):
    id: str
    name: str
    user: str
    display_name: str
    roles: list[str]
    skills: list[str]
    teams: list[str]
    capacity: int
    on_duty: bool
    shifts: list[ShiftOut]
    position: GeoPointOut | None
    position_time: datetime | None
    open_tasks: int
    last_assigned_time: datetime | None
    supervisor: bool
    create_time: datetime | None


class HandlerList(BaseModel):
    handlers: list[HandlerOut]
    next_page_token: str


class RoutingRuleIn(BaseModel):
    """Who handles which events, with SLAs. The first rule that matches wins: the
    village's own rules first, then its town's, district's and city's; within a tenant,
    higher `priority` first."""

    model_config = ConfigDict(extra="forbid", strict=True)

    category: str = Field(
        ...,
        min_length=1,
        max_length=100,
        examples=["safety.*"],
        description="a category code, a prefix such as 'safety.*', or '*' for all",
    )
    handler_role: str = Field("", max_length=63, examples=["grid_worker"])
    team: str = Field("", max_length=63)
    department: str = Field("", max_length=63)
    priority: int = Field(0, ge=-1000, le=1000)
    min_severity: int = Field(0, ge=0, le=5)
    grid_cells: list[str] = Field(default_factory=list, max_length=500)
    village: str = Field("", max_length=250, description="tenant path the event lies in")
    active_from: str = Field("", max_length=5, description="HH:MM local; empty: all day")
    active_until: str = Field("", max_length=5, description="HH:MM local, exclusive")
    response_sla_seconds: int | None = Field(
        None, ge=1, le=90 * 86400, description="offer to acceptance before escalation"
    )
    resolution_sla_seconds: int | None = Field(
        None, ge=1, le=90 * 86400, description="creation to resolution before escalation"
    )
    offer_timeout_seconds: int = Field(
        600, ge=10, le=86400, description="an unanswered offer then goes to the next handler"
    )
    escalation_action: EscalationName = "add_supervisor"
    display_name: str = Field("", max_length=200)


class RoutingRuleOut(BaseModel):
    id: str
    name: str
    category: str
    handler_role: str
    team: str
    department: str
    priority: int
    min_severity: int
    grid_cells: list[str]
    village: str
    active_from: str
    active_until: str
    response_sla_seconds: float | None
    resolution_sla_seconds: float | None
    offer_timeout_seconds: float
    escalation_action: EscalationName
    display_name: str
    create_time: datetime | None
    unrouted_categories: list[str] = Field(
        description="on create: categories of the tenant that no rule routes"
    )


class RoutingRuleList(BaseModel):
    routing_rules: list[RoutingRuleOut]
    next_page_token: str


class UnroutedOut(BaseModel):
    unrouted_categories: list[str]


class RoutingDecisionOut(BaseModel):
    routing_rule: str
    explanation: str
    handler_role: str
    team: str


class AssignIn(BaseModel):
    """Route an event now, or give it to a named handler."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event: str = Field(
        ..., min_length=1, max_length=300, description="event id, or its resource name"
    )
    handler: str = Field(
        "", max_length=80, description="users/{id} of a handler; empty: the nearest available"
    )


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field("", max_length=2000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    note: str = Field(..., min_length=1, max_length=2000)
    media_uris: list[str] = Field(default_factory=list, max_length=10)


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    handler: str = Field("", max_length=80, description="users/{id}; empty: back to routing")
    reason: str = Field(..., min_length=1, max_length=2000, description="the reporter reads it")


class TransferOut(BaseModel):
    from_handler: str
    to_handler: str
    reason: str
    time: datetime | None
    actor: str


class TaskOut(BaseModel):
    id: str
    name: str
    event: str
    handler: str
    handler_role: str
    team: str
    state: TaskStateName
    category: str
    severity: int
    grid_cell: str
    village: str
    location: GeoPointOut | None
    routing: RoutingDecisionOut
    create_time: datetime | None
    update_time: datetime | None
    offer_expire_time: datetime | None
    response_due_time: datetime | None
    due_time: datetime | None = Field(description="resolution deadline")
    accept_time: datetime | None
    start_time: datetime | None
    resolve_time: datetime | None
    resolution_note: str
    media_uris: list[str]
    escalation_level: int
    escalated_to: str
    supervisor: str
    passed_by: list[str]
    transfers: list[TransferOut]
    sla_status: SlaStatusName
    distance_meters: float
    etag: str


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_page_token: str


class WorkloadOut(BaseModel):
    handler: str
    open_tasks: int
    capacity: int
    on_duty: bool


class BoardOut(BaseModel):
    by_state: dict[str, int]
    by_grid_cell: dict[str, int]
    by_handler: dict[str, int]
    by_team: dict[str, int]
    at_risk: int
    overdue: int
    escalated: int
    workload: list[WorkloadOut]
    mean_seconds_to_accept: float | None
    mean_seconds_to_resolve: float | None

"""JSON shapes of the command API: handlers, routing rules, tasks and the board."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn, GeoPointOut
from gateway.schemas.contract import item, limited
from grassroots.command.v1 import command_service_pb2 as pb
from services.kit import limits

HANDLER_ID_PATTERN = f"^(?:{limits.of(pb.CreateHandlerProfileRequest, 'handler_id').pattern})$"
Shift = pb.HandlerProfile.Shift
Name = Annotated[str, item(pb.HandlerProfile, "roles")]
TaskStateName = Literal["assigned", "accepted", "in_progress", "done", "waiting", "cancelled"]
SlaStatusName = Literal["on_track", "at_risk", "overdue", "stopped"]
EscalationName = Literal["add_supervisor", "reassign"]


class ShiftIn(BaseModel):
    """A weekly on-duty time, local (Asia/Shanghai)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    weekdays: list[Annotated[int, item(Shift, "weekdays")]] = limited(
        Shift, "weekdays", [], description="ISO weekdays 1-7; empty: every day"
    )
    start: str = limited(Shift, "start", examples=["08:00"])
    end: str = limited(Shift, "end", examples=["17:30"], description="before start: overnight")


class HandlerIn(BaseModel):
    """A command profile for a user of the tenant who handles tasks."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user: str = limited(
        pb.HandlerProfile, "user", description="the user's subject, users/{id}, as /v1/me shows"
    )
    handler_id: str | None = limited(
        pb.CreateHandlerProfileRequest,
        "handler_id",
        None,
        description="the last segment of the profile's name; defaults to the user's id",
    )
    display_name: str = limited(pb.HandlerProfile, "display_name", "")
    roles: list[Name] = limited(pb.HandlerProfile, "roles", examples=[["grid_worker"]])
    skills: list[Name] = limited(pb.HandlerProfile, "skills", [])
    teams: list[Name] = limited(pb.HandlerProfile, "teams", [])
    capacity: int = limited(pb.HandlerProfile, "capacity", 5, description="most open tasks")
    on_duty: bool = True
    shifts: list[ShiftIn] = limited(pb.HandlerProfile, "shifts", [])
    position: GeoPointIn | None = None
    supervisor: bool = Field(False, description="supervises escalations at this tenant")


class HandlerPatch(BaseModel):
    """Fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str | None = limited(pb.HandlerProfile, "display_name", None)
    roles: list[Name] | None = limited(pb.HandlerProfile, "roles", None)
    skills: list[Name] | None = limited(pb.HandlerProfile, "skills", None)
    teams: list[Name] | None = limited(pb.HandlerProfile, "teams", None)
    capacity: int | None = limited(pb.HandlerProfile, "capacity", None)
    on_duty: bool | None = None
    shifts: list[ShiftIn] | None = limited(pb.HandlerProfile, "shifts", None)
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

    category: str = limited(
        pb.RoutingRule,
        "category",
        examples=["safety.*"],
        description="a category code, a prefix such as 'safety.*', or '*' for all",
    )
    handler_role: str = limited(pb.RoutingRule, "handler_role", "", examples=["grid_worker"])
    team: str = limited(pb.RoutingRule, "team", "")
    department: str = limited(pb.RoutingRule, "department", "")
    priority: int = limited(pb.RoutingRule, "priority", 0)
    min_severity: int = limited(pb.RoutingRule, "min_severity", 0)
    grid_cells: list[Annotated[str, item(pb.RoutingRule, "grid_cells")]] = limited(
        pb.RoutingRule, "grid_cells", []
    )
    village: str = limited(pb.RoutingRule, "village", "", description="tenant path it lies in")
    active_from: str = limited(
        pb.RoutingRule, "active_from", "", description="HH:MM local; empty: all day"
    )
    active_until: str = limited(
        pb.RoutingRule, "active_until", "", description="HH:MM local, exclusive"
    )
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
    display_name: str = limited(pb.RoutingRule, "display_name", "")


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
    warnings: list[str] = Field(
        default_factory=list,
        description="on create: what the rule names that nothing matches now (a category "
        "none of the tenant's codes falls under, a role or team no handler holds); saved "
        "all the same",
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

    event: str = limited(
        pb.AssignTaskRequest, "event", description="event id, or its resource name"
    )
    handler: str = limited(
        pb.AssignTaskRequest,
        "handler",
        "",
        description="users/{id} of a handler; empty: the nearest available",
    )


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = limited(pb.DeclineTaskRequest, "reason", "")


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    note: str = limited(pb.ResolveTaskRequest, "note")
    media_uris: list[Annotated[str, item(pb.ResolveTaskRequest, "media_uris")]] = limited(
        pb.ResolveTaskRequest, "media_uris", []
    )


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    handler: str = limited(
        pb.TransferTaskRequest, "handler", "", description="users/{id}; empty: back to routing"
    )
    reason: str = limited(pb.TransferTaskRequest, "reason", description="the reporter reads it")


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
    emergency_plan: str = Field(
        description="the emergency plan whose level opened the task (no event); empty for an "
        "event's task"
    )
    emergency_item: str = Field(description="the plan's item the task carries out")
    description: str = Field(description="what to do, for a task without an event")


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

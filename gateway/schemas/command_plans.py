"""JSON shapes of emergency plans, the command log, service plans and service orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn, GeoPointOut, Rfc3339Time
from gateway.schemas.contract import item, limited
from grassroots.command.v1 import plans_service_pb2 as pb

ItemKindName = Literal["dispatch", "checklist", "notice"]
ItemStateName = Literal["open", "closed"]
OrderStateName = Literal["assigned", "checked_in", "done", "unassigned", "cancelled"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DispatchIO(_In):
    role: str = limited(pb.Dispatch, "role", examples=["volunteer"])
    team: str = limited(pb.Dispatch, "team", "", examples=["crowd_control"])
    count: int = limited(pb.Dispatch, "count", 1)


class NoticeIO(_In):
    audience: str = limited(pb.Notice, "audience", examples=["residents"])
    text: str = limited(pb.Notice, "text")


class EmergencyLevelIO(_In):
    """One response level and what opening it does."""

    level: int = limited(
        pb.EmergencyLevel, "level", description="3, 2 or 1; 1 is the worst", examples=[2]
    )
    summary: str = limited(pb.EmergencyLevel, "summary", "", examples=["more than 5,000 people"])
    dispatches: list[DispatchIO] = limited(pb.EmergencyLevel, "dispatches", [])
    checklist: list[Annotated[str, item(pb.EmergencyLevel, "checklist")]] = limited(
        pb.EmergencyLevel, "checklist", [], description="one task per line"
    )
    notices: list[NoticeIO] = limited(pb.EmergencyLevel, "notices", [])
    checklist_role: str = limited(
        pb.EmergencyLevel,
        "checklist_role",
        "",
        description="role the checklist's tasks are offered to (the nearest holder); "
        "empty: they wait for a desk",
        examples=["volunteer"],
    )


class EmergencyPlanCreate(_In):
    """A plan with exactly three levels, 3, 2 and 1; a missing one is a 400 naming `levels`."""

    display_name: str = limited(
        pb.EmergencyPlan, "display_name", examples=["Crowd surge at the fountain"]
    )
    signal: str = limited(
        pb.EmergencyPlan,
        "signal",
        "",
        description="resource name of the twin rule whose level changes move this plan",
    )
    levels: list[EmergencyLevelIO] = limited(pb.EmergencyPlan, "levels")
    location: GeoPointIn | None = Field(
        None,
        description="where the plan's tasks are: raising a level offers them to the nearest "
        "available handlers from here; without it, to those given work longest ago",
    )
    request_id: str | None = limited(
        pb.CreateEmergencyPlanRequest,
        "request_id",
        None,
        description="a retry with the same key returns the plan",
    )


class EmergencyPlanPatch(_In):
    """Fields to change; those left out stay as they are (`location: null` removes the
    place). The levels and the signal of a plan with an active level are a 409."""

    display_name: str | None = limited(pb.EmergencyPlan, "display_name", None)
    signal: str | None = limited(pb.EmergencyPlan, "signal", None)
    levels: list[EmergencyLevelIO] | None = limited(pb.EmergencyPlan, "levels", None)
    location: GeoPointIn | None = None
    etag: str = limited(
        pb.DeleteEmergencyPlanRequest,
        "etag",
        "",
        description="refuse (409) if the plan changed since",
    )
    reason: str = limited(
        pb.UpdateEmergencyPlanRequest,
        "reason",
        "",
        description="why, for the command log",
        examples=["the square got a new exit"],
    )


class EmergencyItemOut(BaseModel):
    id: str
    level: int
    kind: ItemKindName
    description: str
    state: ItemStateName
    open_time: datetime
    close_time: datetime | None
    tasks: list[str] = Field(
        ...,
        description="names of the tasks the item opened: one per handler a dispatch sends, "
        "one for a checklist line (list them with `GET .../tasks?emergency_plan=...`)",
    )


class EmergencyPlanOut(BaseModel):
    id: str
    name: str
    display_name: str
    signal: str
    levels: list[EmergencyLevelIO]
    current_level: int = Field(..., description="0 when stood down")
    level_reason: str
    level_actor: str
    level_change_time: datetime | None
    items: list[EmergencyItemOut] = Field(
        ..., description="what the active levels opened, and what the last step down closed"
    )
    etag: str
    create_time: datetime
    location: GeoPointOut | None


class EmergencyPlanList(BaseModel):
    emergency_plans: list[EmergencyPlanOut]
    next_page_token: str = ""


class LevelChangeIn(_In):
    """Raise or lower a plan: 3, 2 or 1 (1 is the worst), or 0 to stand down."""

    level: int = limited(pb.ChangeEmergencyLevelRequest, "level", examples=[2])
    reason: str = limited(
        pb.ChangeEmergencyLevelRequest, "reason", examples=["5,412 people counted at 14:05"]
    )
    etag: str = limited(
        pb.ChangeEmergencyLevelRequest,
        "etag",
        "",
        description="refuse (409) if the plan changed since",
    )


class CommandLogEntryOut(BaseModel):
    name: str
    time: datetime
    actor: str = Field(..., description="a user's subject, a service, or signal:<twin rule>")
    action: str
    resource: str
    reason: str
    detail: str


class CommandLogEntryList(BaseModel):
    command_log_entries: list[CommandLogEntryOut]
    next_page_token: str = ""


class ServiceTargetIn(_In):
    id: str = limited(pb.ServiceTarget, "id", examples=["r-0012"])
    display_name: str = limited(pb.ServiceTarget, "display_name", "", examples=["Flat 3-201"])
    location: GeoPointIn


class ServicePlanCreate(_In):
    """Recurring visits: each occurrence of `recurrence` makes one order per target."""

    display_name: str = limited(pb.ServicePlan, "display_name", examples=["Weekly visit"])
    recurrence: str = limited(
        pb.ServicePlan,
        "recurrence",
        description="iCalendar RRULE, DAILY or coarser, in China Standard Time",
        examples=["FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"],
    )
    start_time: Rfc3339Time = Field(..., description="DTSTART")
    visit_minutes: int = limited(pb.ServicePlan, "visit_minutes", 60)
    handler_role: str = limited(pb.ServicePlan, "handler_role", "carer")
    carers: list[Annotated[str, item(pb.ServicePlan, "carers")]] = limited(
        pb.ServicePlan,
        "carers",
        [],
        description="subjects of the carers who may be sent; empty: the tenant's on-duty "
        "handlers holding handler_role",
    )
    max_check_in_distance_meters: float = limited(
        pb.ServicePlan, "max_check_in_distance_meters", 100.0
    )
    targets: list[ServiceTargetIn] = limited(pb.ServicePlan, "targets")
    escalation_role: str = limited(
        pb.ServicePlan,
        "escalation_role",
        "",
        description="who takes over an order nobody checked in to by its due time",
        examples=["village_doctor"],
    )
    request_id: str | None = limited(pb.CreateServicePlanRequest, "request_id", None)


class ServicePlanPatch(_In):
    """Fields to change; those left out stay as they are. Orders already made keep what
    they were made with; a new `recurrence` or `start_time` moves the next occurrence."""

    display_name: str | None = limited(pb.ServicePlan, "display_name", None)
    recurrence: str | None = limited(pb.ServicePlan, "recurrence", None)
    start_time: Rfc3339Time | None = Field(None, description="DTSTART")
    visit_minutes: int | None = limited(pb.ServicePlan, "visit_minutes", None)
    handler_role: str | None = limited(pb.ServicePlan, "handler_role", None)
    carers: list[Annotated[str, item(pb.ServicePlan, "carers")]] | None = limited(
        pb.ServicePlan, "carers", None
    )
    max_check_in_distance_meters: float | None = limited(
        pb.ServicePlan, "max_check_in_distance_meters", None
    )
    targets: list[ServiceTargetIn] | None = limited(pb.ServicePlan, "targets", None)
    escalation_role: str | None = limited(pb.ServicePlan, "escalation_role", None)
    etag: str = limited(
        pb.DeleteServicePlanRequest,
        "etag",
        "",
        description="refuse (409) if the plan changed since",
    )
    reason: str = limited(
        pb.UpdateServicePlanRequest, "reason", "", description="why, for the command log"
    )


class ServiceTargetOut(BaseModel):
    id: str
    display_name: str
    location: GeoPointOut


class ServicePlanOut(BaseModel):
    id: str
    name: str
    display_name: str
    recurrence: str
    start_time: datetime
    visit_minutes: int
    handler_role: str
    carers: list[str]
    max_check_in_distance_meters: float
    targets: list[ServiceTargetOut]
    next_occurrence_time: datetime | None = Field(
        ..., description="the next occurrence without orders yet; null once the rule ended"
    )
    create_time: datetime
    escalation_role: str = ""
    etag: str = Field("", description="send it back to change or delete safely")


class ServicePlanList(BaseModel):
    service_plans: list[ServicePlanOut]
    next_page_token: str = ""


class ServiceOrderOut(BaseModel):
    id: str
    name: str
    service_plan: str
    target: str
    target_display_name: str
    target_location: GeoPointOut
    scheduled_time: datetime
    due_time: datetime
    handler: str
    state: OrderStateName
    check_in_time: datetime | None
    check_in_location: GeoPointOut | None
    check_out_time: datetime | None
    check_out_location: GeoPointOut | None
    note: str
    etag: str
    escalated_from: str = ""
    escalate_time: datetime | None = None


class ServiceOrderList(BaseModel):
    service_orders: list[ServiceOrderOut]
    next_page_token: str = ""


class CheckInIn(_In):
    location: GeoPointIn


class CheckOutIn(_In):
    location: GeoPointIn
    note: str = limited(pb.CheckOutServiceOrderRequest, "note", "")

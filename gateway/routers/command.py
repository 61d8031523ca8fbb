"""REST for the command component: handlers, routing rules, tasks and the board.

Paths are the resources' names (ADR 9): `tenants/{tenant}/tasks/{task}` answers at
`/v1/tenants/{tenant}/tasks/{task}`; custom methods follow a colon (`:accept`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, Security
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import (
    VILLAGE_FILTER_DESCRIPTION,
    TenantId,
    filter_value,
    parent,
    resource_filter,
    resource_filter_description,
    time_filter,
    village_filter,
)
from gateway.schemas.command import (
    HANDLER_ID_PATTERN,
    AssignIn,
    BoardOut,
    DeclineIn,
    EscalationName,
    HandlerIn,
    HandlerList,
    HandlerOut,
    HandlerPatch,
    PositionIn,
    ResolveIn,
    RoutingDecisionOut,
    RoutingRuleIn,
    RoutingRuleList,
    RoutingRuleOut,
    ShiftIn,
    ShiftOut,
    SlaStatusName,
    TaskList,
    TaskOut,
    TaskStateName,
    TransferIn,
    TransferOut,
    UnroutedOut,
    WorkloadOut,
)
from gateway.schemas.common import GeoPointIn, GeoPointOut, Rfc3339Time
from gateway.schemas.contract import query
from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit.filtering import quote
from services.kit.principal import Principal

SERVICE = "grassroots.command.v1.CommandService"
Explain = pb.ExplainRoutingRequest
router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["command"])
Who = Annotated[Principal, Security(access("command"))]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TaskId = Annotated[str, Path(pattern=_ID, description="task id, as in the task's name")]
HandlerId = Annotated[str, Path(pattern=HANDLER_ID_PATTERN, description="handler id")]
RuleId = Annotated[str, Path(pattern=_ID, description="routing rule id")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
Village = Annotated[str | None, Query(max_length=250, description=VILLAGE_FILTER_DESCRIPTION)]
PageToken = Annotated[str, Query(max_length=512)]
_STATES: dict[int, TaskStateName] = {
    pb.Task.STATE_ASSIGNED: "assigned",
    pb.Task.STATE_ACCEPTED: "accepted",
    pb.Task.STATE_IN_PROGRESS: "in_progress",
    pb.Task.STATE_DONE: "done",
    pb.Task.STATE_WAITING: "waiting",
    pb.Task.STATE_CANCELLED: "cancelled",
    pb.Task.STATE_ESCALATED: "assigned",
}
_SLA: dict[int, SlaStatusName] = {
    pb.SLA_STATUS_ON_TRACK: "on_track",
    pb.SLA_STATUS_AT_RISK: "at_risk",
    pb.SLA_STATUS_OVERDUE: "overdue",
    pb.SLA_STATUS_STOPPED: "stopped",
    pb.SLA_STATUS_UNSPECIFIED: "stopped",
}
_ESCALATION = {"add_supervisor": pb.ESCALATION_ACTION_ADD_SUPERVISOR}
_ESCALATION["reassign"] = pb.ESCALATION_ACTION_REASSIGN


def _time(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def _seconds(message: pb.RoutingRule, field: str) -> float | None:
    if not message.HasField(field):  # type: ignore[arg-type]
        return None
    span: Duration = getattr(message, field)
    return span.ToTimedelta().total_seconds()


def _point(message: Any) -> GeoPointOut:
    return GeoPointOut(longitude=message.longitude, latitude=message.latitude, crs=message.crs)


def _geo(point: GeoPointIn) -> geo_pb2.GeoPoint:
    return geo_pb2.GeoPoint(longitude=point.longitude, latitude=point.latitude, crs=point.crs)


def handler_out(p: pb.HandlerProfile) -> HandlerOut:
    return HandlerOut(
        id=p.name.rsplit("/", 1)[-1],
        name=p.name,
        user=p.user,
        display_name=p.display_name,
        roles=list(p.roles),
        skills=list(p.skills),
        teams=list(p.teams),
        capacity=p.capacity,
        on_duty=p.on_duty,
        shifts=[ShiftOut(weekdays=list(s.weekdays), start=s.start, end=s.end) for s in p.shifts],
        position=_point(p.position) if p.HasField("position") else None,
        position_time=_time(p.position_time, p.HasField("position_time")),
        open_tasks=p.open_tasks,
        last_assigned_time=_time(p.last_assigned_time, p.HasField("last_assigned_time")),
        supervisor=p.supervisor,
        create_time=_time(p.create_time, p.HasField("create_time")),
    )


def rule_out(r: pb.RoutingRule) -> RoutingRuleOut:
    action: EscalationName = (
        "reassign" if r.escalation_action == pb.ESCALATION_ACTION_REASSIGN else "add_supervisor"
    )
    return RoutingRuleOut(
        id=r.name.rsplit("/", 1)[-1],
        name=r.name,
        category=r.category,
        handler_role=r.handler_role,
        team=r.team,
        department=r.department,
        priority=r.priority,
        min_severity=r.min_severity,
        grid_cells=list(r.grid_cells),
        village=r.village,
        active_from=r.active_from,
        active_until=r.active_until,
        response_sla_seconds=_seconds(r, "response_sla"),
        resolution_sla_seconds=_seconds(r, "sla"),
        offer_timeout_seconds=_seconds(r, "offer_timeout") or 600.0,
        escalation_action=action,
        display_name=r.display_name,
        create_time=_time(r.create_time, r.HasField("create_time")),
        unrouted_categories=list(r.unrouted_categories),
        warnings=list(r.warnings),
    )


def decision_out(d: pb.RoutingDecision) -> RoutingDecisionOut:
    return RoutingDecisionOut(
        routing_rule=d.routing_rule,
        explanation=d.explanation,
        handler_role=d.handler_role,
        team=d.team,
    )


def task_out(t: pb.Task) -> TaskOut:
    return TaskOut(
        id=t.name.rsplit("/", 1)[-1],
        name=t.name,
        event=t.event,
        handler=t.handler,
        handler_role=t.handler_role,
        team=t.team,
        state=_STATES.get(t.state, "waiting"),
        category=t.category,
        severity=t.severity,
        grid_cell=t.grid_cell,
        village=t.village,
        location=_point(t.location) if t.HasField("location") else None,
        routing=decision_out(t.routing),
        create_time=_time(t.create_time, t.HasField("create_time")),
        update_time=_time(t.update_time, t.HasField("update_time")),
        offer_expire_time=_time(t.offer_expire_time, t.HasField("offer_expire_time")),
        response_due_time=_time(t.response_due_time, t.HasField("response_due_time")),
        due_time=_time(t.due_time, t.HasField("due_time")),
        accept_time=_time(t.accept_time, t.HasField("accept_time")),
        start_time=_time(t.start_time, t.HasField("start_time")),
        resolve_time=_time(t.resolve_time, t.HasField("resolve_time")),
        resolution_note=t.resolution_note,
        media_uris=list(t.media_uris),
        escalation_level=t.escalation_level,
        escalated_to=t.escalated_to,
        supervisor=t.supervisor,
        passed_by=list(t.passed_by),
        transfers=[
            TransferOut(
                from_handler=x.from_handler,
                to_handler=x.to_handler,
                reason=x.reason,
                time=_time(x.time, x.HasField("time")),
                actor=x.actor,
            )
            for x in t.transfers
        ],
        sla_status=_SLA.get(t.sla_status, "stopped"),
        distance_meters=t.distance_meters,
        etag=t.etag,
        emergency_plan=t.emergency_plan,
        emergency_item=t.emergency_item,
        description=t.description,
    )


def _stub(request: Request) -> Any:
    return request.app.state.upstreams.command


def _shifts(shifts: list[ShiftIn]) -> list[pb.HandlerProfile.Shift]:
    return [pb.HandlerProfile.Shift(weekdays=s.weekdays, start=s.start, end=s.end) for s in shifts]


def _duration(seconds: int | None) -> Duration | None:
    return Duration(seconds=seconds) if seconds is not None else None


# ---- handler profiles -------------------------------------------------------------------


@router.post("/handlers", status_code=201, response_model=HandlerOut, summary="Add a handler")
@calls(SERVICE, "CreateHandlerProfile")
async def create_handler(tenant: TenantId, body: HandlerIn, request: Request, who: Who) -> Any:
    """Give a user of the tenant a command profile: roles, teams, capacity, duty, shifts,
    and where they are (GCJ-02 from a phone is accepted and stored as WGS84)."""
    message = pb.HandlerProfile(
        user=body.user,
        display_name=body.display_name,
        roles=body.roles,
        skills=body.skills,
        teams=body.teams,
        capacity=body.capacity,
        on_duty=body.on_duty,
        shifts=_shifts(body.shifts),
        position=_geo(body.position) if body.position else None,
        supervisor=body.supervisor,
    )
    rpc = _stub(request).CreateHandlerProfile(
        pb.CreateHandlerProfileRequest(
            parent=parent(tenant), handler_profile=message, handler_id=body.handler_id or ""
        ),
        metadata=call_metadata(who),
    )
    return handler_out(await call(rpc, strip_prefix="handler_profile."))


@router.get("/handlers", response_model=HandlerList, summary="List handlers and their load")
@calls(SERVICE, "ListHandlerProfiles")
async def list_handlers(
    tenant: TenantId,
    request: Request,
    who: Who,
    role: Annotated[str | None, Query(max_length=63, description="holding this role")] = None,
    team: Annotated[str | None, Query(max_length=63, description="in this team")] = None,
    on_duty: Annotated[bool | None, Query(description="on duty (true) or off (false)")] = None,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> Any:
    """Handlers of the tenant's subtree, with their open tasks."""
    terms = []
    if role:
        terms.append(f'role = "{quote(role)}"')
    if team:
        terms.append(f'team = "{quote(team)}"')
    if on_duty is not None:
        terms.append(f'on_duty = "{"true" if on_duty else "false"}"')
    rpc = _stub(request).ListHandlerProfiles(
        pb.ListHandlerProfilesRequest(
            parent=parent(tenant),
            filter=" AND ".join(terms),
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return HandlerList(
        handlers=[handler_out(p) for p in response.handler_profiles],
        next_page_token=response.next_page_token,
    )


def _handler_name(tenant: str, handler: str) -> str:
    return f"{parent(tenant)}/handlers/{handler}"


@router.get("/handlers/{handler}", response_model=HandlerOut, summary="Get a handler")
@calls(SERVICE, "GetHandlerProfile")
async def get_handler(tenant: TenantId, handler: HandlerId, request: Request, who: Who) -> Any:
    rpc = _stub(request).GetHandlerProfile(
        pb.GetHandlerProfileRequest(name=_handler_name(tenant, handler)),
        metadata=call_metadata(who),
    )
    return handler_out(await call(rpc))


@router.patch("/handlers/{handler}", response_model=HandlerOut, summary="Change a handler")
@calls(SERVICE, "UpdateHandlerProfile")
async def update_handler(
    tenant: TenantId, handler: HandlerId, body: HandlerPatch, request: Request, who: Who
) -> Any:
    """Only the fields sent change (going off duty, a new team, another capacity)."""
    sent = body.model_dump(exclude_unset=True)
    message = pb.HandlerProfile(name=_handler_name(tenant, handler))
    for field in ("display_name", "capacity", "on_duty", "supervisor"):
        if sent.get(field) is not None:
            setattr(message, field, sent[field])
    for field in ("roles", "skills", "teams"):
        if sent.get(field) is not None:
            getattr(message, field).extend(sent[field])
    if body.shifts is not None:
        message.shifts.extend(_shifts(body.shifts))
    paths = [field for field, value in sent.items() if value is not None]
    rpc = _stub(request).UpdateHandlerProfile(
        pb.UpdateHandlerProfileRequest(handler_profile=message, update_mask=FieldMask(paths=paths)),
        metadata=call_metadata(who),
    )
    return handler_out(await call(rpc, strip_prefix="handler_profile."))


@router.delete("/handlers/{handler}", status_code=204, summary="Delete a handler")
@calls(SERVICE, "DeleteHandlerProfile")
async def delete_handler(
    tenant: TenantId, handler: HandlerId, request: Request, who: Who
) -> Response:
    """The person takes no more work here. While tasks are offered to or held by them the
    answer is 409 (HANDLER_HAS_OPEN_TASKS, with the count): transfer them first."""
    await call(
        _stub(request).DeleteHandlerProfile(
            pb.DeleteHandlerProfileRequest(name=_handler_name(tenant, handler)),
            metadata=call_metadata(who),
        )
    )
    return Response(status_code=204)


@router.post(
    "/handlers/{handler}:reportPosition", response_model=HandlerOut, summary="Report a position"
)
@calls(SERVICE, "ReportHandlerPosition")
async def report_position(
    tenant: TenantId, handler: HandlerId, body: PositionIn, request: Request, who: Who
) -> Any:
    """The handler's app says where the handler is now; GCJ-02 is accepted."""
    rpc = _stub(request).ReportHandlerPosition(
        pb.ReportHandlerPositionRequest(
            name=_handler_name(tenant, handler), position=_geo(body.position)
        ),
        metadata=call_metadata(who),
    )
    return handler_out(await call(rpc))


# ---- routing rules ----------------------------------------------------------------------


@router.post(
    "/routingRules", status_code=201, response_model=RoutingRuleOut, summary="Add a routing rule"
)
@calls(SERVICE, "CreateRoutingRule")
async def create_rule(tenant: TenantId, body: RoutingRuleIn, request: Request, who: Who) -> Any:
    """The answer lists the tenant's categories no rule routes (`unrouted_categories`)."""
    message = pb.RoutingRule(
        category=body.category,
        handler_role=body.handler_role,
        team=body.team,
        department=body.department,
        priority=body.priority,
        min_severity=body.min_severity,
        grid_cells=body.grid_cells,
        village=village_filter(body.village or None) or "",
        active_from=body.active_from,
        active_until=body.active_until,
        response_sla=_duration(body.response_sla_seconds),
        sla=_duration(body.resolution_sla_seconds),
        offer_timeout=_duration(body.offer_timeout_seconds),
        escalation_action=_ESCALATION[body.escalation_action],  # type: ignore[arg-type]
        display_name=body.display_name,
    )
    rpc = _stub(request).CreateRoutingRule(
        pb.CreateRoutingRuleRequest(parent=parent(tenant), routing_rule=message),
        metadata=call_metadata(who),
    )
    return rule_out(await call(rpc, strip_prefix="routing_rule."))


@router.get("/routingRules", response_model=RoutingRuleList, summary="Rules that apply here")
@calls(SERVICE, "ListRoutingRules")
async def list_rules(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> Any:
    """The tenant's own rules and those it inherits, in the order they are tried."""
    rpc = _stub(request).ListRoutingRules(
        pb.ListRoutingRulesRequest(
            parent=parent(tenant), page_size=page_size, page_token=page_token
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return RoutingRuleList(
        routing_rules=[rule_out(r) for r in response.routing_rules],
        next_page_token=response.next_page_token,
    )


@router.get(
    "/routingRules:explain", response_model=RoutingDecisionOut, summary="Which rule would route"
)
@calls(SERVICE, "ExplainRouting")
async def explain(
    tenant: TenantId,
    request: Request,
    who: Who,
    category: Annotated[str, query(Explain, "category", description="required")] = "",
    severity: Annotated[int, query(Explain, "severity", description="1 (minor) to 5")] = 2,
    grid_cell: Annotated[str, query(Explain, "grid_cell")] = "",
    village: Annotated[
        str | None, query(Explain, "village", description=VILLAGE_FILTER_DESCRIPTION)
    ] = None,
) -> Any:
    """The rule an event with these facts would meet first, and why; 400 when none."""
    rpc = _stub(request).ExplainRouting(
        pb.ExplainRoutingRequest(
            parent=parent(tenant),
            category=category,
            severity=severity,
            grid_cell=grid_cell,
            village=village_filter(village) or "",
        ),
        metadata=call_metadata(who),
    )
    return decision_out(await call(rpc))


def _rule_name(tenant: str, rule: str) -> str:
    return f"{parent(tenant)}/routingRules/{rule}"


@router.get("/routingRules/{routing_rule}", response_model=RoutingRuleOut, summary="Get a rule")
@calls(SERVICE, "GetRoutingRule")
async def get_rule(tenant: TenantId, routing_rule: RuleId, request: Request, who: Who) -> Any:
    rpc = _stub(request).GetRoutingRule(
        pb.GetRoutingRuleRequest(name=_rule_name(tenant, routing_rule)),
        metadata=call_metadata(who),
    )
    return rule_out(await call(rpc))


@router.delete("/routingRules/{routing_rule}", response_model=UnroutedOut, summary="Delete a rule")
@calls(SERVICE, "DeleteRoutingRule")
async def delete_rule(tenant: TenantId, routing_rule: RuleId, request: Request, who: Who) -> Any:
    """Tasks it routed keep their explanation; the answer lists categories left unrouted."""
    rpc = _stub(request).DeleteRoutingRule(
        pb.DeleteRoutingRuleRequest(name=_rule_name(tenant, routing_rule)),
        metadata=call_metadata(who),
    )
    return UnroutedOut(unrouted_categories=list((await call(rpc)).unrouted_categories))


# ---- tasks ------------------------------------------------------------------------------


def _task_name(tenant: str, task: str) -> str:
    return f"{parent(tenant)}/tasks/{task}"


@router.get("/tasks", response_model=TaskList, summary="List tasks")
@calls(SERVICE, "ListTasks")
async def list_tasks(
    tenant: TenantId,
    request: Request,
    who: Who,
    state: TaskStateName | None = None,
    handler: Annotated[
        str | None, Query(max_length=80, description="users/{id} of the handler")
    ] = None,
    grid_cell: Annotated[str | None, Query(max_length=64)] = None,
    team: Annotated[str | None, Query(max_length=63, description="routed to this team")] = None,
    village: Village = None,
    sla_status: Annotated[
        SlaStatusName | None, Query(description="on_track, at_risk (80% used) or overdue")
    ] = None,
    event: Annotated[str | None, Query(max_length=300, description="event resource name")] = None,
    emergency_plan: Annotated[
        str | None,
        Query(
            max_length=300,
            description=resource_filter_description(
                "emergencyPlans", "the tasks the plan's levels opened"
            ),
        ),
    ] = None,
    created_from: Annotated[Rfc3339Time | None, Query(description="inclusive")] = None,
    created_before: Annotated[Rfc3339Time | None, Query(description="exclusive")] = None,
    order_by: Annotated[
        str,
        query(
            pb.ListTasksRequest,
            "order_by",
            examples=["due_time"],
            description="create_time, update_time, due_time or response_due_time, then asc "
            "(the default) or desc; tasks without that deadline last (default: create_time "
            "desc)",
        ),
    ] = "",
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> Any:
    """Tasks of the tenant's subtree, newest first unless `order_by` says otherwise
    (`due_time`: the next one due first); `sla_status=overdue` or `at_risk` lists those
    running out of time, `created_from` and `created_before` those of a period."""
    terms = {
        "state": state,
        "handler": handler,
        "grid_cell": grid_cell,
        "team": team,
        "village": village_filter(village),
        "sla_status": sla_status,
        "event": event,
        "emergency_plan": resource_filter(
            emergency_plan, tenant, "emergencyPlans", "emergency_plan"
        ),
    }
    # Each term is named as its query parameter is, so a bad value names the parameter.
    parts = [f'{k} = "{quote(filter_value(v, k) or "")}"' for k, v in terms.items() if v]
    if created_from is not None:
        parts.append(f'create_time >= "{time_filter(created_from)}"')
    if created_before is not None:
        parts.append(f'create_time < "{time_filter(created_before)}"')
    text = " AND ".join(parts)
    rpc = _stub(request).ListTasks(
        pb.ListTasksRequest(
            parent=parent(tenant),
            filter=text,
            order_by=order_by,
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return TaskList(
        tasks=[task_out(t) for t in response.tasks], next_page_token=response.next_page_token
    )


@router.post("/tasks", status_code=201, response_model=TaskOut, summary="Assign an event")
@calls(SERVICE, "AssignTask")
async def assign_task(tenant: TenantId, body: AssignIn, request: Request, who: Who) -> Any:
    """Route an event now (its one task, as dispatch would make it), or hand it to a
    named handler of its village or above."""
    event = (
        body.event if body.event.startswith("tenants/") else f"{parent(tenant)}/events/{body.event}"
    )
    rpc = _stub(request).AssignTask(
        pb.AssignTaskRequest(parent=parent(tenant), event=event, handler=body.handler),
        metadata=call_metadata(who),
    )
    return task_out(await call(rpc))


@router.get("/tasks/{task}", response_model=TaskOut, summary="Get a task")
@calls(SERVICE, "GetTask")
async def get_task(tenant: TenantId, task: TaskId, request: Request, who: Who) -> Any:
    rpc = _stub(request).GetTask(
        pb.GetTaskRequest(name=_task_name(tenant, task)), metadata=call_metadata(who)
    )
    return task_out(await call(rpc))


@router.post("/tasks/{task}:accept", response_model=TaskOut, summary="Accept an offered task")
@calls(SERVICE, "AcceptTask")
async def accept_task(tenant: TenantId, task: TaskId, request: Request, who: Who) -> Any:
    """Only the handler it is offered to; accepting twice is 400 naming the state."""
    rpc = _stub(request).AcceptTask(
        pb.AcceptTaskRequest(name=_task_name(tenant, task)), metadata=call_metadata(who)
    )
    return task_out(await call(rpc))


@router.post("/tasks/{task}:decline", response_model=TaskOut, summary="Decline an offer")
@calls(SERVICE, "DeclineTask")
async def decline_task(
    tenant: TenantId, task: TaskId, body: DeclineIn, request: Request, who: Who
) -> Any:
    """The next nearest available handler is offered it, or it waits for one."""
    rpc = _stub(request).DeclineTask(
        pb.DeclineTaskRequest(name=_task_name(tenant, task), reason=body.reason),
        metadata=call_metadata(who),
    )
    return task_out(await call(rpc))


@router.post("/tasks/{task}:start", response_model=TaskOut, summary="Start work")
@calls(SERVICE, "StartTask")
async def start_task(tenant: TenantId, task: TaskId, request: Request, who: Who) -> Any:
    rpc = _stub(request).StartTask(
        pb.StartTaskRequest(name=_task_name(tenant, task)), metadata=call_metadata(who)
    )
    return task_out(await call(rpc))


@router.post("/tasks/{task}:resolve", response_model=TaskOut, summary="Resolve a task")
@calls(SERVICE, "ResolveTask")
async def resolve_task(
    tenant: TenantId, task: TaskId, body: ResolveIn, request: Request, who: Who
) -> Any:
    """Only the task's handler; the event moves to resolved for the reporter to evaluate."""
    rpc = _stub(request).ResolveTask(
        pb.ResolveTaskRequest(
            name=_task_name(tenant, task), note=body.note, media_uris=body.media_uris
        ),
        metadata=call_metadata(who),
    )
    return task_out(await call(rpc))


@router.post("/tasks/{task}:transfer", response_model=TaskOut, summary="Hand a task on")
@calls(SERVICE, "TransferTask")
async def transfer_task(
    tenant: TenantId, task: TaskId, body: TransferIn, request: Request, who: Who
) -> Any:
    """To a named handler, or back to routing's next choice; the reason is kept."""
    rpc = _stub(request).TransferTask(
        pb.TransferTaskRequest(
            name=_task_name(tenant, task), handler=body.handler, reason=body.reason
        ),
        metadata=call_metadata(who),
    )
    return task_out(await call(rpc))


@router.get("/commandBoard", response_model=BoardOut, summary="The command board")
@calls(SERVICE, "GetCommandBoard")
async def board(tenant: TenantId, request: Request, who: Who) -> Any:
    """Open tasks by state, grid cell, handler and team; at risk and overdue; workload;
    mean times to accept and resolve."""
    b = await call(
        _stub(request).GetCommandBoard(
            pb.GetCommandBoardRequest(parent=parent(tenant)), metadata=call_metadata(who)
        )
    )
    return BoardOut(
        by_state={c.key: c.count for c in b.by_state},
        by_grid_cell={c.key: c.count for c in b.by_grid_cell},
        by_handler={c.key: c.count for c in b.by_handler},
        by_team={c.key: c.count for c in b.by_team},
        at_risk=b.at_risk,
        overdue=b.overdue,
        escalated=b.escalated,
        workload=[
            WorkloadOut(
                handler=w.handler, open_tasks=w.open_tasks, capacity=w.capacity, on_duty=w.on_duty
            )
            for w in b.workload
        ],
        mean_seconds_to_accept=(
            b.mean_time_to_accept.ToTimedelta().total_seconds()
            if b.HasField("mean_time_to_accept")
            else None
        ),
        mean_seconds_to_resolve=(
            b.mean_time_to_resolve.ToTimedelta().total_seconds()
            if b.HasField("mean_time_to_resolve")
            else None
        ),
    )

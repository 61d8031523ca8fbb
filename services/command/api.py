"""gRPC adapter of the command service: messages in, domain calls, messages out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty

from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.command.v1 import command_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.command.domain import handlers, sla
from services.command.domain.model import (
    DEFAULT_CAPACITY,
    DEFAULT_OFFER_TIMEOUT,
    EscalationAction,
    EventFacts,
    HandlerProfile,
    Position,
    RoutingDecision,
    RoutingRule,
    Shift,
    SlaStatus,
    Task,
    TaskState,
)
from services.command.domain.service import CommandDesk
from services.command.domain.task_order import parse_task_order
from services.kit import paging, tenancy
from services.kit.component import ServiceComponent
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.field_masks import fields_to_update
from services.kit.filtering import parse_equalities, parse_terms
from services.kit.scopes import method_scopes
from services.kit.timestamps import parse_time, to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CommandService"].full_name

_TASK_STATE_TO_PB = {
    TaskState.OFFERED: pb.Task.STATE_ASSIGNED,
    TaskState.ACCEPTED: pb.Task.STATE_ACCEPTED,
    TaskState.IN_PROGRESS: pb.Task.STATE_IN_PROGRESS,
    TaskState.DONE: pb.Task.STATE_DONE,
    TaskState.WAITING: pb.Task.STATE_WAITING,
    TaskState.CANCELLED: pb.Task.STATE_CANCELLED,
}
_SLA_TO_PB = {
    status: pb.SlaStatus.Value("SLA_STATUS_" + status.value.upper()) for status in SlaStatus
}
_ESCALATION_FROM_PB = {
    pb.ESCALATION_ACTION_UNSPECIFIED: EscalationAction.ADD_SUPERVISOR,
    pb.ESCALATION_ACTION_ADD_SUPERVISOR: EscalationAction.ADD_SUPERVISOR,
    pb.ESCALATION_ACTION_REASSIGN: EscalationAction.REASSIGN,
}
_ESCALATION_TO_PB = {
    EscalationAction.ADD_SUPERVISOR: pb.ESCALATION_ACTION_ADD_SUPERVISOR,
    EscalationAction.REASSIGN: pb.ESCALATION_ACTION_REASSIGN,
}
# Filter values name states as the contract does ("assigned"), stored by their own word.
_STATE_FILTER = {state.published: state.value for state in TaskState}
_TASK_FILTERS = (
    "handler",
    "state",
    "event",
    "grid_cell",
    "team",
    "village",
    "sla_status",
    "emergency_plan",
)
# `create_time` bounds, by operator, under the names the stores read them by.
_TASK_TIME_BOUNDS = {
    ">=": "created_from",
    ">": "created_after",
    "<=": "created_to",
    "<": "created_before",
}
_SLA_FILTER = ("on_track", "at_risk", "overdue", "stopped")
_HANDLER_FILTERS = ("role", "team", "on_duty")
_PROFILE_UPDATABLE = (
    "display_name",
    "roles",
    "skills",
    "teams",
    "capacity",
    "on_duty",
    "shifts",
    "supervisor",
)


def _duration(span: timedelta | None) -> Duration | None:
    if span is None:
        return None
    message = Duration()
    message.FromTimedelta(span)
    return message


def _span(message: Duration, field: str) -> timedelta | None:
    if message.seconds == 0 and message.nanos == 0:
        return None
    if abs(message.seconds) > 10**9:
        raise InvalidArgument.field(field, "is too long")
    return message.ToTimedelta()


def _geo(position: Position | None) -> geo_pb2.GeoPoint | None:
    if position is None:
        return None
    return geo_pb2.GeoPoint(
        longitude=position.longitude, latitude=position.latitude, crs="EPSG:4326"
    )


def handler_name(tenant: str, handler_id: str) -> str:
    return f"{tenancy.tenant_name(tenant)}/handlers/{handler_id}"


def profile_to_proto(profile: HandlerProfile) -> pb.HandlerProfile:
    return pb.HandlerProfile(
        name=handler_name(profile.tenant, profile.id),
        user=profile.user,
        display_name=profile.display_name,
        roles=list(profile.roles),
        skills=list(profile.skills),
        teams=list(profile.teams),
        capacity=profile.capacity,
        on_duty=profile.on_duty,
        shifts=[
            pb.HandlerProfile.Shift(weekdays=list(s.weekdays), start=s.start, end=s.end)
            for s in profile.shifts
        ],
        position=_geo(profile.position),
        position_time=to_timestamp(profile.position_time),
        open_tasks=profile.open_tasks,
        last_assigned_time=to_timestamp(profile.last_assigned),
        supervisor=profile.supervisor,
        create_time=to_timestamp(profile.create_time),
    )


def rule_to_proto(rule: RoutingRule, unrouted: Sequence[str] = ()) -> pb.RoutingRule:
    return pb.RoutingRule(
        name=f"{tenancy.tenant_name(rule.tenant)}/routingRules/{rule.id}",
        category=rule.category,
        handler_role=rule.handler_role,
        sla=_duration(rule.resolution_sla),
        priority=rule.priority,
        min_severity=rule.min_severity,
        grid_cells=list(rule.grid_cells),
        village=rule.village,
        active_from=rule.active_from,
        active_until=rule.active_until,
        team=rule.team,
        department=rule.department,
        response_sla=_duration(rule.response_sla),
        escalation_action=_ESCALATION_TO_PB[rule.escalation_action],  # type: ignore[arg-type]
        offer_timeout=_duration(rule.offer_timeout),
        display_name=rule.display_name,
        create_time=to_timestamp(rule.create_time),
        unrouted_categories=list(unrouted),
    )


def decision_to_proto(decision: RoutingDecision) -> pb.RoutingDecision:
    return pb.RoutingDecision(
        routing_rule=decision.rule,
        explanation=decision.explanation,
        handler_role=decision.handler_role,
        team=decision.team,
    )


def task_to_proto(task: Task, now: datetime | None = None) -> pb.Task:
    return pb.Task(
        name=task.name,
        event=task.event,
        handler=task.handler,
        state=_TASK_STATE_TO_PB[task.state],  # type: ignore[arg-type]
        due_time=to_timestamp(task.resolution_due),
        create_time=to_timestamp(task.create_time),
        category=task.category,
        severity=task.severity,
        grid_cell=task.grid_cell,
        village=task.village,
        location=_geo(task.location),
        routing=decision_to_proto(task.routing),
        team=task.routing.team,
        offer_expire_time=to_timestamp(task.offer_expire),
        response_due_time=to_timestamp(task.response_due),
        accept_time=to_timestamp(task.accept_time),
        start_time=to_timestamp(task.start_time),
        resolve_time=to_timestamp(task.resolve_time),
        resolution_note=task.resolution_note,
        media_uris=list(task.media),
        escalation_level=task.escalation_level,
        escalated_to=task.escalated_to,
        supervisor=task.supervisor,
        passed_by=list(task.passed_by),
        transfers=[
            pb.Transfer(
                from_handler=t.from_handler,
                to_handler=t.to_handler,
                reason=t.reason,
                time=to_timestamp(t.time),
                actor=t.actor,
            )
            for t in task.transfers
        ],
        sla_status=_SLA_TO_PB[sla.status(task, now or datetime.now(UTC))],  # type: ignore[arg-type]
        distance_meters=task.distance_m,
        update_time=to_timestamp(task.update_time),
        etag=f'W/"{task.version}"',
        handler_role=task.routing.handler_role,
        emergency_plan=task.emergency_plan,
        emergency_item=task.emergency_item,
        description=task.description,
    )


def serialize_task(task: Task) -> bytes:
    """A task as its facts carry it on the bus."""
    return task_to_proto(task).SerializeToString()


def _shifts(message: pb.HandlerProfile) -> tuple[Shift, ...]:
    return tuple(Shift(tuple(s.weekdays), s.start, s.end) for s in message.shifts)


def rule_from(tenant: str, given: pb.RoutingRule) -> RoutingRule:
    """A routing rule as the domain holds it (validated by the desk; the scenario composer
    checks a manifest's rules with it before any step)."""
    return RoutingRule(
        tenant=tenant,
        id="",
        category=given.category,
        handler_role=given.handler_role,
        team=given.team,
        department=given.department,
        priority=given.priority,
        min_severity=given.min_severity,
        grid_cells=tuple(given.grid_cells),
        village=given.village,
        active_from=given.active_from,
        active_until=given.active_until,
        response_sla=_span(given.response_sla, "routing_rule.response_sla"),
        resolution_sla=_span(given.sla, "routing_rule.sla"),
        offer_timeout=_span(given.offer_timeout, "routing_rule.offer_timeout")
        or DEFAULT_OFFER_TIMEOUT,
        escalation_action=_ESCALATION_FROM_PB.get(
            given.escalation_action, EscalationAction.ADD_SUPERVISOR
        ),
        display_name=given.display_name,
    )


def _task_filters(expression: str) -> dict[str, object]:
    allowed: dict[str, tuple[str, ...]] = {name: ("=",) for name in _TASK_FILTERS}
    allowed["create_time"] = tuple(_TASK_TIME_BOUNDS)
    filters: dict[str, object] = {}
    for term in parse_terms(expression, allowed):
        name, value = term.field, term.value
        key = _TASK_TIME_BOUNDS[term.op] if name == "create_time" else name
        if key in filters:
            shown = f"{name} {term.op}" if name == "create_time" else name
            raise InvalidArgument.field("filter", f"{shown!r} appears twice")
        if name == "create_time":
            filters[key] = parse_time(value, "filter", what="create_time")
        elif name == "state":
            if value not in _STATE_FILTER:
                raise InvalidArgument.field(
                    "filter", f"state is one of {', '.join(sorted(_STATE_FILTER))}"
                )
            filters["state"] = _STATE_FILTER[value]
        elif name == "sla_status":
            if value not in _SLA_FILTER:
                raise InvalidArgument.field(
                    "filter", f"sla_status is one of {', '.join(_SLA_FILTER)}"
                )
            filters["sla_status"] = value
        elif name == "village":
            filters["village"] = tenancy.path_of(value, "filter")
        elif name == "emergency_plan":
            if "/emergencyPlans/" not in value:
                raise InvalidArgument.field(
                    "filter", "emergency_plan is a name: tenants/{tenant}/emergencyPlans/{id}"
                )
            filters[name] = value
        else:
            filters[name] = value
    return filters


class CommandServicer(pb_grpc.CommandServiceServicer):
    def __init__(self, desk: CommandDesk) -> None:
        self.desk = desk

    def _out(self, task: Task) -> pb.Task:
        """The task with its SLA status as of the desk's clock (the one its timers follow)."""
        return task_to_proto(task, self.desk.clock())

    # ---- routing rules ------------------------------------------------------------------

    async def CreateRoutingRule(
        self, request: pb.CreateRoutingRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RoutingRule:
        tenant = tenancy.parse_parent(request.parent)
        given = replace(rule_from(tenant, request.routing_rule), id=request.routing_rule_id)
        rule, unrouted = await self.desk.create_rule(require_principal(), given, request.request_id)
        made = rule_to_proto(rule, unrouted)
        made.warnings.extend(await self.desk.rule_warnings(rule))
        return made

    async def ListRoutingRules(
        self, request: pb.ListRoutingRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRoutingRulesResponse:
        tenant = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        query = {"parent": tenant}
        offset = paging.decode_offset(request.page_token, query)
        rules = await self.desk.rules_at(require_principal(), tenant)
        page = rules[offset : offset + size]
        more = offset + size if offset + size < len(rules) else None
        return pb.ListRoutingRulesResponse(
            routing_rules=[rule_to_proto(r) for r in page],
            next_page_token=paging.encode_offset(more, query),
        )

    async def GetRoutingRule(
        self, request: pb.GetRoutingRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RoutingRule:
        tenant, rule_id = _child(request.name, "routingRules")
        return rule_to_proto(await self.desk.get_rule(require_principal(), tenant, rule_id))

    async def DeleteRoutingRule(
        self, request: pb.DeleteRoutingRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteRoutingRuleResponse:
        tenant, rule_id = _child(request.name, "routingRules")
        unrouted = await self.desk.delete_rule(require_principal(), tenant, rule_id)
        return pb.DeleteRoutingRuleResponse(unrouted_categories=unrouted)

    async def ExplainRouting(
        self, request: pb.ExplainRoutingRequest, context: grpc.aio.ServicerContext
    ) -> pb.RoutingDecision:
        tenant = tenancy.parse_parent(request.parent)
        village = tenancy.path_of(request.village, "village") if request.village else tenant
        if not 0 <= request.severity <= 5:
            raise InvalidArgument.field("severity", "must lie between 1 and 5")
        moment = (
            request.time.ToDatetime(tzinfo=UTC) if request.HasField("time") else datetime.now(UTC)
        )
        facts = EventFacts(
            event="",
            tenant=village,
            category=request.category,
            severity=request.severity or 2,
            grid_cell=request.grid_cell,
            location=Position(0.0, 0.0),
            time=moment,
        )
        return decision_to_proto(await self.desk.explain(require_principal(), facts))

    # ---- handler profiles ---------------------------------------------------------------

    async def CreateHandlerProfile(
        self, request: pb.CreateHandlerProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.HandlerProfile:
        tenant = tenancy.parse_parent(request.parent)
        given = request.handler_profile
        handler_id = request.handler_id or given.user.removeprefix("users/")
        position = None
        if given.HasField("position"):
            position = handlers.storage_position(
                given.position.longitude,
                given.position.latitude,
                given.position.crs,
                "handler_profile.position",
            )
        profile = HandlerProfile(
            tenant=tenant,
            id=handler_id,
            user=given.user,
            display_name=given.display_name,
            roles=tuple(given.roles),
            skills=tuple(given.skills),
            teams=tuple(given.teams),
            capacity=given.capacity or DEFAULT_CAPACITY,
            on_duty=given.on_duty,
            shifts=_shifts(given),
            position=position,
            supervisor=given.supervisor,
        )
        handlers.validate(profile)
        created = await self.desk.create_handler(require_principal(), profile)
        return profile_to_proto(created)

    async def GetHandlerProfile(
        self, request: pb.GetHandlerProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.HandlerProfile:
        tenant, handler_id = _child(request.name, "handlers")
        return profile_to_proto(
            await self.desk.get_handler(require_principal(), tenant, handler_id)
        )

    async def ListHandlerProfiles(
        self, request: pb.ListHandlerProfilesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListHandlerProfilesResponse:
        tenant = tenancy.parse_parent(request.parent)
        filters = parse_equalities(request.filter, _HANDLER_FILTERS)
        if filters.get("on_duty", "true") not in ("true", "false"):
            raise InvalidArgument.field("filter", "on_duty is true or false")
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        query = {"parent": tenant, "filter": request.filter}
        offset = paging.decode_offset(request.page_token, query)
        found = await self.desk.list_handlers(
            require_principal(), tenant, filters, size + 1, offset
        )
        more = offset + size if len(found) > size else None
        return pb.ListHandlerProfilesResponse(
            handler_profiles=[profile_to_proto(p) for p in found[:size]],
            next_page_token=paging.encode_offset(more, query),
        )

    async def UpdateHandlerProfile(
        self, request: pb.UpdateHandlerProfileRequest, context: grpc.aio.ServicerContext
    ) -> pb.HandlerProfile:
        given = request.handler_profile
        tenant, handler_id = _child(given.name, "handlers", "handler_profile.name")
        paths = fields_to_update(request.update_mask, given, _PROFILE_UPDATABLE, "handler_profile.")
        principal = require_principal()
        current = await self.desk.get_handler(principal, tenant, handler_id)
        values: dict[str, object] = {
            "display_name": given.display_name,
            "roles": tuple(given.roles),
            "skills": tuple(given.skills),
            "teams": tuple(given.teams),
            "capacity": given.capacity or DEFAULT_CAPACITY,
            "on_duty": given.on_duty,
            "shifts": _shifts(given),
            "supervisor": given.supervisor,
        }
        changes = {path: values[path] for path in paths}
        handlers.validate(_replace(current, changes))
        updated = await self.desk.update_handler(principal, tenant, handler_id, changes)
        return profile_to_proto(updated)

    async def DeleteHandlerProfile(
        self, request: pb.DeleteHandlerProfileRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        tenant, handler_id = _child(request.name, "handlers")
        await self.desk.delete_handler(require_principal(), tenant, handler_id)
        return Empty()

    async def ReportHandlerPosition(
        self, request: pb.ReportHandlerPositionRequest, context: grpc.aio.ServicerContext
    ) -> pb.HandlerProfile:
        tenant, handler_id = _child(request.name, "handlers")
        if not request.HasField("position"):
            raise InvalidArgument.field("position", "is required")
        position = handlers.storage_position(
            request.position.longitude, request.position.latitude, request.position.crs, "position"
        )
        updated = await self.desk.report_position(require_principal(), tenant, handler_id, position)
        return profile_to_proto(updated)

    # ---- tasks --------------------------------------------------------------------------

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant, task_id = _child(request.name, "tasks")
        return self._out(await self.desk.get_task(require_principal(), tenant, task_id))

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        tenant = tenancy.parse_parent(request.parent)
        filters = _task_filters(request.filter)
        order = parse_task_order(request.order_by)
        size = paging.page_size(request.page_size, default=50, maximum=1000)
        query = {"parent": tenant, "filter": request.filter, "order_by": order.text}
        offset = paging.decode_offset(request.page_token, query)
        found = await self.desk.list_tasks(
            require_principal(), tenant, filters, size + 1, offset, order
        )
        more = offset + size if len(found) > size else None
        now = self.desk.clock()
        return pb.ListTasksResponse(
            tasks=[task_to_proto(t, now) for t in found[:size]],
            next_page_token=paging.encode_offset(more, query),
        )

    async def AssignTask(
        self, request: pb.AssignTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant = tenancy.parse_parent(request.parent)
        if not request.event:
            raise InvalidArgument.field("event", "is required")
        tenancy.parse_child_name(request.event, "events", "event")
        task = await self.desk.assign(require_principal(), tenant, request.event, request.handler)
        return self._out(task)

    async def AcceptTask(
        self, request: pb.AcceptTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant, task_id = _child(request.name, "tasks")
        return self._out(await self.desk.accept(require_principal(), tenant, task_id))

    async def DeclineTask(
        self, request: pb.DeclineTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant, task_id = _child(request.name, "tasks")
        return self._out(
            await self.desk.decline(require_principal(), tenant, task_id, request.reason)
        )

    async def StartTask(
        self, request: pb.StartTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant, task_id = _child(request.name, "tasks")
        return self._out(await self.desk.start(require_principal(), tenant, task_id))

    async def ResolveTask(
        self, request: pb.ResolveTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant, task_id = _child(request.name, "tasks")
        task = await self.desk.resolve(
            require_principal(), tenant, task_id, request.note, list(request.media_uris)
        )
        return self._out(task)

    async def TransferTask(
        self, request: pb.TransferTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        tenant, task_id = _child(request.name, "tasks")
        task = await self.desk.transfer(
            require_principal(), tenant, task_id, request.handler, request.reason
        )
        return self._out(task)

    async def GetCommandBoard(
        self, request: pb.GetCommandBoardRequest, context: grpc.aio.ServicerContext
    ) -> pb.CommandBoard:
        tenant = tenancy.parse_parent(request.parent)
        counts, workload = await self.desk.board(require_principal(), tenant)

        def rows(counted: dict[str, int] | Any) -> list[pb.CommandBoard.Count]:
            return [pb.CommandBoard.Count(key=k, count=v) for k, v in sorted(counted.items())]

        return pb.CommandBoard(
            by_state=rows(counts.by_state),
            by_grid_cell=rows(counts.by_grid_cell),
            by_handler=rows(counts.by_handler),
            by_team=rows(counts.by_team),
            at_risk=counts.at_risk,
            overdue=counts.overdue,
            escalated=counts.escalated,
            workload=[
                pb.CommandBoard.Workload(
                    handler=p.user, open_tasks=p.open_tasks, capacity=p.capacity, on_duty=p.on_duty
                )
                for p in workload
            ],
            mean_time_to_accept=_duration(_seconds(counts.mean_accept_seconds)),
            mean_time_to_resolve=_duration(_seconds(counts.mean_resolve_seconds)),
        )


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value is not None else None


def _replace(profile: HandlerProfile, changes: dict[str, object]) -> HandlerProfile:
    return replace(profile, **changes)  # type: ignore[arg-type]


def _child(name: str, collection: str, field: str = "name") -> tuple[str, str]:
    """`tenants/{tenant}/{collection}/{id}` with a real tenant (no wildcard)."""
    tenant, child = tenancy.parse_child_name(name, collection, field)
    if tenant is None:
        raise InvalidArgument.field(field, "names a tenant, not '-'")
    if len(child) > 64:
        raise InvalidArgument.field(field, "the id is at most 64 characters")
    return tenant, child


def build_component(
    desk: CommandDesk,
    closers: Sequence[Callable[[], Any]] = (),
    extra_servicers: Sequence[tuple[Any, Callable[[Any, grpc.aio.Server], None], str]] = (),
) -> ServiceComponent:
    """The command service; `extra_servicers` are (servicer, add function, service name)
    of further services on the same port."""
    scopes = dict(method_scopes(SERVICE_NAME))
    for _servicer, _add, name in extra_servicers:
        scopes.update(method_scopes(name))
    return ServiceComponent(
        [
            (CommandServicer(desk), pb_grpc.add_CommandServiceServicer_to_server),
            *((servicer, add) for servicer, add, _name in extra_servicers),
        ],
        [SERVICE_NAME, *(name for _s, _a, name in extra_servicers)],
        closers,
        method_scopes=scopes,
    )

"""gRPC adapter of the plans service: messages in, domain calls, messages out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
import numpy as np
from google.protobuf import empty_pb2

from grassroots.command.v1 import plans_service_pb2 as pb
from grassroots.command.v1 import plans_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.command.domain import emergency, plan_tasks, service_orders
from services.command.domain.command_log import LogEntry
from services.command.domain.emergency import (
    Dispatch,
    EmergencyPlan,
    ItemKind,
    ItemState,
    Level,
    LevelChange,
    Notice,
    PlanDefinition,
)
from services.command.domain.model import Position
from services.command.domain.plan_facts import plan_level
from services.command.domain.plans_desk import (
    PlansDesk,
    Signal,
    check_mask,
    order_name,
    plan_name,
    service_plan_name,
)
from services.command.domain.service_orders import (
    OrderState,
    Place,
    ServiceOrder,
    ServicePlan,
    ServicePlanDefinition,
    Target,
)
from services.command.store.plans_rows import us
from services.kit import crs, paging, tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PlansService"].full_name

_KIND_TO_PB = {
    ItemKind.DISPATCH: pb.EmergencyItem.KIND_DISPATCH,
    ItemKind.CHECKLIST: pb.EmergencyItem.KIND_CHECKLIST,
    ItemKind.NOTICE: pb.EmergencyItem.KIND_NOTICE,
}
_ITEM_STATE_TO_PB = {
    ItemState.OPEN: pb.EmergencyItem.STATE_OPEN,
    ItemState.CLOSED: pb.EmergencyItem.STATE_CLOSED,
}
_ORDER_STATE_TO_PB = {
    OrderState.ASSIGNED: pb.ServiceOrder.STATE_ASSIGNED,
    OrderState.CHECKED_IN: pb.ServiceOrder.STATE_CHECKED_IN,
    OrderState.DONE: pb.ServiceOrder.STATE_DONE,
    OrderState.UNASSIGNED: pb.ServiceOrder.STATE_UNASSIGNED,
    OrderState.CANCELLED: pb.ServiceOrder.STATE_CANCELLED,
}


def _point(place: Place | None) -> geo_pb2.GeoPoint | None:
    if place is None:
        return None
    return geo_pb2.GeoPoint(longitude=place.longitude, latitude=place.latitude, crs="EPSG:4326")


def place_of(point: geo_pb2.GeoPoint, field: str) -> Place:
    """A position in WGS84, whatever CRS it came in (phones send GCJ-02)."""
    name = crs.normalise_crs(point.crs, field + ".crs")
    xs, ys = np.array([point.longitude]), np.array([point.latitude])
    crs.check_ranges(xs, ys, field + ".longitude", field + ".latitude", name)
    lon, lat = crs.to_storage(xs, ys, name)
    if not (np.isfinite(lon[0]) and np.isfinite(lat[0])):
        raise InvalidArgument.field(field, "cannot be converted to WGS84")
    return Place(float(lon[0]), float(lat[0]))


def _position(plan: pb.EmergencyPlan, field: str) -> Position | None:
    if not plan.HasField("location"):
        return None
    place = place_of(plan.location, field)
    return Position(place.longitude, place.latitude)


def _level_in(message: pb.EmergencyLevel) -> Level:
    return Level(
        level=message.level,
        summary=message.summary,
        dispatches=tuple(Dispatch(d.role, d.team, d.count) for d in message.dispatches),
        checklist=tuple(message.checklist),
        notices=tuple(Notice(n.audience, n.text) for n in message.notices),
        checklist_role=message.checklist_role,
    )


def _level_out(level: Level) -> pb.EmergencyLevel:
    return pb.EmergencyLevel(
        level=level.level,
        summary=level.summary,
        dispatches=[pb.Dispatch(role=d.role, team=d.team, count=d.count) for d in level.dispatches],
        checklist=list(level.checklist),
        notices=[pb.Notice(audience=n.audience, text=n.text) for n in level.notices],
        checklist_role=level.checklist_role,
    )


def plan_to_proto(plan: EmergencyPlan) -> pb.EmergencyPlan:
    where = plan.definition.location
    return pb.EmergencyPlan(
        name=plan_name(plan),
        display_name=plan.definition.display_name,
        signal=plan.definition.signal,
        levels=[_level_out(level) for level in plan.definition.levels],
        current_level=plan.current_level,
        level_reason=plan.level_reason,
        level_actor=plan.level_actor,
        level_change_time=to_timestamp(plan.level_change_time),
        items=[
            pb.EmergencyItem(
                id=item.id,
                level=item.level,
                kind=_KIND_TO_PB[item.kind],
                description=item.description,
                state=_ITEM_STATE_TO_PB[item.state],
                open_time=to_timestamp(item.open_time),
                close_time=to_timestamp(item.close_time),
                tasks=plan_tasks.task_names(plan, item),
            )
            for item in plan.items
        ],
        etag=plan.etag,
        create_time=to_timestamp(plan.create_time),
        location=_point(Place(where.longitude, where.latitude) if where else None),
    )


def change_to_bytes(change: LevelChange, name: str) -> bytes:
    """The body of an `emergency.level_changed` fact."""
    plan = change.plan
    return pb.EmergencyLevelChange(
        plan=name,
        display_name=plan.definition.display_name,
        from_level=change.from_level,
        to_level=change.to_level,
        actor=plan.level_actor,
        reason=plan.level_reason,
        notices=[pb.Notice(audience=n.audience, text=n.text) for n in change.notices],
        change_time=to_timestamp(plan.level_change_time),
    ).SerializeToString()


def signal_from_bytes(payload: bytes) -> Signal:
    """The JSON body of twin's `twin.level_changed` fact (services/twin/events_client.py);
    a body without a rule or a level is refused, so the consumer parks it."""
    body = json.loads(payload)
    rule, tenant, level = body.get("rule"), body.get("tenant"), body.get("level")
    if not isinstance(rule, str) or not isinstance(tenant, str) or not isinstance(level, int):
        raise ValueError("twin.level_changed needs rule, tenant and an integer level")
    observed = datetime.now(UTC)
    if isinstance(body.get("observe_time"), str):
        observed = datetime.fromisoformat(body["observe_time"])
        if observed.tzinfo is None:
            observed = observed.replace(tzinfo=UTC)
    what = body.get("entity") or rule
    value = body.get("value")
    reason = f"{what} at twin level {level}" + (
        f" (value {value:g})" if isinstance(value, (int, float)) else ""
    )
    return Signal(rule, tenant, plan_level(level), reason, observed)


def _log_to_proto(entry: LogEntry) -> pb.CommandLogEntry:
    return pb.CommandLogEntry(
        name=f"{tenancy.tenant_name(entry.tenant)}/commandLogEntries/{entry.seq}",
        time=to_timestamp(entry.time),
        actor=entry.actor,
        action=entry.action,
        resource=entry.resource,
        reason=entry.reason,
        detail=entry.detail,
    )


def _target_out(target: Target) -> pb.ServiceTarget:
    return pb.ServiceTarget(
        id=target.id, display_name=target.display_name, location=_point(target.place)
    )


def service_plan_to_proto(plan: ServicePlan) -> pb.ServicePlan:
    d = plan.definition
    return pb.ServicePlan(
        name=service_plan_name(plan),
        display_name=d.display_name,
        recurrence=d.recurrence,
        start_time=to_timestamp(d.start_time),
        visit_minutes=d.visit_minutes,
        handler_role=d.handler_role,
        carers=list(d.carers),
        max_check_in_distance_meters=d.max_distance_m,
        targets=[_target_out(t) for t in d.targets],
        next_occurrence_time=to_timestamp(plan.next_occurrence),
        create_time=to_timestamp(plan.create_time),
        escalation_role=d.escalation_role,
        etag=plan.etag,
    )


def order_to_proto(order: ServiceOrder) -> pb.ServiceOrder:
    return pb.ServiceOrder(
        name=order_name(order),
        service_plan=f"{tenancy.tenant_name(order.tenant)}/servicePlans/{order.plan_id}",
        target=order.target.id,
        target_display_name=order.target.display_name,
        target_location=_point(order.target.place),
        scheduled_time=to_timestamp(order.scheduled_time),
        due_time=to_timestamp(order.due_time),
        handler=order.handler,
        state=_ORDER_STATE_TO_PB[order.state],
        check_in_time=to_timestamp(order.check_in_time),
        check_in_location=_point(order.check_in_place),
        check_out_time=to_timestamp(order.check_out_time),
        check_out_location=_point(order.check_out_place),
        note=order.note,
        etag=order.etag,
        escalated_from=order.escalated_from,
        escalate_time=to_timestamp(order.escalate_time),
    )


def _start_time(message: pb.ServicePlan) -> datetime:
    if not message.HasField("start_time"):
        raise InvalidArgument.field("service_plan.start_time", "is required (DTSTART)")
    try:
        return message.start_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument.field("service_plan.start_time", "is out of range") from None


def _targets(message: pb.ServicePlan) -> tuple[Target, ...]:
    targets = []
    for i, target in enumerate(message.targets):
        field = f"service_plan.targets[{i}].location"
        if not target.HasField("location"):
            raise InvalidArgument.field(field, "is required")
        targets.append(Target(target.id, target.display_name, place_of(target.location, field)))
    return tuple(targets)


def emergency_definition(message: pb.EmergencyPlan) -> PlanDefinition:
    """An emergency plan's definition as the domain holds it (validated by the desk; the
    scenario composer checks a manifest's plans with it before any step)."""
    return PlanDefinition(
        display_name=message.display_name,
        levels=tuple(_level_in(level) for level in message.levels),
        signal=message.signal,
        location=_position(message, "emergency_plan.location"),
    )


def service_definition(message: pb.ServicePlan) -> ServicePlanDefinition:
    """A service plan's definition as the domain holds it (as `emergency_definition`)."""
    start = _start_time(message)
    return ServicePlanDefinition(
        display_name=message.display_name,
        recurrence=message.recurrence,
        start_time=start,
        visit_minutes=message.visit_minutes,
        handler_role=message.handler_role,
        carers=tuple(message.carers),
        max_distance_m=message.max_check_in_distance_meters,
        targets=_targets(message),
        escalation_role=message.escalation_role,
    )


def _plan_changes(message: pb.EmergencyPlan, paths: list[str]) -> dict[str, object]:
    """The masked fields of an emergency plan, as the domain's definition holds them."""
    readers = {
        "display_name": lambda: message.display_name,
        "signal": lambda: message.signal,
        "levels": lambda: tuple(_level_in(level) for level in message.levels),
        "location": lambda: _position(message, "emergency_plan.location"),
    }
    return {path: readers[path]() for path in paths}


def _service_plan_changes(message: pb.ServicePlan, paths: list[str]) -> dict[str, object]:
    """The masked fields of a service plan, as the domain's definition holds them."""
    readers = {
        "display_name": lambda: message.display_name,
        "recurrence": lambda: message.recurrence,
        "start_time": lambda: _start_time(message),
        "visit_minutes": lambda: message.visit_minutes,
        "handler_role": lambda: message.handler_role,
        "carers": lambda: tuple(message.carers),
        "max_check_in_distance_meters": lambda: message.max_check_in_distance_meters,
        "targets": lambda: _targets(message),
        "escalation_role": lambda: message.escalation_role,
    }
    attribute = {"max_check_in_distance_meters": "max_distance_m"}
    return {attribute.get(path, path): readers[path]() for path in paths}


def _after_id(token: str, query: object) -> str:
    cursor = paging.decode_token(token, query)
    if cursor is None:
        return ""
    value = cursor.get("after")
    if not isinstance(value, str):
        raise InvalidArgument.field("page_token", "is not a token this list issued")
    return value


def _next_token(ids: list[str], size: int, query: object) -> str:
    return paging.encode_token({"after": ids[-1]}, query) if len(ids) == size else ""


class PlansServicer(pb_grpc.PlansServiceServicer):
    def __init__(self, desk: PlansDesk) -> None:
        self.desk = desk

    async def CreateEmergencyPlan(
        self, request: pb.CreateEmergencyPlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmergencyPlan:
        parent = tenancy.parse_parent(request.parent)
        definition = emergency_definition(request.emergency_plan)
        plan = await self.desk.create_emergency_plan(
            require_principal(), parent, definition, request.request_id
        )
        return plan_to_proto(plan)

    async def GetEmergencyPlan(
        self, request: pb.GetEmergencyPlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmergencyPlan:
        tenant, plan_id = tenancy.parse_child_name(request.name, "emergencyPlans")
        return plan_to_proto(
            await self.desk.get_emergency_plan(require_principal(), tenant, plan_id)
        )

    async def ListEmergencyPlans(
        self, request: pb.ListEmergencyPlansRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEmergencyPlansResponse:
        parent = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=50, maximum=500)
        query = {"emergencyPlans": parent}
        plans = await self.desk.list_emergency_plans(
            require_principal(), parent, size, _after_id(request.page_token, query)
        )
        return pb.ListEmergencyPlansResponse(
            emergency_plans=[plan_to_proto(p) for p in plans],
            next_page_token=_next_token([p.id for p in plans], size, query),
        )

    async def ChangeEmergencyLevel(
        self, request: pb.ChangeEmergencyLevelRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmergencyPlan:
        tenant, plan_id = tenancy.parse_child_name(request.name, "emergencyPlans")
        level = request.level if request.HasField("level") else None
        plan = await self.desk.change_level(
            require_principal(), tenant, plan_id, level, request.reason, request.etag
        )
        return plan_to_proto(plan)

    async def UpdateEmergencyPlan(
        self, request: pb.UpdateEmergencyPlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmergencyPlan:
        given = request.emergency_plan
        tenant, plan_id = tenancy.parse_child_name(
            given.name, "emergencyPlans", "emergency_plan.name"
        )
        paths = check_mask(list(request.update_mask.paths), emergency.UPDATABLE)
        plan = await self.desk.update_emergency_plan(
            require_principal(),
            tenant,
            plan_id,
            _plan_changes(given, paths),
            given.etag,
            request.reason,
        )
        return plan_to_proto(plan)

    async def DeleteEmergencyPlan(
        self, request: pb.DeleteEmergencyPlanRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        tenant, plan_id = tenancy.parse_child_name(request.name, "emergencyPlans")
        await self.desk.delete_emergency_plan(
            require_principal(), tenant, plan_id, request.etag, request.reason
        )
        return empty_pb2.Empty()

    async def ListCommandLogEntries(
        self, request: pb.ListCommandLogEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCommandLogEntriesResponse:
        parent = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=50, maximum=1000)
        query = {"commandLogEntries": parent, "resource": request.resource}
        cursor = paging.decode_token(request.page_token, query) or {}
        before = cursor.get("before", 0)
        if not isinstance(before, int) or before < 0:
            raise InvalidArgument.field("page_token", "is not a token this list issued")
        entries = await self.desk.list_log(
            require_principal(), parent, request.resource, size, before
        )
        token = ""
        if len(entries) == size:
            token = paging.encode_token({"before": entries[-1].seq}, query)
        return pb.ListCommandLogEntriesResponse(
            command_log_entries=[_log_to_proto(e) for e in entries], next_page_token=token
        )

    async def CreateServicePlan(
        self, request: pb.CreateServicePlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServicePlan:
        parent = tenancy.parse_parent(request.parent)
        definition = service_definition(request.service_plan)
        plan = await self.desk.create_service_plan(
            require_principal(), parent, definition, request.request_id
        )
        return service_plan_to_proto(plan)

    async def GetServicePlan(
        self, request: pb.GetServicePlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServicePlan:
        tenant, plan_id = tenancy.parse_child_name(request.name, "servicePlans")
        plan = await self.desk.get_service_plan(require_principal(), tenant, plan_id)
        return service_plan_to_proto(plan)

    async def ListServicePlans(
        self, request: pb.ListServicePlansRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListServicePlansResponse:
        parent = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=50, maximum=500)
        query = {"servicePlans": parent}
        plans = await self.desk.list_service_plans(
            require_principal(), parent, size, _after_id(request.page_token, query)
        )
        return pb.ListServicePlansResponse(
            service_plans=[service_plan_to_proto(p) for p in plans],
            next_page_token=_next_token([p.id for p in plans], size, query),
        )

    async def UpdateServicePlan(
        self, request: pb.UpdateServicePlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServicePlan:
        given = request.service_plan
        tenant, plan_id = tenancy.parse_child_name(given.name, "servicePlans", "service_plan.name")
        paths = check_mask(list(request.update_mask.paths), service_orders.UPDATABLE)
        plan = await self.desk.update_service_plan(
            require_principal(),
            tenant,
            plan_id,
            _service_plan_changes(given, paths),
            given.etag,
            request.reason,
        )
        return service_plan_to_proto(plan)

    async def DeleteServicePlan(
        self, request: pb.DeleteServicePlanRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        tenant, plan_id = tenancy.parse_child_name(request.name, "servicePlans")
        await self.desk.delete_service_plan(
            require_principal(), tenant, plan_id, request.etag, request.reason
        )
        return empty_pb2.Empty()

    async def GetServiceOrder(
        self, request: pb.GetServiceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceOrder:
        tenant, order_id = tenancy.parse_child_name(request.name, "serviceOrders")
        return order_to_proto(await self.desk.get_order(require_principal(), tenant, order_id))

    async def ListServiceOrders(
        self, request: pb.ListServiceOrdersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListServiceOrdersResponse:
        parent = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=50, maximum=1000)
        plan_id = ""
        if request.service_plan:
            _, plan_id = tenancy.parse_child_name(
                request.service_plan, "servicePlans", "service_plan"
            )
        if len(request.handler) > 200:
            raise InvalidArgument.field("handler", "at most 200 characters")
        query = {"serviceOrders": parent, "handler": request.handler, "plan": plan_id}
        cursor = paging.decode_token(request.page_token, query)
        after = None
        if cursor is not None:
            at, last = cursor.get("at"), cursor.get("id")
            if not isinstance(at, int) or not isinstance(last, str):
                raise InvalidArgument.field("page_token", "is not a token this list issued")
            after = (at, last)
        orders = await self.desk.list_orders(
            require_principal(), parent, request.handler, plan_id, size, after
        )
        token = ""
        if len(orders) == size:
            last_order = orders[-1]
            token = paging.encode_token(
                {"at": us(last_order.scheduled_time), "id": last_order.id}, query
            )
        return pb.ListServiceOrdersResponse(
            service_orders=[order_to_proto(o) for o in orders], next_page_token=token
        )

    async def CheckInServiceOrder(
        self, request: pb.CheckInServiceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceOrder:
        return await self._visit(request.name, request, None)

    async def CheckOutServiceOrder(
        self, request: pb.CheckOutServiceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServiceOrder:
        return await self._visit(request.name, request, request.note)

    async def _visit(
        self,
        name: str,
        request: pb.CheckInServiceOrderRequest | pb.CheckOutServiceOrderRequest,
        note: str | None,
    ) -> pb.ServiceOrder:
        tenant, order_id = tenancy.parse_child_name(name, "serviceOrders")
        if not request.HasField("location"):
            raise InvalidArgument.field("location", "is required: where the carer is")
        place = place_of(request.location, "location")
        order = await self.desk.visit(require_principal(), tenant, order_id, place, note)
        return order_to_proto(order)

"""REST for command's plans: emergency plans and their levels, the command log,
service plans and the orders they make (check-in and check-out by position)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, Security
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.patch_bodies import fields_sent
from gateway.paths import (
    TenantId,
    parent,
    resource_filter,
    resource_filter_description,
    rest_path,
)
from gateway.schemas.command_plans import (
    CheckInIn,
    CheckOutIn,
    CommandLogEntryList,
    CommandLogEntryOut,
    DispatchIO,
    EmergencyItemOut,
    EmergencyLevelIO,
    EmergencyPlanCreate,
    EmergencyPlanList,
    EmergencyPlanOut,
    EmergencyPlanPatch,
    LevelChangeIn,
    NoticeIO,
    ServiceOrderList,
    ServiceOrderOut,
    ServicePlanCreate,
    ServicePlanList,
    ServicePlanOut,
    ServicePlanPatch,
    ServiceTargetOut,
)
from gateway.schemas.common import GeoPointIn, GeoPointOut
from gateway.schemas.contract import query
from grassroots.command.v1 import plans_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit.principal import Principal

SERVICE = "grassroots.command.v1.PlansService"
router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["command"])
Who = Annotated[Principal, Security(access("command"))]
_ID = r"^[A-Za-z0-9_-]{1,64}$"
PlanId = Annotated[str, Path(pattern=_ID, description="id of the emergency plan")]
ServicePlanId = Annotated[str, Path(pattern=_ID, description="id of the service plan")]
OrderId = Annotated[str, Path(pattern=_ID, description="id of the service order")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]


def _time(stamp: Timestamp, present: bool = True) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def _point_out(point: geo_pb2.GeoPoint) -> GeoPointOut:
    return GeoPointOut(
        longitude=point.longitude, latitude=point.latitude, crs=point.crs or "EPSG:4326"
    )


def _point_in(point: GeoPointIn) -> geo_pb2.GeoPoint:
    return geo_pb2.GeoPoint(longitude=point.longitude, latitude=point.latitude, crs=point.crs)


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def _level_in(level: EmergencyLevelIO) -> pb.EmergencyLevel:
    return pb.EmergencyLevel(
        level=level.level,
        summary=level.summary,
        dispatches=[pb.Dispatch(role=d.role, team=d.team, count=d.count) for d in level.dispatches],
        checklist=level.checklist,
        notices=[pb.Notice(audience=n.audience, text=n.text) for n in level.notices],
        checklist_role=level.checklist_role,
    )


def _enum(name: str, prefix: str) -> Any:
    return name.removeprefix(prefix).lower()


def plan_out(plan: pb.EmergencyPlan) -> EmergencyPlanOut:
    return EmergencyPlanOut(
        id=plan.name.rsplit("/", 1)[-1],
        name=plan.name,
        display_name=plan.display_name,
        signal=plan.signal,
        levels=[
            EmergencyLevelIO(
                level=level.level,
                summary=level.summary,
                dispatches=[
                    DispatchIO(role=d.role, team=d.team, count=d.count) for d in level.dispatches
                ],
                checklist=list(level.checklist),
                notices=[NoticeIO(audience=n.audience, text=n.text) for n in level.notices],
                checklist_role=level.checklist_role,
            )
            for level in plan.levels
        ],
        current_level=plan.current_level,
        level_reason=plan.level_reason,
        level_actor=plan.level_actor,
        level_change_time=_time(plan.level_change_time, plan.HasField("level_change_time")),
        items=[
            EmergencyItemOut(
                id=item.id,
                level=item.level,
                kind=_enum(pb.EmergencyItem.Kind.Name(item.kind), "KIND_"),
                description=item.description,
                state=_enum(pb.EmergencyItem.State.Name(item.state), "STATE_"),
                open_time=item.open_time.ToDatetime(tzinfo=UTC),
                close_time=_time(item.close_time, item.HasField("close_time")),
                tasks=list(item.tasks),
            )
            for item in plan.items
        ],
        etag=plan.etag,
        create_time=plan.create_time.ToDatetime(tzinfo=UTC),
        location=_point_out(plan.location) if plan.HasField("location") else None,
    )


def service_plan_out(plan: pb.ServicePlan) -> ServicePlanOut:
    return ServicePlanOut(
        id=plan.name.rsplit("/", 1)[-1],
        name=plan.name,
        display_name=plan.display_name,
        recurrence=plan.recurrence,
        start_time=plan.start_time.ToDatetime(tzinfo=UTC),
        visit_minutes=plan.visit_minutes,
        handler_role=plan.handler_role,
        carers=list(plan.carers),
        max_check_in_distance_meters=plan.max_check_in_distance_meters,
        targets=[
            ServiceTargetOut(id=t.id, display_name=t.display_name, location=_point_out(t.location))
            for t in plan.targets
        ],
        next_occurrence_time=_time(
            plan.next_occurrence_time, plan.HasField("next_occurrence_time")
        ),
        create_time=plan.create_time.ToDatetime(tzinfo=UTC),
        escalation_role=plan.escalation_role,
        etag=plan.etag,
    )


def order_out(order: pb.ServiceOrder) -> ServiceOrderOut:
    return ServiceOrderOut(
        id=order.name.rsplit("/", 1)[-1],
        name=order.name,
        service_plan=order.service_plan,
        target=order.target,
        target_display_name=order.target_display_name,
        target_location=_point_out(order.target_location),
        scheduled_time=order.scheduled_time.ToDatetime(tzinfo=UTC),
        due_time=order.due_time.ToDatetime(tzinfo=UTC),
        handler=order.handler,
        state=_enum(pb.ServiceOrder.State.Name(order.state), "STATE_"),
        check_in_time=_time(order.check_in_time, order.HasField("check_in_time")),
        check_in_location=_point_out(order.check_in_location)
        if order.HasField("check_in_location")
        else None,
        check_out_time=_time(order.check_out_time, order.HasField("check_out_time")),
        check_out_location=_point_out(order.check_out_location)
        if order.HasField("check_out_location")
        else None,
        note=order.note,
        etag=order.etag,
        escalated_from=order.escalated_from,
        escalate_time=_time(order.escalate_time, order.HasField("escalate_time")),
    )


def _created(body: Any, name: str) -> Response:
    return Response(
        content=body.model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Location": rest_path(name)},
    )


def _stub(request: Request) -> Any:
    return request.app.state.upstreams.plans


@router.post(
    "/emergencyPlans", status_code=201, response_model=EmergencyPlanOut, summary="Create a plan"
)
@calls(SERVICE, "CreateEmergencyPlan")
async def create_emergency_plan(
    tenant: TenantId, body: EmergencyPlanCreate, request: Request, who: Who
) -> Response:
    """An emergency plan of this tenant node with its levels 3, 2 and 1, stood down."""
    message = pb.EmergencyPlan(
        display_name=body.display_name,
        signal=body.signal,
        levels=[_level_in(level) for level in body.levels],
        location=_point_in(body.location) if body.location else None,
    )
    rpc = _stub(request).CreateEmergencyPlan(
        pb.CreateEmergencyPlanRequest(
            parent=parent(tenant), emergency_plan=message, request_id=body.request_id or ""
        ),
        metadata=call_metadata(who),
    )
    plan = await call(rpc, strip_prefix="emergency_plan.")
    return _created(plan_out(plan), plan.name)


@router.get("/emergencyPlans", response_model=EmergencyPlanList, summary="List plans")
@calls(SERVICE, "ListEmergencyPlans")
async def list_emergency_plans(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> EmergencyPlanList:
    """The plans of the tenant's subtree, with their current levels."""
    rpc = _stub(request).ListEmergencyPlans(
        pb.ListEmergencyPlansRequest(
            parent=parent(tenant), page_size=page_size, page_token=page_token
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return EmergencyPlanList(
        emergency_plans=[plan_out(p) for p in response.emergency_plans],
        next_page_token=response.next_page_token,
    )


@router.get(
    "/emergencyPlans/{emergency_plan}", response_model=EmergencyPlanOut, summary="Get a plan"
)
@calls(SERVICE, "GetEmergencyPlan")
async def get_emergency_plan(
    tenant: TenantId, emergency_plan: PlanId, request: Request, who: Who
) -> EmergencyPlanOut:
    """A plan with its current level and what that level opened; another tenant's is 404."""
    rpc = _stub(request).GetEmergencyPlan(
        pb.GetEmergencyPlanRequest(name=f"{parent(tenant)}/emergencyPlans/{emergency_plan}"),
        metadata=call_metadata(who),
    )
    return plan_out(await call(rpc))


@router.patch(
    "/emergencyPlans/{emergency_plan}", response_model=EmergencyPlanOut, summary="Change a plan"
)
@calls(SERVICE, "UpdateEmergencyPlan")
async def update_emergency_plan(
    tenant: TenantId, emergency_plan: PlanId, body: EmergencyPlanPatch, request: Request, who: Who
) -> EmergencyPlanOut:
    """Only the fields sent change, checked as a create is (a missing level is a 400 on
    `levels`). A plan with an active level keeps its levels and signal: changing them is
    a 409 naming the level (stand it down first). The change goes to the command log."""
    paths = fields_sent(body, ("display_name", "signal", "levels", "location"))
    message = pb.EmergencyPlan(
        name=f"{parent(tenant)}/emergencyPlans/{emergency_plan}",
        display_name=body.display_name or "",
        signal=body.signal or "",
        levels=[_level_in(level) for level in body.levels or []],
        location=_point_in(body.location) if body.location else None,
        etag=body.etag,
    )
    rpc = _stub(request).UpdateEmergencyPlan(
        pb.UpdateEmergencyPlanRequest(
            emergency_plan=message, update_mask=FieldMask(paths=paths), reason=body.reason
        ),
        metadata=call_metadata(who),
    )
    return plan_out(await call(rpc, strip_prefix="emergency_plan."))


@router.delete(
    "/emergencyPlans/{emergency_plan}", status_code=204, summary="Delete a stood-down plan"
)
@calls(SERVICE, "DeleteEmergencyPlan")
async def delete_emergency_plan(
    tenant: TenantId,
    emergency_plan: PlanId,
    request: Request,
    who: Who,
    reason: Annotated[
        str, query(pb.DeleteEmergencyPlanRequest, "reason", description="why, for the log")
    ] = "",
    etag: Annotated[
        str,
        query(pb.DeleteEmergencyPlanRequest, "etag", description="refuse if it changed since"),
    ] = "",
) -> Response:
    """The plan is no longer read, listed or raised (by a person or a signal); its tasks
    and command log stay readable. A plan with an active level is a 409 naming the level:
    stand it down first."""
    await call(
        _stub(request).DeleteEmergencyPlan(
            pb.DeleteEmergencyPlanRequest(
                name=f"{parent(tenant)}/emergencyPlans/{emergency_plan}",
                reason=reason,
                etag=etag,
            ),
            metadata=call_metadata(who),
        )
    )
    return Response(status_code=204)


@router.post(
    "/emergencyPlans/{emergency_plan}:changeLevel",
    response_model=EmergencyPlanOut,
    summary="Raise or lower a plan's level",
)
@calls(SERVICE, "ChangeEmergencyLevel")
async def change_emergency_level(
    tenant: TenantId, emergency_plan: PlanId, body: LevelChangeIn, request: Request, who: Who
) -> EmergencyPlanOut:
    """Raising opens the dispatches, checklist tasks and notices of every level crossed;
    lowering closes what the levels left behind opened; 0 stands the plan down. Needs a
    commander (command:write and command:dispatch); the decision goes to the command log
    and an `emergency.level_changed` fact."""
    rpc = _stub(request).ChangeEmergencyLevel(
        pb.ChangeEmergencyLevelRequest(
            name=f"{parent(tenant)}/emergencyPlans/{emergency_plan}",
            level=body.level,
            reason=body.reason,
            etag=body.etag,
        ),
        metadata=call_metadata(who),
    )
    return plan_out(await call(rpc))


@router.get(
    "/commandLogEntries", response_model=CommandLogEntryList, summary="Read the command log"
)
@calls(SERVICE, "ListCommandLogEntries")
async def list_command_log_entries(
    tenant: TenantId,
    request: Request,
    who: Who,
    resource: Annotated[
        str | None,
        query(pb.ListCommandLogEntriesRequest, "resource", description="only this resource name"),
    ] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> CommandLogEntryList:
    """Every decision in the tenant's subtree, newest first: who or what, when and why."""
    rpc = _stub(request).ListCommandLogEntries(
        pb.ListCommandLogEntriesRequest(
            parent=parent(tenant),
            resource=resource or "",
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return CommandLogEntryList(
        command_log_entries=[
            CommandLogEntryOut(
                name=e.name,
                time=e.time.ToDatetime(tzinfo=UTC),
                actor=e.actor,
                action=e.action,
                resource=e.resource,
                reason=e.reason,
                detail=e.detail,
            )
            for e in response.command_log_entries
        ],
        next_page_token=response.next_page_token,
    )


@router.post(
    "/servicePlans",
    status_code=201,
    response_model=ServicePlanOut,
    summary="Create a service plan",
)
@calls(SERVICE, "CreateServicePlan")
async def create_service_plan(
    tenant: TenantId, body: ServicePlanCreate, request: Request, who: Who
) -> Response:
    """Recurring visits; an RRULE that does not parse or never fires again is a 400 on
    `recurrence`. Orders are made ahead of each occurrence and given to the nearest carer
    with room (the tenant's on-duty handlers holding `handler_role` when no carers are
    named); with `escalation_role`, an order nobody checked in to by its due time goes to
    the nearest on-duty handler holding that role."""
    message = pb.ServicePlan(
        display_name=body.display_name,
        recurrence=body.recurrence,
        start_time=_stamp(body.start_time),
        visit_minutes=body.visit_minutes,
        handler_role=body.handler_role,
        carers=body.carers,
        max_check_in_distance_meters=body.max_check_in_distance_meters,
        targets=[
            pb.ServiceTarget(id=t.id, display_name=t.display_name, location=_point_in(t.location))
            for t in body.targets
        ],
        escalation_role=body.escalation_role,
    )
    rpc = _stub(request).CreateServicePlan(
        pb.CreateServicePlanRequest(
            parent=parent(tenant), service_plan=message, request_id=body.request_id or ""
        ),
        metadata=call_metadata(who),
    )
    plan = await call(rpc, strip_prefix="service_plan.")
    return _created(service_plan_out(plan), plan.name)


@router.get("/servicePlans", response_model=ServicePlanList, summary="List service plans")
@calls(SERVICE, "ListServicePlans")
async def list_service_plans(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> ServicePlanList:
    """The service plans of the tenant's subtree."""
    rpc = _stub(request).ListServicePlans(
        pb.ListServicePlansRequest(
            parent=parent(tenant), page_size=page_size, page_token=page_token
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return ServicePlanList(
        service_plans=[service_plan_out(p) for p in response.service_plans],
        next_page_token=response.next_page_token,
    )


@router.get(
    "/servicePlans/{service_plan}", response_model=ServicePlanOut, summary="Get a service plan"
)
@calls(SERVICE, "GetServicePlan")
async def get_service_plan(
    tenant: TenantId, service_plan: ServicePlanId, request: Request, who: Who
) -> ServicePlanOut:
    """A service plan with its next occurrence; another tenant's is 404."""
    rpc = _stub(request).GetServicePlan(
        pb.GetServicePlanRequest(name=f"{parent(tenant)}/servicePlans/{service_plan}"),
        metadata=call_metadata(who),
    )
    return service_plan_out(await call(rpc))


# What a service plan PATCH body carries besides the plan's fields.
_NOT_FIELDS = frozenset({"etag", "reason"})


@router.patch(
    "/servicePlans/{service_plan}", response_model=ServicePlanOut, summary="Change a service plan"
)
@calls(SERVICE, "UpdateServicePlan")
async def update_service_plan(
    tenant: TenantId,
    service_plan: ServicePlanId,
    body: ServicePlanPatch,
    request: Request,
    who: Who,
) -> ServicePlanOut:
    """Only the fields sent change, checked as a create is (an RRULE that never fires
    again is a 400 on `recurrence`). Orders already made keep what they were made with;
    the next occurrence follows the new plan. The change goes to the command log."""
    paths = fields_sent(body, (f for f in ServicePlanPatch.model_fields if f not in _NOT_FIELDS))
    message = pb.ServicePlan(
        name=f"{parent(tenant)}/servicePlans/{service_plan}",
        display_name=body.display_name or "",
        recurrence=body.recurrence or "",
        start_time=_stamp(body.start_time) if body.start_time else None,
        visit_minutes=body.visit_minutes or 0,
        handler_role=body.handler_role or "",
        carers=body.carers or [],
        max_check_in_distance_meters=body.max_check_in_distance_meters or 0.0,
        targets=[
            pb.ServiceTarget(id=t.id, display_name=t.display_name, location=_point_in(t.location))
            for t in body.targets or []
        ],
        escalation_role=body.escalation_role or "",
        etag=body.etag,
    )
    rpc = _stub(request).UpdateServicePlan(
        pb.UpdateServicePlanRequest(
            service_plan=message, update_mask=FieldMask(paths=paths), reason=body.reason
        ),
        metadata=call_metadata(who),
    )
    return service_plan_out(await call(rpc, strip_prefix="service_plan."))


@router.delete("/servicePlans/{service_plan}", status_code=204, summary="Delete a service plan")
@calls(SERVICE, "DeleteServicePlan")
async def delete_service_plan(
    tenant: TenantId,
    service_plan: ServicePlanId,
    request: Request,
    who: Who,
    reason: Annotated[
        str, query(pb.DeleteServicePlanRequest, "reason", description="why, for the log")
    ] = "",
    etag: Annotated[
        str,
        query(pb.DeleteServicePlanRequest, "etag", description="refuse if it changed since"),
    ] = "",
) -> Response:
    """No more orders are made; orders nobody has checked in to are cancelled (those
    checked in or done stay), and the plan's timers with them."""
    await call(
        _stub(request).DeleteServicePlan(
            pb.DeleteServicePlanRequest(
                name=f"{parent(tenant)}/servicePlans/{service_plan}", reason=reason, etag=etag
            ),
            metadata=call_metadata(who),
        )
    )
    return Response(status_code=204)


@router.get("/serviceOrders", response_model=ServiceOrderList, summary="List service orders")
@calls(SERVICE, "ListServiceOrders")
async def list_service_orders(
    tenant: TenantId,
    request: Request,
    who: Who,
    handler: Annotated[
        str | None,
        query(pb.ListServiceOrdersRequest, "handler", description="a carer's subject"),
    ] = None,
    service_plan: Annotated[
        str | None,
        Query(
            max_length=300,
            description=resource_filter_description("servicePlans", "the orders of a plan"),
        ),
    ] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> ServiceOrderList:
    """Orders of the tenant's subtree, soonest first; a carer lists their own with `handler`."""
    rpc = _stub(request).ListServiceOrders(
        pb.ListServiceOrdersRequest(
            parent=parent(tenant),
            handler=handler or "",
            service_plan=resource_filter(service_plan, tenant, "servicePlans", "service_plan")
            or "",
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return ServiceOrderList(
        service_orders=[order_out(o) for o in response.service_orders],
        next_page_token=response.next_page_token,
    )


@router.get(
    "/serviceOrders/{service_order}", response_model=ServiceOrderOut, summary="Get an order"
)
@calls(SERVICE, "GetServiceOrder")
async def get_service_order(
    tenant: TenantId, service_order: OrderId, request: Request, who: Who
) -> ServiceOrderOut:
    """A service order; another tenant's is 404."""
    rpc = _stub(request).GetServiceOrder(
        pb.GetServiceOrderRequest(name=f"{parent(tenant)}/serviceOrders/{service_order}"),
        metadata=call_metadata(who),
    )
    return order_out(await call(rpc))


@router.post(
    "/serviceOrders/{service_order}:checkIn",
    response_model=ServiceOrderOut,
    summary="Check in at the target",
)
@calls(SERVICE, "CheckInServiceOrder")
async def check_in_service_order(
    tenant: TenantId, service_order: OrderId, body: CheckInIn, request: Request, who: Who
) -> ServiceOrderOut:
    """The assigned carer arrives; farther from the target than the plan allows is a 400
    on `location` saying how far (GCJ-02 from a phone is accepted)."""
    rpc = _stub(request).CheckInServiceOrder(
        pb.CheckInServiceOrderRequest(
            name=f"{parent(tenant)}/serviceOrders/{service_order}",
            location=_point_in(body.location),
        ),
        metadata=call_metadata(who),
    )
    return order_out(await call(rpc))


@router.post(
    "/serviceOrders/{service_order}:checkOut",
    response_model=ServiceOrderOut,
    summary="Check out with a note",
)
@calls(SERVICE, "CheckOutServiceOrder")
async def check_out_service_order(
    tenant: TenantId, service_order: OrderId, body: CheckOutIn, request: Request, who: Who
) -> ServiceOrderOut:
    """The carer leaves, still at the target, with a note: the order is done."""
    rpc = _stub(request).CheckOutServiceOrder(
        pb.CheckOutServiceOrderRequest(
            name=f"{parent(tenant)}/serviceOrders/{service_order}",
            location=_point_in(body.location),
            note=body.note,
        ),
        metadata=call_metadata(who),
    )
    return order_out(await call(rpc))

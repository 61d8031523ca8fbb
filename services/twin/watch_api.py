"""gRPC adapter of WatchEntities and IssueDeviceKey: messages <-> the change log and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument, NotFound
from services.kit.principal import Principal
from services.twin.domain.service import TwinHub
from services.twin.domain.stream import ChangeLog, Idle, LoggedChange, Missed, Selector
from services.twin.mqtt_bridge.device_keys import DeviceKeys, parse_subject
from services.twin.mqtt_bridge.payload import TELEMETRY

_KINDS = {
    "created": pb.EntityChange.KIND_CREATED,
    "updated": pb.EntityChange.KIND_UPDATED,
    "deleted": pb.EntityChange.KIND_DELETED,
}
KEEPALIVE_SECONDS = 15.0
MISSED_TEXT = (
    "changes after your resume token are no longer held (you fell behind, or the service "
    "restarted): re-read the entities you watch; the stream goes on from here"
)


def _visible_tenant(principal: Principal, parent: str) -> str:
    tenant = tenancy.parse_parent(parent)
    if not principal.can_see(tenant):
        raise NotFound(f"{parent} not found")
    return tenant


def selector_for(principal: Principal, request: pb.WatchEntitiesRequest) -> Selector:
    tenant = _visible_tenant(principal, request.parent)
    entity = None
    if request.entity:
        entity_tenant, entity_id = tenancy.parse_child_name(request.entity, "entities", "entity")
        if entity_tenant is None or not tenancy.contains(tenant, entity_tenant):
            raise InvalidArgument.field("entity", "must be an entity of the parent's subtree")
        entity = (entity_tenant, entity_id)
    box = None
    if request.HasField("area"):
        a = request.area
        box = (a.min_longitude, a.min_latitude, a.max_longitude, a.max_latitude)
    return Selector(tenant, entity=entity, entity_type=request.entity_type or None, box=box)


def change_message(log: ChangeLog, logged: LoggedChange) -> pb.WatchEntitiesResponse:
    change = logged.change
    message = pb.EntityChange(
        entity=f"{tenancy.tenant_name(change.tenant)}/entities/{change.entity_id}",
        entity_type=change.entity_type,
        sequence=change.sequence,
        kind=_KINDS.get(change.kind, pb.EntityChange.KIND_UNSPECIFIED),
        properties=[_property(name, latest) for name, latest in _items(change.values)],
    )
    if change.location is not None:
        message.location.CopyFrom(
            geo_pb2.GeoPoint(longitude=change.location[0], latitude=change.location[1])
        )
    return pb.WatchEntitiesResponse(resume_token=log.token(logged.offset), change=message)


def _items(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(values.items())


def _property(name: str, latest: Any) -> pb.PropertyValue:
    """A hub `Latest` (value, observed_ms, point) as a PropertyValue."""
    value = pb.PropertyValue(property=name, value=float(getattr(latest, "value", 0.0)))
    observed_ms = int(getattr(latest, "observed_ms", 0))
    if observed_ms:
        value.observe_time.FromMilliseconds(observed_ms)
    point = getattr(latest, "point", None)
    if point is not None:
        value.point.CopyFrom(geo_pb2.GeoPoint(longitude=point.longitude, latitude=point.latitude))
    return value


async def watch_entities(
    log: ChangeLog, request: pb.WatchEntitiesRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[pb.WatchEntitiesResponse]:
    principal = require_principal()
    selector = selector_for(principal, request)
    stream = log.follow(selector, request.resume_token, KEEPALIVE_SECONDS)
    # A token this log never gave is INVALID_ARGUMENT before any header goes out.
    first = await anext(stream) if request.resume_token else None
    await context.send_initial_metadata(())
    try:
        if first is not None:
            yield _message(log, first)
        async for item in stream:
            yield _message(log, item)
    finally:
        await stream.aclose()


def _message(log: ChangeLog, item: LoggedChange | Missed | Idle) -> pb.WatchEntitiesResponse:
    if isinstance(item, LoggedChange):
        return change_message(log, item)
    if isinstance(item, Missed):
        return pb.WatchEntitiesResponse(
            resume_token=log.token(item.resume_offset - 1),
            missed=pb.MissedChanges(description=MISSED_TEXT),
        )
    return pb.WatchEntitiesResponse(resume_token=log.token(item.offset), keep_alive=True)


async def issue_device_key(
    keys: DeviceKeys, topic_root: str, hub: TwinHub, request: pb.IssueDeviceKeyRequest
) -> pb.DeviceKey:
    """A key for an existing entity the caller sees, or for a tenant it sees."""
    principal = require_principal()
    try:
        grant = parse_subject(request.name)
    except ValueError:
        raise InvalidArgument.field(
            "name", "an entity (tenants/{tenant}/entities/{entity}) or a tenant (tenants/{tenant})"
        ) from None
    if not principal.can_see(grant.tenant_path):
        raise NotFound(f"{request.name} not found")
    if grant.entity_id is not None:
        await hub.get_entity(principal, request.name)  # NotFound unless it exists
    tenant_id = tenancy.path_to_id(grant.tenant_path)
    entity = grant.entity_id or "+"
    return pb.DeviceKey(
        name=request.name,
        key=keys.issue(request.name),
        topic=f"{topic_root}/{tenant_id}/{entity}/{TELEMETRY}",
    )

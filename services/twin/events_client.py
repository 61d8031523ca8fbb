"""The events service and the bus as the alarm relay's sinks."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import grpc

from grassroots.events.v1 import events_service_pb2 as ev_pb
from grassroots.events.v1 import events_service_pb2_grpc as ev_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.bus import Bus, BusMessage
from services.kit.client import open_channel
from services.kit.principal import Principal
from services.kit.status import domain_error_from
from services.twin.domain.entities import Entity
from services.twin.domain.ports import Alarm
from services.twin.domain.rules import Geofence, GeofenceMode, Rule

SUBJECT = "services/twin"
LEVEL_STREAM = "twin.level_changed"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _value(value: float) -> str:
    return "no reading" if math.isnan(value) else f"{value:g}"


def _reading(rule: Rule, value: float) -> str:
    """What the rule saw: a value, or for a geofence which side of its layer."""
    cond = rule.condition
    if not isinstance(cond, Geofence):
        return f"{rule.watched} {_value(value)}"
    inside = (value >= 0.5) == (cond.mode == GeofenceMode.INSIDE)
    stopped = " (stopped)" if cond.speed_property and value >= 0.5 else ""
    return f"{rule.watched} {'inside' if inside else 'outside'} {cond.layer}{stopped}"


class EventsClient:
    """Raises and updates events as the twin service itself (a service principal for the
    entity's tenant with events:write only)."""

    def __init__(self, target: str, timeout: float) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = ev_grpc.EventsServiceStub(self.channel)
        self._principals: dict[str, Principal] = {}

    def _as_service(self, tenant: str) -> Principal:
        found = self._principals.get(tenant)
        if found is None:
            found = self._principals[tenant] = Principal(
                SUBJECT, tenant, "service", scopes=frozenset({"events:write", "events:read"})
            )
        return found

    async def raise_event(self, alarm: Alarm, rule: Rule, entity: Entity) -> str:
        if entity.location is None:
            raise ValueError(f"entity {entity.name} has no location for its event")
        what = rule.display_name or rule.rule_id
        request = ev_pb.CreateEventRequest(
            parent=tenancy.tenant_name(entity.tenant),
            request_id=alarm.episode,
            event=ev_pb.Event(
                category=rule.event_category,
                description=(
                    f"{what}: {entity.display_name or entity.entity_id} ({entity.entity_type}) "
                    f"{_reading(rule, alarm.value)} at {_when(alarm.at_ms)} "
                    f"[{entity.name}]"
                )[:2000],
                location=geo_pb2.GeoPoint(
                    longitude=entity.location.longitude,
                    latitude=entity.location.latitude,
                    crs="EPSG:4326",
                ),
                source=ev_pb.Event.SOURCE_TWIN_RULE,
                severity=rule.severity,
                entity=entity.name,
            ),
        )
        try:
            made = await self.stub.CreateEvent(
                request, metadata=self._as_service(entity.tenant).to_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "events") from None
        return str(made.name)

    async def clear_event(self, event: str, alarm: Alarm, rule: Rule) -> None:
        tenant = tenancy.id_to_path(event.split("/")[1])
        try:
            await self.stub.AddComment(
                ev_pb.AddCommentRequest(
                    name=event,
                    text=(
                        f"Cleared: {rule.display_name or rule.rule_id} back to normal at "
                        f"{_when(alarm.at_ms)} ({_reading(rule, alarm.value)})."
                    ),
                ),
                metadata=self._as_service(tenant).to_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "events") from None

    async def close(self) -> None:
        await self.channel.close()


class BusFacts:
    """twin.level_changed on the platform bus, for the command service's plans."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def level_changed(self, alarm: Alarm, rule: Rule) -> None:
        tenant, entity_id = alarm.entity
        body = {
            "rule": f"{tenancy.tenant_name(rule.tenant)}/rules/{rule.rule_id}",
            "entity": f"{tenancy.tenant_name(tenant)}/entities/{entity_id}",
            "tenant": tenant,
            "level": alarm.level,
            "previous_level": alarm.old_level,
            "value": None if math.isnan(alarm.value) else alarm.value,
            # Milliseconds: command ignores a signal not newer than the last it applied,
            # and a counter steps through levels within one second.
            "observe_time": datetime.fromtimestamp(alarm.at_ms / 1000, UTC).isoformat(
                timespec="milliseconds"
            ),
        }
        await self.bus.publish(LEVEL_STREAM, _message(alarm, body))


def _message(alarm: Alarm, body: dict[str, object]) -> BusMessage:
    return BusMessage(
        type=LEVEL_STREAM,
        key=f"twin-level:{alarm.seq}",
        tenant=alarm.entity[0],
        offset=alarm.seq,
        payload=json.dumps(body).encode(),
    )

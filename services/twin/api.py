"""gRPC adapter of the twin service: messages <-> domain, nothing else."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import paging, tenancy
from services.kit.component import ServiceComponent
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.scopes import method_scopes
from services.twin import watch_api
from services.twin.domain.entities import (
    Entity,
    Point,
    Relationship,
    entity_name,
    parse_entity_name,
)
from services.twin.domain.ingest import MAX_LISTED_REJECTIONS, Columns
from services.twin.domain.models import BUILTIN_TENANT, Kind, Model, PropertySpec
from services.twin.domain.ports import EntityKey, RuleKey
from services.twin.domain.rules import (
    Condition,
    Direction,
    Geofence,
    GeofenceMode,
    Inactivity,
    Levels,
    Phase,
    Rule,
    RuleState,
    Threshold,
)
from services.twin.domain.service import IngestOutcome, TwinHub
from services.twin.feeds import Feeds

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TwinService"].full_name
MAX_ROW_BATCH = 10_000


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _ms(ts: Timestamp) -> int:
    return int(ts.ToMilliseconds())


_PHASES = {Phase.PENDING: pb.RuleStatus.PHASE_PENDING, Phase.ACTIVE: pb.RuleStatus.PHASE_ACTIVE}


def rule_statuses(states: list[tuple[RuleKey, RuleState]]) -> list[pb.RuleStatus]:
    """An entity's rules that are not idle, as readers see them."""
    return [
        pb.RuleStatus(
            rule=f"{tenancy.tenant_name(rule[0])}/rules/{rule[1]}",
            phase=_PHASES[state.phase],
            start_time=_ts(state.since_ms) if state.since_ms else None,
            level=state.level,
        )
        for rule, state in states
        if state.phase in _PHASES
    ]


def entity_to_proto(entity: Entity, model: Model | None = None) -> pb.Entity:
    """An entity with its latest values, in the model's units (the NGSI-LD adapter reuses this)."""
    models_unit = {p.name: p.unit for p in model.properties} if model else {}
    state = struct_pb2.Struct()
    props = []
    newest = 0
    for prop, latest in sorted(entity.latest.items()):
        newest = max(newest, latest.observed_ms)
        point = (
            geo_pb2.GeoPoint(
                longitude=latest.point.longitude, latitude=latest.point.latitude, crs="EPSG:4326"
            )
            if latest.point
            else None
        )
        if latest.point is None:
            state[prop] = latest.value
        props.append(
            pb.PropertyValue(
                property=prop,
                value=latest.value,
                unit=models_unit.get(prop, ""),
                observe_time=_ts(latest.observed_ms),
                point=point,
            )
        )
    return pb.Entity(
        name=entity.name,
        entity_type=entity.entity_type,
        location=(
            geo_pb2.GeoPoint(
                longitude=entity.location.longitude,
                latitude=entity.location.latitude,
                crs="EPSG:4326",
            )
            if entity.location
            else None
        ),
        state=state,
        update_time=_ts(newest) if newest else None,
        building=entity.building,
        relationships=[
            pb.Relationship(type=r.type, target=entity_name(*r.target))
            for r in entity.relationships
        ],
        properties=props,
        display_name=entity.display_name,
        create_time=_ts(entity.create_ms) if entity.create_ms else None,
    )


def entity_from_proto(tenant: str, entity_id: str, given: pb.Entity) -> Entity:
    location = None
    if given.HasField("location"):
        if given.location.crs not in ("", "EPSG:4326"):
            raise InvalidArgument.field("entity.location.crs", "only EPSG:4326 is accepted")
        location = Point(given.location.longitude, given.location.latitude)
    rels = tuple(
        Relationship(r.type, parse_entity_name(r.target, f"entity.relationships[{i}].target"))
        for i, r in enumerate(given.relationships)
    )
    return Entity(
        tenant=tenant,
        entity_id=entity_id,
        entity_type=given.entity_type,
        location=location,
        building=given.building,
        relationships=rels,
        display_name=given.display_name,
    )


def model_to_proto(model: Model) -> pb.Model:
    tenant_id = "-" if model.tenant == BUILTIN_TENANT else tenancy.path_to_id(model.tenant)
    return pb.Model(
        name=f"tenants/{tenant_id}/models/{model.model_id}",
        model_id=model.model_id,
        smart_data_model=model.smart_data_model,
        description=model.description,
        properties=[
            pb.PropertySpec(
                name=p.name,
                kind=pb.PropertySpec.Kind.ValueType(int(p.kind)),
                unit=p.unit,
                minimum=p.minimum,
                maximum=p.maximum,
            )
            for p in model.properties
        ],
    )


def _model_from_proto(given: pb.Model) -> Model:
    return Model(
        model_id=given.model_id,
        smart_data_model=given.smart_data_model,
        description=given.description,
        properties=tuple(
            PropertySpec(
                p.name,
                Kind(int(p.kind)) if int(p.kind) in Kind._value2member_map_ else Kind.NUMBER,
                p.unit,
                p.minimum if p.HasField("minimum") else None,
                p.maximum if p.HasField("maximum") else None,
            )
            for p in given.properties
        ),
    )


def rule_to_proto(rule: Rule) -> pb.Rule:
    out = pb.Rule(
        name=f"{tenancy.tenant_name(rule.tenant)}/rules/{rule.rule_id}",
        display_name=rule.display_name,
        entity_type=rule.entity_type,
        property=rule.watched,
        event_category=rule.event_category,
        severity=rule.severity,
    )
    cond = rule.condition
    if isinstance(cond, Threshold):
        out.threshold.direction = pb.Threshold.Direction.ValueType(int(cond.direction))
        out.threshold.trigger = cond.trigger
        out.threshold.clear = cond.clear
        out.threshold.min_duration.FromMilliseconds(cond.min_duration_ms)
    elif isinstance(cond, Levels):
        out.levels.bounds.extend(cond.bounds)
        out.levels.hysteresis = cond.hysteresis
        out.levels.event_from_level = cond.event_from_level
    elif isinstance(cond, Inactivity):
        out.inactivity.silence.FromMilliseconds(cond.silence_ms)
    else:
        out.geofence.layer = cond.layer
        out.geofence.mode = pb.Geofence.Mode.ValueType(int(cond.mode))
        out.geofence.buffer_meters = cond.buffer_m
        out.geofence.dwell.FromMilliseconds(cond.dwell_ms)
        if cond.speed_property:
            out.geofence.stopped.speed_property = cond.speed_property
            out.geofence.stopped.at_most = cond.stopped_at_most
    return out


def _condition(given: pb.Rule) -> Condition:
    which = given.WhichOneof("condition")
    if which == "threshold":
        t = given.threshold
        direction = (
            Direction.BELOW if t.direction == pb.Threshold.DIRECTION_BELOW else Direction.ABOVE
        )
        return Threshold(direction, t.trigger, t.clear, t.min_duration.ToMilliseconds())
    if which == "levels":
        lv = given.levels
        return Levels(tuple(lv.bounds), lv.hysteresis, lv.event_from_level)
    if which == "inactivity":
        return Inactivity(given.inactivity.silence.ToMilliseconds())
    if which == "geofence":
        g = given.geofence
        mode = GeofenceMode.OUTSIDE if g.mode == pb.Geofence.MODE_OUTSIDE else GeofenceMode.INSIDE
        stopped = g.stopped if g.HasField("stopped") else None
        if stopped is not None and not stopped.speed_property:
            raise InvalidArgument.field("rule.geofence.stopped.speed_property", "required")
        return Geofence(
            g.layer,
            mode,
            buffer_m=g.buffer_meters,
            dwell_ms=g.dwell.ToMilliseconds(),
            speed_property=stopped.speed_property if stopped else "",
            stopped_at_most=stopped.at_most if stopped else 0.0,
        )
    raise InvalidArgument.field("rule.condition", "one of threshold, levels, inactivity, geofence")


def columns_from_proto(given: pb.TelemetryColumns) -> Columns:
    """Packed columns straight into numpy arrays (the MQTT bridge builds Columns itself)."""
    try:
        return Columns.of(
            entities=list(given.entities),
            properties=list(given.properties),
            values=np.frombuffer(np.asarray(given.values, dtype=np.float64).tobytes())
            if given.values
            else [],
            observed_ms=np.asarray(given.observe_times_ms, dtype=np.int64)
            if given.observe_times_ms
            else None,
            units=list(given.units) if given.units else None,
            longitudes=np.asarray(given.longitudes, dtype=np.float64) if given.longitudes else None,
            latitudes=np.asarray(given.latitudes, dtype=np.float64) if given.latitudes else None,
        )
    except InvalidArgument as exc:
        raise exc.under("") from None


def outcome_to_proto(outcome: IngestOutcome) -> pb.IngestTelemetryResponse:
    return pb.IngestTelemetryResponse(
        accepted_count=outcome.accepted_count,
        rejected_count=outcome.rejected_count,
        stale_count=outcome.stale_count,
        stale_indexes=outcome.stale[:MAX_LISTED_REJECTIONS].tolist(),
        rejections=[
            pb.RejectedReading(
                index=r.index,
                field=f"columns.{r.field}",
                reason=r.reason,
                description=r.description,
            )
            for r in outcome.rejections
        ],
    )


class TwinServicer(pb_grpc.TwinServiceServicer):
    def __init__(self, hub: TwinHub, feeds: Feeds) -> None:
        self.hub = hub
        self.feeds = feeds

    async def WatchEntities(
        self, request: pb.WatchEntitiesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEntitiesResponse]:
        async for item in watch_api.watch_entities(self.feeds.log, request, context):
            yield item

    async def IssueDeviceKey(
        self, request: pb.IssueDeviceKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeviceKey:
        return await watch_api.issue_device_key(
            self.feeds.keys, self.feeds.topic_root, self.hub, request
        )

    def _out(
        self, entity: Entity, alarms: dict[EntityKey, list[tuple[RuleKey, RuleState]]] | None = None
    ) -> pb.Entity:
        message = entity_to_proto(
            entity, self.hub.models.resolve(entity.tenant, entity.entity_type)
        )
        key = (entity.tenant, entity.entity_id)
        found = alarms if alarms is not None else self.hub.alarm_states([key])
        message.rule_statuses.extend(rule_statuses(found.get(key, [])))
        return message

    async def CreateEntity(
        self, request: pb.CreateEntityRequest, context: grpc.aio.ServicerContext
    ) -> pb.Entity:
        tenant = tenancy.parse_parent(request.parent)
        entity_id = request.entity_id or f"en-{_short_id()}"
        entity = entity_from_proto(tenant, entity_id, request.entity)
        return self._out(await self.hub.create_entity(require_principal(), entity))

    async def GetEntity(
        self, request: pb.GetEntityRequest, context: grpc.aio.ServicerContext
    ) -> pb.Entity:
        return self._out(await self.hub.get_entity(require_principal(), request.name))

    async def ListEntities(
        self, request: pb.ListEntitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEntitiesResponse:
        subtree = tenancy.parse_parent(request.parent)
        entity_type = _type_filter(request.filter)
        size = paging.page_size(request.page_size)
        query = {"parent": subtree, "type": entity_type}
        cursor = paging.decode_token(request.page_token, query)
        after = (str(cursor["t"]), str(cursor["e"])) if cursor else None
        found = await self.hub.list_entities(
            require_principal(), subtree, entity_type, size + 1, after
        )
        token = ""
        if len(found) > size:
            found = found[:size]
            token = paging.encode_token({"t": found[-1].tenant, "e": found[-1].entity_id}, query)
        alarms = self.hub.alarm_states((e.tenant, e.entity_id) for e in found)
        return pb.ListEntitiesResponse(
            entities=[self._out(e, alarms) for e in found], next_page_token=token
        )

    async def DeleteEntity(
        self, request: pb.DeleteEntityRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self.hub.delete_entity(require_principal(), request.name)
        return empty_pb2.Empty()

    async def BatchWriteTelemetry(
        self, request: pb.BatchWriteTelemetryRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchWriteTelemetryResponse:
        """The row form of IngestTelemetry; refused readings are left out of written_count."""
        tenant = tenancy.parse_parent(request.parent)
        if len(request.readings) > MAX_ROW_BATCH:
            raise InvalidArgument.field("readings", f"at most {MAX_ROW_BATCH} per call")
        rows = request.readings
        columns = Columns.of(
            entities=[r.entity for r in rows],
            properties=[r.attribute for r in rows],
            values=[r.value for r in rows],
            observed_ms=[r.observe_time.ToMilliseconds() for r in rows],
        )
        outcome = await self.hub.ingest(require_principal(), tenant, columns)
        return pb.BatchWriteTelemetryResponse(written_count=outcome.accepted_count)

    async def IngestTelemetry(
        self, request: pb.IngestTelemetryRequest, context: grpc.aio.ServicerContext
    ) -> pb.IngestTelemetryResponse:
        tenant = tenancy.parse_parent(request.parent)
        columns = columns_from_proto(request.columns)
        return outcome_to_proto(await self.hub.ingest(require_principal(), tenant, columns))

    async def CreateModel(
        self, request: pb.CreateModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.Model:
        tenant = tenancy.parse_parent(request.parent)
        model = await self.hub.create_model(
            require_principal(), tenant, _model_from_proto(request.model)
        )
        return model_to_proto(model)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        tenant = tenancy.parse_parent(request.parent)
        models = self.hub.list_models(require_principal(), tenant)
        page, token = _page(models, request.page_size, request.page_token, {"models": tenant})
        return pb.ListModelsResponse(
            models=[model_to_proto(m) for m in page], next_page_token=token
        )

    async def ListRelatedEntities(
        self, request: pb.ListRelatedEntitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRelatedEntitiesResponse:
        incoming = request.direction == pb.ListRelatedEntitiesRequest.DIRECTION_INCOMING
        found = await self.hub.related(
            require_principal(), request.name, incoming, request.relationship_type
        )
        return pb.ListRelatedEntitiesResponse(
            related=[pb.RelatedEntity(relationship_type=t, entity=self._out(e)) for t, e in found]
        )

    async def QueryHistory(
        self, request: pb.QueryHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueryHistoryResponse:
        subtree = tenancy.parse_parent(request.parent)
        principal = require_principal()
        self.hub.require_visible(principal, subtree)  # another village: 404 before anything
        if not request.property:
            raise InvalidArgument.field("property", "required")
        if not request.HasField("start_time") or not request.HasField("end_time"):
            raise InvalidArgument.field("start_time", "start_time and end_time are required")
        start, end = _ms(request.start_time), _ms(request.end_time)
        if end <= start:
            raise InvalidArgument.field("end_time", "must be after start_time")
        bucket = request.bucket.ToMilliseconds() if request.HasField("bucket") else 0
        if bucket < 0 or (bucket and (end - start) // bucket > 1_000_000):
            raise InvalidArgument.field("bucket", "positive, at most a million buckets in range")
        box = None
        if request.HasField("area"):
            a = request.area
            box = (a.min_longitude, a.min_latitude, a.max_longitude, a.max_latitude)
            if not (a.min_longitude <= a.max_longitude and a.min_latitude <= a.max_latitude):
                raise InvalidArgument.field("area", "min must not exceed max")
        size = paging.page_size(request.page_size, default=1000, maximum=10_000)
        query = {
            "p": subtree,
            "e": list(request.entities),
            "t": request.entity_type,
            "a": box,
            "prop": request.property,
            "s": start,
            "x": end,
            "b": bucket,
        }
        cursor = paging.decode_token(request.page_token, query)
        after = (int(cursor["s"]), int(cursor["t"])) if cursor else None
        points, nxt = await self.hub.history(
            principal,
            subtree,
            request.property,
            list(request.entities),
            request.entity_type,
            box,
            start,
            end,
            bucket,
            size,
            after,
        )
        return pb.QueryHistoryResponse(
            points=[
                pb.HistoryPoint(
                    entity=name,
                    time=_ts(row.time_ms),
                    count=row.count,
                    min=row.min,
                    max=row.max,
                    mean=row.mean,
                )
                for name, row in points
            ],
            next_page_token=paging.encode_token({"s": nxt[0], "t": nxt[1]}, query) if nxt else "",
        )

    async def CreateRule(
        self, request: pb.CreateRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.Rule:
        tenant = tenancy.parse_parent(request.parent)
        given = request.rule
        rule = Rule(
            tenant=tenant,
            rule_id=request.rule_id or f"ru-{_short_id()}",
            entity_type=given.entity_type,
            watched=given.property,
            condition=_condition(given),
            event_category=given.event_category,
            display_name=given.display_name,
            severity=given.severity,
        )
        return rule_to_proto(await self.hub.create_rule(require_principal(), rule))

    async def DeleteRule(
        self, request: pb.DeleteRuleRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        tenant, rule_id = tenancy.parse_child_name(request.name, "rules")
        if tenant is None:
            raise InvalidArgument.field("name", "names one tenant's rule, not the wildcard '-'")
        await self.hub.delete_rule(require_principal(), tenant, rule_id)
        return empty_pb2.Empty()

    async def ListRules(
        self, request: pb.ListRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRulesResponse:
        subtree = tenancy.parse_parent(request.parent)
        rules = self.hub.list_rules(require_principal(), subtree)
        page, token = _page(rules, request.page_size, request.page_token, {"rules": subtree})
        return pb.ListRulesResponse(rules=[rule_to_proto(r) for r in page], next_page_token=token)


def _short_id() -> str:
    from services.kit.ids import ulid

    return ulid().lower()


def _type_filter(text: str) -> str:
    """The one filter ListEntities takes: `entity_type = "X"` (or empty)."""
    text = text.strip()
    if not text:
        return ""
    m = re.fullmatch(r'entity_type\s*=\s*"([A-Za-z][A-Za-z0-9_]{0,62})"', text)
    if m is None:
        raise InvalidArgument.field("filter", 'only entity_type = "Model" is supported')
    return m.group(1)


def _page(items: list[Any], size: int, token: str, query: Any) -> tuple[list[Any], str]:
    n = paging.page_size(size)
    start = paging.decode_offset(token, query)
    page = items[start : start + n]
    more = start + n < len(items)
    return page, paging.encode_offset(start + n if more else None, query)


def build_component(
    hub: TwinHub, closers: list[Callable[[], object]], feeds: Feeds
) -> ServiceComponent:
    return ServiceComponent(
        [(TwinServicer(hub, feeds), pb_grpc.add_TwinServiceServicer_to_server)],
        [SERVICE_NAME],
        closers,
        method_scopes=method_scopes(SERVICE_NAME),
    )

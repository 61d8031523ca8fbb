"""REST for the twin component: entities, telemetry, history, models and rules.

Paths follow the resource names (ADR 9): `/v1/tenants/{tenant}/entities/{entity}`.
Answers are the contract's messages as JSON (field names as in the .proto).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, Security
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import access, call_metadata, calls
from gateway.errors import ApiError, call
from gateway.paths import TenantId, parent, rest_path
from gateway.schemas.common import Rfc3339Time
from gateway.schemas.twin import ENTITY_ID, EntityCreate, ModelCreate, RuleCreate, TelemetryIn
from gateway.telemetry_ingests import TelemetryIngests, answer, message_of
from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["twin"])
Who = Annotated[Principal, Security(access("twin"))]
EntityId = Annotated[str, Path(pattern=ENTITY_ID, description="the entity's id")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=1024)]
_KINDS = {"number": 1, "boolean": 2, "integer": 3, "point": 4}


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _entity_name(tenant: str, entity: str) -> str:
    return f"{parent(tenant)}/entities/{entity}"


@router.post("/entities", status_code=201, summary="Create a digital twin entity")
@calls("grassroots.twin.v1.TwinService", "CreateEntity")
async def create_twin_entity(
    tenant: TenantId, body: EntityCreate, request: Request, who: Who
) -> Response:
    entity = pb.Entity(
        entity_type=body.entity_type,
        display_name=body.display_name,
        building=body.building,
        relationships=[pb.Relationship(type=r.type, target=r.target) for r in body.relationships],
    )
    if body.location is not None:
        entity.location.CopyFrom(
            geo_pb2.GeoPoint(
                longitude=body.location.longitude,
                latitude=body.location.latitude,
                crs=body.location.crs,
            )
        )
    rpc = request.app.state.upstreams.twin.CreateEntity(
        pb.CreateEntityRequest(
            parent=parent(tenant), entity=entity, entity_id=body.entity_id or ""
        ),
        metadata=call_metadata(who),
    )
    made = await call(rpc, strip_prefix="")
    return _json(_dict(made), 201, {"Location": rest_path(made.name)})


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    import json

    return Response(json.dumps(body), status, headers, media_type="application/json")


@router.get("/entities", summary="List digital twin entities")
@calls("grassroots.twin.v1.TwinService", "ListEntities")
async def list_twin_entities(
    tenant: TenantId,
    request: Request,
    who: Who,
    entity_type: Annotated[
        str | None,
        Query(max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="only this model"),
    ] = None,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> dict[str, Any]:
    rpc = request.app.state.upstreams.twin.ListEntities(
        pb.ListEntitiesRequest(
            parent=parent(tenant),
            filter=f'entity_type = "{entity_type}"' if entity_type else "",
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=call_metadata(who),
    )
    return _dict(await call(rpc))


@router.get("/entities/{entity}:listRelated", summary="Entities linked to an entity, either way")
@calls("grassroots.twin.v1.TwinService", "ListRelatedEntities")
async def related_entities(
    tenant: TenantId,
    entity: EntityId,
    request: Request,
    who: Who,
    direction: Annotated[
        Literal["outgoing", "incoming"],
        Query(description="outgoing: what it points to; incoming: what points to it"),
    ] = "outgoing",
    type: Annotated[str, Query(max_length=63, description="only relationships of this type")] = "",
) -> dict[str, Any]:
    rpc = request.app.state.upstreams.twin.ListRelatedEntities(
        pb.ListRelatedEntitiesRequest(
            name=_entity_name(tenant, entity),
            direction=(
                pb.ListRelatedEntitiesRequest.DIRECTION_INCOMING
                if direction == "incoming"
                else pb.ListRelatedEntitiesRequest.DIRECTION_OUTGOING
            ),
            relationship_type=type,
        ),
        metadata=call_metadata(who),
    )
    return _dict(await call(rpc))


@router.get("/entities/{entity}", summary="Get an entity with its latest values")
@calls("grassroots.twin.v1.TwinService", "GetEntity")
async def get_twin_entity(
    tenant: TenantId, entity: EntityId, request: Request, who: Who
) -> dict[str, Any]:
    rpc = request.app.state.upstreams.twin.GetEntity(
        pb.GetEntityRequest(name=_entity_name(tenant, entity)), metadata=call_metadata(who)
    )
    return _dict(await call(rpc))


@router.delete("/entities/{entity}", status_code=204, summary="Delete an entity")
@calls("grassroots.twin.v1.TwinService", "DeleteEntity")
async def delete_twin_entity(
    tenant: TenantId, entity: EntityId, request: Request, who: Who
) -> Response:
    rpc = request.app.state.upstreams.twin.DeleteEntity(
        pb.DeleteEntityRequest(name=_entity_name(tenant, entity)), metadata=call_metadata(who)
    )
    await call(rpc)
    return Response(status_code=204)


@router.post(":ingestTelemetry", summary="Ingest telemetry readings")
@calls("grassroots.twin.v1.TwinService", "IngestTelemetry")
async def ingest_telemetry(
    tenant: TenantId, body: TelemetryIn, request: Request, who: Who
) -> Response:
    """Each reading is accepted or refused on its own. 200 when at least one was accepted
    (the refused ones are listed with their index, column and reason); 422 when none was."""
    ingests: TelemetryIngests = request.app.state.telemetry_ingests
    message = message_of(parent(tenant), body)
    outcome = await call(
        ingests.ingest(
            request.app.state.upstreams.twin, message, call_metadata(who), who.to_metadata()
        )
    )
    return Response(answer(outcome), media_type="application/json")


@router.get(":queryHistory", summary="History of a property over entities, a model or an area")
@calls("grassroots.twin.v1.TwinService", "QueryHistory")
async def query_history(
    tenant: TenantId,
    request: Request,
    who: Who,
    property: Annotated[
        str, Query(max_length=63, description="the property, e.g. level_cm (required)")
    ] = "",
    start_time: Annotated[Rfc3339Time | None, Query(description="inclusive (required)")] = None,
    end_time: Annotated[Rfc3339Time | None, Query(description="exclusive (required)")] = None,
    entity: Annotated[list[str] | None, Query(max_length=100, description="entity ids")] = None,
    entity_type: Annotated[str, Query(max_length=63, description="only this model")] = "",
    bbox: Annotated[
        str | None, Query(max_length=200, description="min_lon,min_lat,max_lon,max_lat")
    ] = None,
    bucket_seconds: Annotated[
        int, Query(ge=0, le=366 * 86400, description="bucket width; 0 for raw readings")
    ] = 0,
    page_size: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    page_token: PageToken = "",
) -> dict[str, Any]:
    for value in entity or []:
        if not _matches(ENTITY_ID, value):
            why = f"{value[:60]!r} is not an entity id (a bare id such as gauge-1)"
            raise ApiError(400, f"entity: {why}", violations=[FieldViolation("entity", why)])
    message = pb.QueryHistoryRequest(
        parent=parent(tenant),
        entities=[_entity_name(tenant, e) for e in entity or []],
        entity_type=entity_type,
        property=property,
        start_time=_timestamp(start_time) if start_time else None,
        end_time=_timestamp(end_time) if end_time else None,
        page_size=page_size,
        page_token=page_token,
    )
    if bucket_seconds:
        message.bucket.CopyFrom(Duration(seconds=bucket_seconds))
    if bbox is not None:
        message.area.CopyFrom(_box(bbox))
    rpc = request.app.state.upstreams.twin.QueryHistory(message, metadata=call_metadata(who))
    return _dict(await call(rpc))


def _matches(pattern: str, value: str) -> bool:
    import re

    return re.match(pattern, value) is not None


def _timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def _box(text: str) -> pb.LonLatBox:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or not all(abs(x) < 1000 for x in parts):
        raise ApiError(
            400,
            "bbox: four numbers min_lon,min_lat,max_lon,max_lat",
            violations=[FieldViolation("bbox", "four numbers min_lon,min_lat,max_lon,max_lat")],
        )
    return pb.LonLatBox(
        min_longitude=parts[0], min_latitude=parts[1], max_longitude=parts[2], max_latitude=parts[3]
    )


@router.get("/models", summary="Models this tenant sees (built-in, its own, its ancestors')")
@calls("grassroots.twin.v1.TwinService", "ListModels")
async def list_twin_models(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> dict[str, Any]:
    rpc = request.app.state.upstreams.twin.ListModels(
        pb.ListModelsRequest(parent=parent(tenant), page_size=page_size, page_token=page_token),
        metadata=call_metadata(who),
    )
    return _dict(await call(rpc))


@router.post("/models", status_code=201, summary="Declare a model for this tenant and below")
@calls("grassroots.twin.v1.TwinService", "CreateModel")
async def create_twin_model(
    tenant: TenantId, body: ModelCreate, request: Request, who: Who
) -> Response:
    model = pb.Model(
        model_id=body.model_id,
        smart_data_model=body.smart_data_model,
        description=body.description,
        properties=[
            pb.PropertySpec(
                name=p.name,
                kind=_KINDS[p.kind],  # type: ignore[arg-type]
                unit=p.unit,
                minimum=p.minimum,
                maximum=p.maximum,
            )
            for p in body.properties
        ],
    )
    rpc = request.app.state.upstreams.twin.CreateModel(
        pb.CreateModelRequest(parent=parent(tenant), model=model), metadata=call_metadata(who)
    )
    return _json(_dict(await call(rpc, strip_prefix="")), 201)


@router.get("/rules", summary="Rules of this tenant and below")
@calls("grassroots.twin.v1.TwinService", "ListRules")
async def list_twin_rules(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> dict[str, Any]:
    rpc = request.app.state.upstreams.twin.ListRules(
        pb.ListRulesRequest(parent=parent(tenant), page_size=page_size, page_token=page_token),
        metadata=call_metadata(who),
    )
    return _dict(await call(rpc))


@router.post("/rules", status_code=201, summary="Create a rule that raises events")
@calls("grassroots.twin.v1.TwinService", "CreateRule")
async def create_twin_rule(
    tenant: TenantId, body: RuleCreate, request: Request, who: Who
) -> Response:
    conditions = (body.threshold, body.levels, body.inactivity, body.geofence)
    if sum(c is not None for c in conditions) != 1:
        raise ApiError(
            400,
            "give exactly one of threshold, levels, inactivity, geofence",
            violations=[
                FieldViolation(
                    "threshold", "exactly one of threshold, levels, inactivity, geofence"
                )
            ],
        )
    rule = pb.Rule(
        display_name=body.display_name,
        entity_type=body.entity_type,
        property=body.property,
        event_category=body.event_category,
        severity=body.severity,
    )
    if body.threshold is not None:
        t = body.threshold
        rule.threshold.CopyFrom(
            pb.Threshold(
                direction=(
                    pb.Threshold.DIRECTION_BELOW
                    if t.direction == "below"
                    else pb.Threshold.DIRECTION_ABOVE
                ),
                trigger=t.trigger,
                clear=t.clear,
                min_duration=Duration(seconds=t.min_duration_seconds),
            )
        )
    elif body.levels is not None:
        lv = body.levels
        rule.levels.CopyFrom(
            pb.Levels(
                bounds=lv.bounds, hysteresis=lv.hysteresis, event_from_level=lv.event_from_level
            )
        )
    elif body.inactivity is not None:
        rule.inactivity.CopyFrom(
            pb.Inactivity(silence=Duration(seconds=body.inactivity.silence_seconds))
        )
    elif body.geofence is not None:
        g = body.geofence
        rule.geofence.CopyFrom(
            pb.Geofence(
                layer=g.layer,
                mode=pb.Geofence.MODE_OUTSIDE if g.mode == "outside" else pb.Geofence.MODE_INSIDE,
                buffer_meters=g.buffer_meters,
                dwell=Duration(seconds=g.dwell_seconds),
            )
        )
        if g.stopped is not None:
            rule.geofence.stopped.speed_property = g.stopped.speed_property
            rule.geofence.stopped.at_most = g.stopped.at_most
    rpc = request.app.state.upstreams.twin.CreateRule(
        pb.CreateRuleRequest(parent=parent(tenant), rule=rule, rule_id=body.rule_id or ""),
        metadata=call_metadata(who),
    )
    return _json(_dict(await call(rpc, strip_prefix="")), 201)

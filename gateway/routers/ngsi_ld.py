"""NGSI-LD at `/ngsi-ld/v1`: FIWARE tools read and write the twin's entities unchanged.

Each route converts (gateway.ngsi_ld) and calls the twin's gRPC API, as every other REST
face does; answers and errors take NGSI-LD's shapes. The tenant is `NGSILD-Tenant`
(a tenant id or path) or, without it, the caller's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Header, Path, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import access, call_metadata, calls
from gateway.errors import from_rpc_error
from gateway.ngsi_ld.entities import (
    CORE_CONTEXT,
    Draft,
    Reading,
    TwinView,
    compact,
    entity_id_of,
    iso,
    parse_attributes,
    parse_entity,
    parse_urn,
    render,
    unit_code,
    urn,
)
from gateway.ngsi_ld.problems import NgsiLdError, bad_request
from gateway.ngsi_ld.query import (
    GeoQuery,
    parse_aggregations,
    parse_duration,
    parse_geo,
    parse_q,
    parse_timerel,
    q_holds,
)
from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.errors import InvalidArgument
from services.kit.principal import Principal

SERVICE = "grassroots.twin.v1.TwinService"
router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])
Who = Annotated[Principal, Security(access("twin"))]
EntityUrn = Annotated[str, Path(max_length=300, description="urn:ngsi-ld:<type>:<id>")]
TenantHeader = Annotated[
    str | None,
    Header(alias="NGSILD-Tenant", max_length=250, description="tenant id or path; yours if absent"),
]
Types = Annotated[
    str | None, Query(max_length=300, description="entity types (models), comma separated")
]
Ids = Annotated[
    str | None,
    Query(max_length=300, description="entity ids (urn:ngsi-ld:<type>:<id>), comma separated"),
]
QueryText = Annotated[
    str | None,
    Query(max_length=2000, description="NGSI-LD q: comparisons joined by ';' (and) and '|' (or)"),
]
GeoRel = Annotated[
    str | None,
    Query(max_length=300, description="near;maxDistance==<m>, near;minDistance==<m> or within"),
]
Geometry = Annotated[
    str | None, Query(max_length=300, description="Point (near) or Polygon (within)")
]
Coordinates = Annotated[
    str | None, Query(max_length=2000, description="the coordinates as JSON, e.g. [121.16,31.29]")
]
GeoPropertyName = Annotated[
    str | None, Query(max_length=300, description="only location is supported")
]
Attrs = Annotated[str | None, Query(max_length=300, description="attribute names, comma separated")]
Options = Annotated[
    str | None, Query(max_length=300, description="keyValues, count, temporalValues")
]
Limit = Annotated[str | None, Query(max_length=300, description="page size, at most 1000")]
Offset = Annotated[str | None, Query(max_length=300, description="entities to skip")]
Count = Annotated[
    str | None, Query(max_length=300, description="true: NGSILD-Results-Count header")
]
TimeRel = Annotated[str | None, Query(max_length=300, description="before, after or between")]
TimeAt = Annotated[str | None, Query(max_length=300, description="ISO 8601 date-time")]
EndTimeAt = Annotated[
    str | None, Query(max_length=300, description="ISO 8601 date-time, for between")
]
AggrMethods = Annotated[
    str | None, Query(max_length=300, description="avg, min, max, totalCount, comma separated")
]
AggrPeriod = Annotated[
    str | None, Query(max_length=300, description="ISO 8601 duration, e.g. PT1H")
]
LastN = Annotated[
    str | None, Query(max_length=300, description="only the last N instances per attribute")
]
LD_JSON = "application/ld+json"
CONTEXT_LINK = f'<{CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="{LD_JSON}"'
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# Entities a query in the gateway looks through before it answers TooManyResults.
MAX_SCANNED = 20_000
TWIN_PAGE = 1000
MAX_BODY_ATTRIBUTES = 200


# -- plumbing --------------------------------------------------------------------------------


def _tenant(who: Principal, header: str | None) -> str:
    """`tenants/{id}` of the request: the header's tenant, else the caller's."""
    if header is None or not header.strip():
        return tenancy.tenant_name(who.tenant)
    try:
        return tenancy.tenant_name(tenancy.path_of(header.strip(), "NGSILD-Tenant"))
    except InvalidArgument:
        raise NgsiLdError(
            400, "NGSILD-Tenant: a tenant id (sh-jiading-anting) or path", "NonexistentTenant"
        ) from None


async def _twin(awaitable: Any) -> Any:
    """A twin call; its failure in NGSI-LD's shape."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        error = from_rpc_error(exc)
        fields = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        raise NgsiLdError(error.http_status, fields or error.message) from None


async def _named_entity(request: Request, who: Principal, tenant: str, entity_urn: str) -> Any:
    """The twin's entity an NGSI-LD id names: 404 when there is none, or when it is of
    another type than the id says (`urn:ngsi-ld:Building:x` never reaches a gauge `x`)."""
    entity_type, entity_id = parse_urn(entity_urn)
    twin = request.app.state.upstreams.twin
    entity = await _twin(
        twin.GetEntity(
            pb.GetEntityRequest(name=f"{tenant}/entities/{entity_id}"),
            metadata=call_metadata(who),
        )
    )
    if entity.entity_type != entity_type:
        raise NgsiLdError(404, f"no {entity_type} with the id {entity_id!r}")
    return entity


async def _json_body(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", LD_JSON):
        raise NgsiLdError(415, "Content-Type: application/json or application/ld+json")
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise NgsiLdError(400, "the body is not JSON", "InvalidRequest") from None


def _wants_ld(request: Request) -> bool:
    return LD_JSON in request.headers.get("accept", "")


def _answer(
    request: Request, body: Any, context: Any, headers: dict[str, str] | None = None
) -> Response:
    """JSON-LD with `@context` when asked for, else JSON with the context in a Link."""
    extra = dict(headers or {})
    if _wants_ld(request):
        documents = body if isinstance(body, list) else [body]
        for document in documents:
            document["@context"] = context
        return JSONResponse(body, media_type=LD_JSON, headers=extra)
    extra["Link"] = CONTEXT_LINK
    return JSONResponse(body, media_type="application/json", headers=extra)


def _options(text: str | None) -> set[str]:
    return {o.strip() for o in (text or "").split(",") if o.strip()}


def _attrs(text: str | None) -> set[str] | None:
    if not text:
        return None
    return {compact(a.strip()) for a in text.split(",") if a.strip()}


def _request_context(request: Request, body: Any = None) -> Any:
    """The @context the caller used (body or Link header), echoed back; else the core one."""
    if isinstance(body, dict) and "@context" in body:
        return body["@context"]
    link = request.headers.get("link", "")
    if link.startswith("<") and ">" in link:
        return [link[1 : link.index(">")], CORE_CONTEXT]
    return CORE_CONTEXT


def _ms(moment: datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp() * 1000)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _view(entity: pb.Entity, target_types: dict[str, str]) -> TwinView:
    """What render needs, from the twin's message."""
    properties = []
    for value in entity.properties:
        observed = (
            value.observe_time.ToDatetime(tzinfo=UTC) if value.HasField("observe_time") else None
        )
        point = (value.point.longitude, value.point.latitude) if value.HasField("point") else None
        properties.append(Reading(value.property, value.value, value.unit, observed, point))
    relationships = [
        (r.type, r.target.rsplit("/", 1)[-1], target_types.get(r.target, "Entity"))
        for r in entity.relationships
    ]
    if entity.building:
        relationships.append(("refBuilding", entity.building.rsplit("/", 1)[-1], "Building"))
    return TwinView(
        entity_id=entity.name.rsplit("/", 1)[-1],
        entity_type=entity.entity_type,
        display_name=entity.display_name,
        location=(entity.location.longitude, entity.location.latitude)
        if entity.HasField("location")
        else None,
        properties=properties,
        relationships=relationships,
    )


async def _target_types(
    request: Request, who: Principal, entities: Iterable[pb.Entity]
) -> dict[str, str]:
    """The types of the entities relationships point to (their URNs carry the type)."""
    names = {r.target for e in entities for r in e.relationships}
    twin = request.app.state.upstreams.twin

    async def one(name: str) -> tuple[str, str]:
        try:
            found = await twin.GetEntity(
                pb.GetEntityRequest(name=name), metadata=call_metadata(who)
            )
        except grpc.aio.AioRpcError:
            return name, "Entity"
        return name, found.entity_type

    return dict(await asyncio.gather(*(one(n) for n in sorted(names)[:100])))


def _values(entity: pb.Entity) -> dict[str, Any]:
    """What `q` compares: property values, the display name as `name`."""
    values: dict[str, Any] = {v.property: v.value for v in entity.properties}
    if entity.display_name:
        values["name"] = entity.display_name
    return values


def _columns(tenant: str, entity_id: str, readings: list[Reading]) -> pb.TelemetryColumns:
    now = _ms(datetime.now(UTC))
    points = any(r.point is not None for r in readings)
    return pb.TelemetryColumns(
        entities=[f"{tenant}/entities/{entity_id}"] * len(readings),
        properties=[r.attribute for r in readings],
        values=[r.value for r in readings],
        observe_times_ms=[_ms(r.observed) or now for r in readings],
        units=[r.unit for r in readings] if any(r.unit for r in readings) else [],
        longitudes=[r.point[0] if r.point else 0.0 for r in readings] if points else [],
        latitudes=[r.point[1] if r.point else 0.0 for r in readings] if points else [],
    )


async def _write_values(
    request: Request, who: Principal, tenant: str, entity_id: str, readings: list[Reading]
) -> list[tuple[str, str]]:
    """Ingest the readings; (attribute, reason) of those the twin refused."""
    if not readings:
        return []
    twin = request.app.state.upstreams.twin
    outcome = await _twin(
        twin.IngestTelemetry(
            pb.IngestTelemetryRequest(parent=tenant, columns=_columns(tenant, entity_id, readings)),
            metadata=call_metadata(who),
        )
    )
    return [
        (readings[r.index].attribute, r.description or r.reason)
        for r in outcome.rejections
        if 0 <= r.index < len(readings)
    ]


# -- entities ------------------------------------------------------------------------------


@router.post("/entities", status_code=201, summary="NGSI-LD: create an entity")
@calls(SERVICE, "CreateEntity")
@calls(SERVICE, "IngestTelemetry")  # its numeric Properties are first readings
@calls(SERVICE, "DeleteEntity")  # undone when the model refuses one
async def create_entity(request: Request, who: Who, tenant_header: TenantHeader = None) -> Response:
    """The entity, its point and relationships; numeric and boolean Properties become its
    first readings (a value the model refuses undoes the create: 400)."""
    tenant = _tenant(who, tenant_header)
    draft = parse_entity(await _json_body(request))
    twin = request.app.state.upstreams.twin
    entity = pb.Entity(
        entity_type=draft.entity_type,
        display_name=draft.display_name,
        relationships=[
            pb.Relationship(type=kind, target=f"{tenant}/entities/{target}")
            for kind, target in draft.relationships
        ],
    )
    if draft.location is not None:
        entity.location.CopyFrom(
            geo_pb2.GeoPoint(longitude=draft.location[0], latitude=draft.location[1])
        )
    await _twin(
        twin.CreateEntity(
            pb.CreateEntityRequest(parent=tenant, entity=entity, entity_id=draft.entity_id),
            metadata=call_metadata(who),
        )
    )
    refused = await _write_values(request, who, tenant, draft.entity_id, draft.readings)
    if refused:
        await _twin(
            twin.DeleteEntity(
                pb.DeleteEntityRequest(name=f"{tenant}/entities/{draft.entity_id}"),
                metadata=call_metadata(who),
            )
        )
        raise bad_request("; ".join(f"{attribute}: {reason}" for attribute, reason in refused))
    location = f"/ngsi-ld/v1/entities/{urn(draft.entity_type, draft.entity_id)}"
    return Response(status_code=201, headers={"Location": location})


@router.get("/entities/{entity_id}", summary="NGSI-LD: retrieve an entity")
@calls(SERVICE, "GetEntity")
async def get_entity(
    entity_id: EntityUrn,
    request: Request,
    who: Who,
    tenant_header: TenantHeader = None,
    attrs: Attrs = None,
    options: Options = None,
) -> Response:
    tenant = _tenant(who, tenant_header)
    entity = await _named_entity(request, who, tenant, entity_id)
    types = await _target_types(request, who, [entity])
    document = render(
        _view(entity, types), attrs=_attrs(attrs), key_values="keyValues" in _options(options)
    )
    return _answer(request, document, _request_context(request))


@router.get("/entities", summary="NGSI-LD: query entities")
@calls(SERVICE, "ListEntities")
@calls(SERVICE, "GetEntity")  # the types of relationship targets
async def query_entities(
    request: Request,
    who: Who,
    tenant_header: TenantHeader = None,
    type: Types = None,
    id: Ids = None,
    q: QueryText = None,
    georel: GeoRel = None,
    geometry: Geometry = None,
    coordinates: Coordinates = None,
    geoproperty: GeoPropertyName = None,
    attrs: Attrs = None,
    options: Options = None,
    limit: Limit = None,
    offset: Offset = None,
    count: Count = None,
) -> Response:
    """By type, ids, `q` and `georel` (near, within); paged by limit and offset."""
    tenant = _tenant(who, tenant_header)
    opts = _options(options)
    want_count = count == "true" or "count" in opts
    size = _int(limit, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    skip = _int(offset, "offset", 0, 0, MAX_SCANNED)
    if size == 0 and not want_count:
        raise bad_request("limit=0 is for count=true")
    if not any((type, id, q, georel, attrs)):
        raise bad_request("give at least one of type, id, q, georel or attrs")
    query = parse_q(q) if q else None
    geo = parse_geo(georel, geometry, coordinates, geoproperty)
    wanted_ids = {entity_id_of(i.strip()) for i in id.split(",")} if id else None
    wanted_attrs = _attrs(attrs)
    types = [compact(t.strip()) for t in type.split(",")] if type else [""]
    matches: list[pb.Entity] = []
    for entity_type in types:
        async for entity in _scan(request, who, tenant, entity_type):
            if wanted_ids is not None and entity.name.rsplit("/", 1)[-1] not in wanted_ids:
                continue
            if query is not None and not q_holds(query, _values(entity)):
                continue
            if geo is not None and not geo.holds(_location(entity)):
                continue
            if wanted_attrs is not None and not _holds_any(entity, wanted_attrs):
                continue
            matches.append(entity)
    page = matches[skip : skip + size]
    target_types = await _target_types(request, who, page)
    documents = [
        render(_view(e, target_types), attrs=wanted_attrs, key_values="keyValues" in opts)
        for e in page
    ]
    headers = {"NGSILD-Results-Count": str(len(matches))} if want_count else {}
    return _answer(request, documents, _request_context(request), headers)


def _holds_any(entity: pb.Entity, names: set[str]) -> bool:
    """NGSI-LD's `attrs` in a query: entities with at least one of the attributes."""
    present = set(_values(entity)) | {r.type for r in entity.relationships}
    if entity.HasField("location"):
        present.add("location")
    return bool(present & names)


def _int(text: str | None, field: str, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise bad_request(f"{field}: a whole number from {low} to {high}")
    return int(text)


def _location(entity: pb.Entity) -> tuple[float, float] | None:
    if entity.HasField("location"):
        return entity.location.longitude, entity.location.latitude
    return None


async def _scan(request: Request, who: Principal, tenant: str, entity_type: str):  # type: ignore[no-untyped-def]
    """The tenant subtree's entities (of one type), page by page."""
    twin = request.app.state.upstreams.twin
    token, seen = "", 0
    while True:
        response = await _twin(
            twin.ListEntities(
                pb.ListEntitiesRequest(
                    parent=tenant,
                    page_size=TWIN_PAGE,
                    page_token=token,
                    filter=f'entity_type = "{entity_type}"' if entity_type else "",
                ),
                metadata=call_metadata(who),
            )
        )
        for entity in response.entities:
            yield entity
        seen += len(response.entities)
        token = response.next_page_token
        if not token:
            return
        if seen >= MAX_SCANNED:
            raise NgsiLdError(
                403,
                f"more than {MAX_SCANNED} entities to look through; narrow by type",
                "TooManyResults",
            )


@router.patch("/entities/{entity_id}/attrs", status_code=204, summary="NGSI-LD: update attributes")
@calls(SERVICE, "GetEntity")  # 404 before anything is written
@calls(SERVICE, "IngestTelemetry")
async def update_attributes(
    entity_id: EntityUrn, request: Request, who: Who, tenant_header: TenantHeader = None
) -> Response:
    """New values for numeric, boolean and point properties, as readings; 207 names
    those the model refused."""
    return await _update(entity_id, request, who, tenant_header, None)


@router.post("/entities/{entity_id}/attrs", status_code=204, summary="NGSI-LD: append attributes")
@calls(SERVICE, "GetEntity")  # 404 before anything is written
@calls(SERVICE, "IngestTelemetry")
async def append_attributes(
    entity_id: EntityUrn, request: Request, who: Who, tenant_header: TenantHeader = None
) -> Response:
    return await _update(entity_id, request, who, tenant_header, None)


@router.patch(
    "/entities/{entity_id}/attrs/{attribute}",
    status_code=204,
    summary="NGSI-LD: update one attribute",
)
@calls(SERVICE, "GetEntity")  # 404 before anything is written
@calls(SERVICE, "IngestTelemetry")
async def update_attribute(
    entity_id: EntityUrn,
    attribute: Annotated[str, Path(max_length=300, description="the attribute's name")],
    request: Request,
    who: Who,
    tenant_header: TenantHeader = None,
) -> Response:
    return await _update(entity_id, request, who, tenant_header, compact(attribute))


async def _update(
    entity_id: str, request: Request, who: Principal, tenant_header: str | None, one: str | None
) -> Response:
    tenant = _tenant(who, tenant_header)
    the_id = entity_id_of(entity_id)
    # Another tenant's, another type's or an unknown entity: 404 whatever the body,
    # before anything is written.
    await _named_entity(request, who, tenant, entity_id)
    body = await _json_body(request)
    if one is not None:
        body = {one: body}
    if isinstance(body, dict) and len(body) > MAX_BODY_ATTRIBUTES:
        raise bad_request(f"at most {MAX_BODY_ATTRIBUTES} attributes")
    draft: Draft = parse_attributes(body)
    if draft.relationships or draft.display_name:
        raise NgsiLdError(400, "only property values can be updated here", "OperationNotSupported")
    refused = await _write_values(request, who, tenant, the_id, draft.readings)
    if not refused:
        return Response(status_code=204)
    refused_names = {name for name, _ in refused}
    return JSONResponse(
        {
            "updated": [r.attribute for r in draft.readings if r.attribute not in refused_names],
            "notUpdated": [{"attributeName": name, "reason": reason} for name, reason in refused],
        },
        status_code=207,
    )


@router.delete("/entities/{entity_id}", status_code=204, summary="NGSI-LD: delete an entity")
@calls(SERVICE, "GetEntity")  # the id's type must be the entity's
@calls(SERVICE, "DeleteEntity")
async def delete_entity(
    entity_id: EntityUrn, request: Request, who: Who, tenant_header: TenantHeader = None
) -> Response:
    tenant = _tenant(who, tenant_header)
    entity = await _named_entity(request, who, tenant, entity_id)
    name = entity.name
    await _twin(
        request.app.state.upstreams.twin.DeleteEntity(
            pb.DeleteEntityRequest(name=name), metadata=call_metadata(who)
        )
    )
    return Response(status_code=204)


# -- temporal ------------------------------------------------------------------------------

HISTORY_DEFAULT_DAYS = 7


@router.get("/temporal/entities/{entity_id}", summary="NGSI-LD: an entity's history")
@calls(SERVICE, "QueryHistory")
@calls(SERVICE, "GetEntity")
async def temporal_entity(
    entity_id: EntityUrn,
    request: Request,
    who: Who,
    tenant_header: TenantHeader = None,
    attrs: Attrs = None,
    timerel: TimeRel = None,
    timeAt: TimeAt = None,  # noqa: N803 - NGSI-LD's parameter names
    endTimeAt: EndTimeAt = None,  # noqa: N803
    options: Options = None,
    aggrMethods: AggrMethods = None,  # noqa: N803
    aggrPeriodDuration: AggrPeriod = None,  # noqa: N803
    lastN: LastN = None,  # noqa: N803
) -> Response:
    """Readings in a time range (the last week without one), raw or aggregated per period."""
    tenant = _tenant(who, tenant_header)
    entity = await _named_entity(request, who, tenant, entity_id)
    documents = await _temporal(
        request,
        who,
        tenant,
        [entity],
        attrs,
        timerel,
        timeAt,
        endTimeAt,
        options,
        aggrMethods,
        aggrPeriodDuration,
        lastN,
        None,
    )
    return _answer(request, documents[0], _request_context(request))


@router.get("/temporal/entities", summary="NGSI-LD: history across entities")
@calls(SERVICE, "QueryHistory")
@calls(SERVICE, "ListEntities")
async def temporal_query(
    request: Request,
    who: Who,
    tenant_header: TenantHeader = None,
    type: Types = None,
    attrs: Attrs = None,
    q: QueryText = None,
    georel: GeoRel = None,
    geometry: Geometry = None,
    coordinates: Coordinates = None,
    timerel: TimeRel = None,
    timeAt: TimeAt = None,  # noqa: N803
    endTimeAt: EndTimeAt = None,  # noqa: N803
    options: Options = None,
    aggrMethods: AggrMethods = None,  # noqa: N803
    aggrPeriodDuration: AggrPeriod = None,  # noqa: N803
    lastN: LastN = None,  # noqa: N803
    limit: Limit = None,
) -> Response:
    """Across a model or an area (Orion-LD answers 501 here): needs type and timerel."""
    tenant = _tenant(who, tenant_header)
    if not type or not timerel:
        raise bad_request("a temporal query across entities needs type and timerel")
    query = parse_q(q) if q else None
    geo = parse_geo(georel, geometry, coordinates, None)
    size = _int(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    entities = []
    async for entity in _scan(request, who, tenant, compact(type)):
        if query is not None and not q_holds(query, _values(entity)):
            continue
        if geo is not None and not geo.holds(_location(entity)):
            continue
        entities.append(entity)
        if len(entities) >= size:
            break
    documents = await _temporal(
        request,
        who,
        tenant,
        entities,
        attrs,
        timerel,
        timeAt,
        endTimeAt,
        options,
        aggrMethods,
        aggrPeriodDuration,
        lastN,
        geo,
    )
    return _answer(request, documents, _request_context(request))


async def _temporal(
    request: Request,
    who: Principal,
    tenant: str,
    entities: list[pb.Entity],
    attrs: str | None,
    timerel: str | None,
    time_at: str | None,
    end_time_at: str | None,
    options: str | None,
    aggr_methods: str | None,
    aggr_period: str | None,
    last_n: str | None,
    geo: GeoQuery | None,
) -> list[dict[str, Any]]:
    span = parse_timerel(timerel, time_at, end_time_at)
    now = datetime.now(UTC)
    end = span.end or now + timedelta(seconds=1)
    start = span.start or end - timedelta(days=HISTORY_DEFAULT_DAYS)
    methods = parse_aggregations(aggr_methods) if aggr_methods else None
    bucket = parse_duration(aggr_period) if aggr_period else None
    if methods and bucket is None:
        bucket = end - start
    newest = _int(last_n, "lastN", 0, 0, 10_000)
    temporal_values = "temporalValues" in _options(options)
    wanted = _attrs(attrs)
    properties = sorted(
        {v.property for e in entities for v in e.properties if not v.HasField("point")}
    )
    if wanted is not None:
        properties = [p for p in properties if p in wanted]
    twin = request.app.state.upstreams.twin
    by_entity: dict[str, dict[str, list[pb.HistoryPoint]]] = {e.name: {} for e in entities}
    units = {(e.name, v.property): v.unit for e in entities for v in e.properties}
    for prop in properties:
        message = pb.QueryHistoryRequest(
            parent=tenant,
            entities=[e.name for e in entities],
            property=prop,
            start_time=_timestamp(start),
            end_time=_timestamp(end),
            page_size=10_000,
        )
        if bucket is not None:
            message.bucket.CopyFrom(Duration(seconds=int(bucket.total_seconds())))
        response = await _twin(twin.QueryHistory(message, metadata=call_metadata(who)))
        for point in response.points:
            by_entity.setdefault(point.entity, {}).setdefault(prop, []).append(point)
    documents = []
    for entity in entities:
        doc: dict[str, Any] = {
            "id": urn(entity.entity_type, entity.name.rsplit("/", 1)[-1]),
            "type": entity.entity_type,
        }
        for prop, points in by_entity.get(entity.name, {}).items():
            if newest:
                points = points[-newest:]
            unit = unit_code(units.get((entity.name, prop), ""))
            doc[prop] = _series(points, methods, bucket, temporal_values, unit)
        documents.append(doc)
    return documents


def _series(
    points: list[pb.HistoryPoint],
    methods: tuple[str, ...] | None,
    bucket: timedelta | None,
    temporal_values: bool,
    unit: str,
) -> Any:
    def at(point: pb.HistoryPoint) -> datetime:
        return point.time.ToDatetime(tzinfo=UTC)

    if methods:
        assert bucket is not None
        series: dict[str, Any] = {"type": "Property"}
        pick = {"avg": "mean", "min": "min", "max": "max", "totalCount": "count"}
        for method in methods:
            series[method] = [
                [getattr(p, pick[method]), iso(at(p)), iso(at(p) + bucket)] for p in points
            ]
        return series
    if temporal_values:
        return {"type": "Property", "values": [[p.mean, iso(at(p))] for p in points]}
    instances = []
    for p in points:
        instance: dict[str, Any] = {"type": "Property", "value": p.mean, "observedAt": iso(at(p))}
        if unit:
            instance["unitCode"] = unit
        instances.append(instance)
    return instances

"""REST for the events component: report, read and list events."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Header, Path, Query, Request, Response, Security
from fastapi.responses import StreamingResponse
from google.protobuf import field_mask_pb2, timestamp_pb2

from gateway.auth import access, call_metadata, calls
from gateway.errors import ApiError, call, from_rpc_error
from gateway.event_creates import EventCreates
from gateway.event_reads import EventReads
from gateway.idempotency import HEADER, KEY_DESCRIPTION, parse_key
from gateway.paths import (
    VILLAGE_FILTER_DESCRIPTION,
    TenantId,
    filter_value,
    parent,
    rest_path,
    time_filter,
    village_filter,
)
from gateway.schemas.common import Rfc3339Time
from gateway.schemas.contract import query
from gateway.schemas.events import (
    REQUEST_ID_PATTERN,
    CategoryIn,
    CategoryList,
    CategoryOut,
    CommentIn,
    EvaluationIn,
    EventCreate,
    EventList,
    EventOut,
    EventPatch,
    EventStatisticsOut,
    StateName,
    TransitionIn,
)
from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit.errors import FieldViolation
from services.kit.filtering import quote
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/tenants/{tenant}/events", tags=["events"])
categories_router = APIRouter(prefix="/v1/tenants/{tenant}/categories", tags=["events"])
Who = Annotated[Principal, Security(access("events"))]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
KEY_MAX_LENGTH = 130  # an Idempotency-Key header: a request_id's 128, maybe quoted
SSE_KEEPALIVE_SECONDS = 15.0
Village = Annotated[str | None, Query(max_length=250, description=VILLAGE_FILTER_DESCRIPTION)]


_SOURCE_NAMES: dict[int, str] = {
    number: name.removeprefix("SOURCE_").lower() for name, number in pb.Event.Source.items()
} | {int(pb.Event.SOURCE_UNSPECIFIED): "resident"}  # unset: a resident's report, as events reads it
_STATE_NAMES: dict[int, str] = {
    number: name.removeprefix("STATE_").lower() for name, number in pb.Event.State.items()
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# As pydantic writes JSON: compact, UTF-8 as it is.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _time(stamp: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC as pydantic writes a datetime (`Z`, microseconds unless zero)."""
    moment = _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def event_fields(event: pb.Event) -> dict[str, Any]:
    """An event as `EventOut` has it, in its field order: plain values, ready for JSON."""
    location = event.location
    return {
        "id": event.name.rsplit("/", 1)[-1],
        "name": event.name,
        "category": event.category,
        "description": event.description,
        "location": {
            "longitude": location.longitude,
            "latitude": location.latitude,
            "crs": location.crs or "EPSG:4326",
        },
        "source": _SOURCE_NAMES[event.source],
        "state": _STATE_NAMES[event.state],
        "village": event.village,
        "grid_cell": event.grid_cell,
        "grid_worker": event.grid_worker,
        "create_time": _time(event.create_time),
        "update_time": _time(event.update_time),
        "etag": event.etag,
        "duplicate_of": event.duplicate_of.rsplit("/", 1)[-1] if event.duplicate_of else None,
        "timeline": [
            {
                "actor": t.actor,
                "time": _time(t.time),
                "from_state": _STATE_NAMES[t.from_state] if t.from_state else None,
                "to_state": _STATE_NAMES[t.to_state],
                "note": t.note,
            }
            for t in event.timeline
        ],
        "evaluation": {
            "score": event.evaluation.score,
            "text": event.evaluation.text,
            "time": _time(event.evaluation.time),
        }
        if event.HasField("evaluation")
        else None,
        "comments": [
            {"author": c.author, "text": c.text, "create_time": _time(c.create_time)}
            for c in event.comments
        ],
        "severity": event.severity,
        "media_uris": list(event.media_uris),
        "reporter_contact": event.reporter_contact,
        "address": event.address,
        "parent": event.parent.rsplit("/", 1)[-1] if event.parent else None,
        "entity": event.entity,
    }


def event_out(event: pb.Event) -> EventOut:
    return EventOut.model_validate(event_fields(event))


def event_json(
    event: pb.Event, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """An event as JSON, written straight from the message: the bytes `EventOut` would
    give (tests/unit/gateway/test_event_json.py), without building and validating the
    model per answer."""
    return Response(
        content=_JSON.encode(event_fields(event)).encode(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


# Offsets are the bus's int64 positions; a larger one is a bad request, not an overflow.
MAX_OFFSET = 2**63 - 1
_OFFSET = re.compile(r"[0-9]{1,19}")


@router.post(
    "",
    status_code=201,
    response_model=EventOut,
    summary="Report an event",
    responses={400: {"description": "a field is wrong"}, 503: {"description": "retry"}},
)
@calls("grassroots.events.v1.EventsService", "CreateEvent")
async def create_event(
    tenant: TenantId,
    body: EventCreate,
    request: Request,
    who: Who,
    idempotency_key: Annotated[
        str | None, Header(alias=HEADER, max_length=KEY_MAX_LENGTH, description=KEY_DESCRIPTION)
    ] = None,
) -> Response:
    """Record a report; it is located in its village and grid cell before it is stored.

    Retrying with the same `request_id` (or `Idempotency-Key` header) returns the first
    event (header `Idempotent-Replayed: true`), never a second one.
    """
    message = create_request(tenant, body, idempotency_key)
    return await report(request.app.state, message, who)


def create_request(
    tenant: str, body: EventCreate, idempotency_key: str | None
) -> pb.CreateEventRequest:
    """The CreateEvent call for a report; 400 when its key is missing or malformed."""
    return pb.CreateEventRequest(
        parent=parent(tenant),
        request_id=_request_id(body.request_id, idempotency_key),
        event=pb.Event(
            category=body.category,
            description=body.description,
            location=geo_pb2.GeoPoint(
                longitude=body.location.longitude,
                latitude=body.location.latitude,
                crs=body.location.crs,
            ),
            source=pb.Event.Source.Value(f"SOURCE_{body.source.upper()}"),
            severity=body.severity,
            media_uris=body.media_uris,
            reporter_contact=body.reporter_contact,
            address=body.address,
        ),
    )


async def report(state: Any, message: pb.CreateEventRequest, who: Principal) -> Response:
    """`create_event`'s answer, the gateway's fast path's too (gateway/fast_events.py):
    the report stored (coalesced with others of the caller's, ADR 28), 201."""
    creates: EventCreates = state.event_creates
    event, replayed = await call(
        creates.create(state.upstreams.events, message, call_metadata(who), who.to_metadata()),
        strip_prefix="event.",
    )
    return event_json(
        event,
        201,
        {"Idempotent-Replayed": "true" if replayed else "false", "Location": rest_path(event.name)},
    )


def _request_id(in_body: str | None, header: str | None) -> str:
    """The report's key, from the body or the IETF header; both must agree when both come."""
    key = parse_key(header) if header is not None else None
    if key is not None and not re.match(REQUEST_ID_PATTERN, key):
        raise ApiError(
            400,
            f"{HEADER}: up to 128 letters, digits and ._:- for an event",
            violations=[FieldViolation(HEADER, "must match " + REQUEST_ID_PATTERN)],
        )
    if in_body is not None and key is not None and in_body != key:
        raise ApiError(
            400,
            f"{HEADER} and request_id differ; send one, or the same in both",
            violations=[FieldViolation(HEADER, "differs from request_id in the body")],
        )
    chosen = in_body or key
    if not chosen:
        raise ApiError(
            400,
            "request_id: send it in the body or as the Idempotency-Key header",
            violations=[FieldViolation("request_id", "is required (or an Idempotency-Key)")],
        )
    return chosen


@router.get(
    ":stream",
    summary="Every change in your tenant subtree as server-sent events, resumable",
    response_class=StreamingResponse,
)
@calls("grassroots.events.v1.EventsService", "WatchEvents")
async def stream_events(
    tenant: TenantId,
    request: Request,
    who: Who,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_OFFSET, description="resume after this offset")
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """`id:` is the change's offset; reconnecting with `Last-Event-ID` resumes after it.

    Without `after` or `Last-Event-ID` the stream starts with the next change.
    """
    start = after
    if start is None and last_event_id is not None:
        # ASCII digits only: str.isdigit() also says yes to "²" and "١٢٣".
        if not _OFFSET.fullmatch(last_event_id) or int(last_event_id) > MAX_OFFSET:
            raise ApiError(
                400,
                "Last-Event-ID must be an offset",
                violations=[FieldViolation("Last-Event-ID", "is not an offset")],
            )
        start = int(last_event_id)
    call_ = request.app.state.upstreams.events.WatchEvents(
        pb.WatchEventsRequest(parent=parent(tenant), after_offset=-1 if start is None else start),
        metadata=call_metadata(who),
    )
    try:
        await call_.wait_for_connection()
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None
    queue: asyncio.Queue[pb.WatchEventsResponse | BaseException] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for item in call_:
                await queue.put(item)
        except BaseException as exc:  # the stream ended or failed: tell the writer
            await queue.put(exc)

    async def body() -> AsyncIterator[str]:
        task = asyncio.create_task(pump())
        try:
            yield ": connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if isinstance(item, BaseException):
                    return
                data = _JSON.encode(event_fields(item.event))
                yield f"id: {item.offset}\nevent: {item.type}\ndata: {data}\n\n"
        finally:
            call_.cancel()
            task.cancel()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{event}", response_model=EventOut, summary="Get an event")
@calls("grassroots.events.v1.EventsService", "GetEvent")
async def get_event(
    tenant: TenantId,
    event: Annotated[str, Path(pattern=ID_PATTERN)],
    request: Request,
    who: Who,
) -> Response:
    """An event of the caller's tenant subtree; any other id answers 404."""
    return await read(request.app.state, tenant, event, who)


async def read(state: Any, tenant: str, event: str, who: Principal) -> Response:
    """`get_event`'s answer, the gateway's fast path's too (gateway/fast_events.py): the
    event, read with others of the caller's that arrive together (gateway/event_reads.py)."""
    reads: EventReads = state.event_reads
    found = reads.get(
        state.upstreams.events, _name(tenant, event), call_metadata(who), who.to_metadata()
    )
    return event_json(await call(found))


def _filter_text(
    terms: dict[str, str | None],
    created_from: datetime | None,
    created_before: datetime | None,
    text: str | None,
) -> str:
    # Each term is named as its query parameter is, so a bad value names the parameter.
    parts = [
        f'{name} = "{quote(filter_value(value, name) or "")}"'
        for name, value in terms.items()
        if value is not None
    ]
    if created_from is not None:
        parts.append(f'create_time >= "{time_filter(created_from)}"')
    if created_before is not None:
        parts.append(f'create_time < "{time_filter(created_before)}"')
    if text:
        parts.append(f'description : "{quote(filter_value(text, "q") or "")}"')
    return " AND ".join(parts)


@router.get("", response_model=EventList, summary="List events")
@calls("grassroots.events.v1.EventsService", "ListEvents")
async def list_events(
    tenant: TenantId,
    request: Request,
    who: Who,
    grid_cell: Annotated[str | None, Query(max_length=64)] = None,
    village: Village = None,
    category: Annotated[str | None, query(pb.Event, "category")] = None,
    state: StateName | None = None,
    parent_event: Annotated[
        str | None,
        Query(alias="parent", description="the parts of this joint application (an event id)"),
    ] = None,
    created_from: Annotated[Rfc3339Time | None, Query(description="inclusive")] = None,
    created_before: Annotated[Rfc3339Time | None, Query(description="exclusive")] = None,
    q: Annotated[str | None, Query(max_length=200, description="words in the description")] = None,
    order: Literal["newest", "oldest"] = "newest",
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str, Query(max_length=512)] = "",
) -> EventList:
    """Events of the caller's tenant subtree, filtered and paged by `next_page_token`."""
    terms = {
        "grid_cell": grid_cell,
        "village": village_filter(village),
        "category": category,
        "state": state,
        "parent": parent_event,
    }
    rpc = request.app.state.upstreams.events.ListEvents(
        pb.ListEventsRequest(
            parent=parent(tenant),
            filter=_filter_text(terms, created_from, created_before, q),
            order_by="create_time asc" if order == "oldest" else "create_time desc",
            page_size=page_size,
            page_token=page_token,
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return EventList(
        events=[event_out(e) for e in response.events], next_page_token=response.next_page_token
    )


@router.get(":statistics", response_model=EventStatisticsOut, summary="Figures for dashboards")
@calls("grassroots.events.v1.EventsService", "GetEventStatistics")
async def event_statistics(
    tenant: TenantId,
    request: Request,
    who: Who,
    grid_cell: Annotated[str | None, Query(max_length=64)] = None,
    village: Village = None,
    category: Annotated[str | None, query(pb.Event, "category")] = None,
    created_from: Annotated[Rfc3339Time | None, Query(description="inclusive")] = None,
    created_before: Annotated[Rfc3339Time | None, Query(description="exclusive")] = None,
) -> EventStatisticsOut:
    """Counts by state, category, grid cell and day; SLA breach rate; time to resolve."""
    terms = {
        "grid_cell": grid_cell,
        "village": village_filter(village),
        "category": category,
    }
    stats = await call(
        request.app.state.upstreams.events.GetEventStatistics(
            pb.GetEventStatisticsRequest(
                parent=parent(tenant),
                filter=_filter_text(terms, created_from, created_before, None),
            ),
            metadata=call_metadata(who),
        )
    )
    return EventStatisticsOut(
        total=stats.total,
        by_state=dict(stats.by_state),
        by_category=dict(stats.by_category),
        by_grid_cell=dict(stats.by_grid_cell),
        by_village=dict(stats.by_village),
        by_day=dict(sorted(stats.by_day.items())),
        sla_breach_rate=stats.sla_breach_rate,
        resolved_count=stats.resolved_count,
        mean_hours_to_resolve=stats.mean_hours_to_resolve,
    )


def _name(tenant: str, event: str) -> str:
    """`tenants/{tenant}/events/{event}`: the event must lie in the tenant's subtree."""
    return f"{parent(tenant)}/events/{event}"


@router.patch("/{event}", response_model=EventOut, summary="Correct an event's category or place")
@calls("grassroots.events.v1.EventsService", "UpdateEvent")
async def update_event(
    tenant: TenantId,
    event: Annotated[str, Path(pattern=ID_PATTERN)],
    body: EventPatch,
    request: Request,
    who: Who,
) -> EventOut:
    """Staff (`events:manage`) correct an open event; it keeps its state, its timeline
    says what changed, and dispatch routes it again (a new category may have another
    handler). Send only the fields to change. The new place must lie in the event's
    village; a finished event is 400."""
    mask = [field for field in ("category", "location") if field in body.model_fields_set]
    given = pb.Event(name=_name(tenant, event), etag=body.etag)
    if body.category is not None:
        given.category = body.category
    if body.location is not None:
        given.location.CopyFrom(
            geo_pb2.GeoPoint(
                longitude=body.location.longitude,
                latitude=body.location.latitude,
                crs=body.location.crs,
            )
        )
    rpc = request.app.state.upstreams.events.UpdateEvent(
        pb.UpdateEventRequest(
            event=given, update_mask=field_mask_pb2.FieldMask(paths=mask), note=body.note
        ),
        metadata=call_metadata(who),
    )
    return event_out(await call(rpc, strip_prefix="event."))


@router.post("/{event}:transition", response_model=EventOut, summary="Move an event on")
@calls("grassroots.events.v1.EventsService", "TransitionEvent")
async def transition_event(
    tenant: TenantId,
    event: Annotated[str, Path(pattern=ID_PATTERN)],
    body: TransitionIn,
    request: Request,
    who: Who,
) -> EventOut:
    """An illegal move is 400 naming the current state; a stale etag is 409."""
    rpc = request.app.state.upstreams.events.TransitionEvent(
        pb.TransitionEventRequest(
            name=_name(tenant, event),
            state=getattr(pb.Event, f"STATE_{body.state.upper()}"),
            note=body.note,
            etag=body.etag,
            duplicate_of=_name(tenant, body.duplicate_of) if body.duplicate_of else "",
        ),
        metadata=call_metadata(who),
    )
    return event_out(await call(rpc))


@router.post("/{event}:evaluate", response_model=EventOut, summary="Rate a resolved event")
@calls("grassroots.events.v1.EventsService", "EvaluateEvent")
async def evaluate_event(
    tenant: TenantId,
    event: Annotated[str, Path(pattern=ID_PATTERN)],
    body: EvaluationIn,
    request: Request,
    who: Who,
) -> EventOut:
    """The reporter's 1-5 score and words; it closes the event."""
    rpc = request.app.state.upstreams.events.EvaluateEvent(
        pb.EvaluateEventRequest(
            name=_name(tenant, event), score=body.score, text=body.text, etag=body.etag
        ),
        metadata=call_metadata(who),
    )
    return event_out(await call(rpc))


@router.post(
    "/{event}/comments", response_model=EventOut, status_code=201, summary="Comment on an event"
)
@calls("grassroots.events.v1.EventsService", "AddComment")
async def add_comment(
    tenant: TenantId,
    event: Annotated[str, Path(pattern=ID_PATTERN)],
    body: CommentIn,
    request: Request,
    who: Who,
) -> EventOut:
    rpc = request.app.state.upstreams.events.AddComment(
        pb.AddCommentRequest(name=_name(tenant, event), text=body.text), metadata=call_metadata(who)
    )
    return event_out(await call(rpc))


def _category_out(category: pb.Category) -> CategoryOut:
    return CategoryOut(
        name=category.name,
        code=category.code,
        display_name=category.display_name,
        default_severity=category.default_severity,
        sla_minutes=category.sla_minutes,
        duplicate_radius_meters=category.duplicate_radius_meters,
        duplicate_window_minutes=category.duplicate_window_minutes,
        public=category.public,
        joint_categories=list(category.joint_categories),
    )


@categories_router.get("", response_model=CategoryList, summary="Categories you can report")
@calls("grassroots.events.v1.EventsService", "ListCategories")
async def list_categories(tenant: TenantId, request: Request, who: Who) -> CategoryList:
    """Built-in, inherited from the levels above, and your tenant's own."""
    response = await call(
        request.app.state.upstreams.events.ListCategories(
            pb.ListCategoriesRequest(parent=parent(tenant), page_size=1000),
            metadata=call_metadata(who),
        )
    )
    return CategoryList(categories=[_category_out(c) for c in response.categories])


@categories_router.post(
    "", response_model=CategoryOut, status_code=201, summary="Define a category"
)
@calls("grassroots.events.v1.EventsService", "CreateCategory")
async def define_category(
    tenant: TenantId, body: CategoryIn, request: Request, who: Who
) -> CategoryOut:
    """For your tenant's subtree; needs the events:configure scope."""
    created = await call(
        request.app.state.upstreams.events.CreateCategory(
            pb.CreateCategoryRequest(
                parent=parent(tenant),
                category=pb.Category(
                    code=body.code,
                    display_name=body.display_name,
                    default_severity=body.default_severity,
                    sla_minutes=body.sla_minutes,
                    duplicate_radius_meters=body.duplicate_radius_meters,
                    duplicate_window_minutes=body.duplicate_window_minutes,
                    public=body.public,
                    joint_categories=body.joint_categories,
                ),
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="category.",
    )
    return _category_out(created)

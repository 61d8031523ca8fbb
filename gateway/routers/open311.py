"""Open311 GeoReport v2 over the events component, in JSON and XML.

Civic apps built for Open311 (https://wiki.open311.org/GeoReport_v2) report into our
event hub and follow their reports without learning our API: a service is an event
category, a service request is an event. Every path ends in `.json` or `.xml`, as the
spec has it, and failures on these routes use Open311's `errors` shape in that format
instead of the gateway's own error body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gateway.auth import access, call_metadata, calls, public_or_access
from gateway.errors import ApiError, call
from gateway.schemas.common import rfc3339_time
from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import limits, tenancy
from services.kit.errors import InvalidArgument
from services.kit.filtering import quote
from services.kit.principal import Principal

FORMATS = ("json", "xml")
JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Open311's default window and volume for GET requests.
DEFAULT_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
# A report resubmitted by the same reporter with the same words at the same place
# within this window is the same report (a client's retry); later, or once the first
# is finished, it is a new one.
RESUBMIT_WINDOW = timedelta(minutes=10)
# How many earlier reports of the same words a resubmission looks past.
MAX_RESUBMISSIONS = 50
REPLAYED_METADATA_KEY = "x-idempotent-replayed"
MAX_DESCRIPTION_CHARS = limits.of(pb.Event, "description").max_length
MAX_IDS = 100
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Open311's "closed": nothing more will happen (the events filter `status` agrees).
_CLOSED_STATES = {"closed", "rejected", "duplicate", "withdrawn"}
# Our field paths (after "event.") as Open311 clients know them.
_FIELD_NAMES = {
    "category": "service_code",
    "location": "lat/long",
    "location.latitude": "lat",
    "location.longitude": "long",
    "address": "address_string",
    "media_uris": "media_url",
    "media_uris[0]": "media_url",
}

Fmt = Annotated[Literal["json", "xml"], Path(description="response format")]
Who = Annotated[Principal, Security(access("events"))]
# Reads are public, as GeoReport v2 intends: without credentials a caller reads the
# categories a village marks public, without personal fields; a key reads as its app.
Reader = Annotated[Principal, Security(public_or_access("events"))]
Jurisdiction = Annotated[
    str | None,
    Query(
        description="a tenant id such as sh-jiading-anting-xingming to read; "
        "other values mean this whole deployment"
    ),
]


@dataclass(frozen=True)
class Problem:
    """One entry of an Open311 `errors` list."""

    code: int
    description: str


class Open311Error(Exception):
    """A failure answered in Open311's error shape with `http_status`."""

    def __init__(
        self,
        http_status: int,
        problems: list[Problem],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join(p.description for p in problems))
        self.http_status = http_status
        self.problems = problems
        self.headers = headers or {}

    @classmethod
    def of(cls, http_status: int, field: str, description: str) -> Open311Error:
        return cls(http_status, [Problem(http_status, f"{field}: {description}")])

    @classmethod
    def from_api_error(cls, exc: ApiError) -> Open311Error:
        """A component's failure, its field paths renamed to Open311's parameters."""
        problems = [
            Problem(exc.http_status, f"{_FIELD_NAMES.get(v.field, v.field)}: {v.description}")
            for v in exc.violations
        ] or [Problem(exc.http_status, exc.message)]
        return cls(exc.http_status, problems, exc.headers)

    def response(self, fmt: str) -> Response:
        body = [{"code": p.code, "description": p.description} for p in self.problems]
        return _respond(fmt, body, "errors", "error", self.http_status, self.headers)


class Open311Route(APIRoute):
    """Checks the format suffix and renders every failure of these routes the Open311 way.

    The global handlers keep the gateway's own error body for every other route.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def open311_handler(request: Request) -> Response:
            fmt = request.path_params.get("fmt", "")
            if fmt not in FORMATS:
                # XML is the format every Open311 server must speak.
                return Open311Error.of(
                    404, "format", f"{fmt!r} is not served; use .xml or .json"
                ).response("xml")
            try:
                return await handler(request)
            except Open311Error as exc:
                return exc.response(fmt)
            except ApiError as exc:
                return Open311Error.from_api_error(exc).response(fmt)
            except RequestValidationError as exc:
                problems = [
                    Problem(400, f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}")
                    for e in exc.errors()
                ]
                return Open311Error(400, problems).response(fmt)

        return open311_handler


router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route)


class ServiceRequestForm(BaseModel):
    """POST requests.{format} parameters, form-encoded as the spec sends them.

    All are optional here so that a missing one is reported in Open311's error shape.
    `jurisdiction_id` is ignored: the caller's tenant is the jurisdiction.
    `attribute[...]` is ignored too: no service has attributes.
    """

    api_key: str | None = None
    jurisdiction_id: str | None = None
    service_code: str | None = None
    lat: str | None = None
    long: str | None = None
    address_string: str | None = None
    address_id: str | None = None
    description: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    media_url: str | None = None


# --- rendering ---------------------------------------------------------------------------


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(element: ET.Element, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        child = ET.SubElement(element, key)
        if isinstance(value, list):
            # Only `attributes` is a list in our answers; its items are `attribute`.
            for item in value:
                _fill(ET.SubElement(child, key.removesuffix("s")), item)
        else:
            child.text = _xml_text(value)


def _respond(
    fmt: str,
    body: list[dict[str, Any]] | dict[str, Any],
    root: str,
    item: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON as the spec's examples show it, or the XML it maps from (root > item > fields)."""
    if fmt == "json":
        content = json.dumps(body, ensure_ascii=False).encode()
        return Response(content, status_code, headers, media_type=JSON_TYPE)
    element = ET.Element(root)
    if isinstance(body, list):
        for entry in body:
            _fill(ET.SubElement(element, item), entry)
    else:
        _fill(element, body)
    content = XML_DECLARATION + ET.tostring(element, encoding="unicode").encode()
    return Response(content, status_code, headers, media_type=XML_TYPE)


def _w3(moment: datetime) -> str:
    """The w3 date-time profile of ISO 8601 that Open311 requires, in UTC."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(minutes: int) -> str:
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes >= size and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return f"{minutes} minutes"


def _jurisdiction(who: Principal, jurisdiction_id: str | None) -> str:
    """The tenant a call reads: `jurisdiction_id` when it is a tenant id inside the
    caller's subtree, the caller's own tenant when it is absent or not a tenant id
    (clients send their deployment's name); a tenant outside the subtree is 404."""
    if not jurisdiction_id:
        return who.tenant
    try:
        path = tenancy.parse_parent(f"tenants/{jurisdiction_id.strip()}")
    except InvalidArgument:
        return who.tenant
    if not who.can_see(path):
        raise Open311Error.of(404, "jurisdiction_id", f"{jurisdiction_id[:64]!r} not found")
    return path


async def _categories(request: Request, who: Principal, tenant: str) -> dict[str, pb.Category]:
    """The categories `tenant` can report (its own, its levels' and the built-ins):
    Open311's services."""
    found: dict[str, pb.Category] = {}
    token = ""
    while True:
        response = await call(
            request.app.state.upstreams.events.ListCategories(
                pb.ListCategoriesRequest(
                    parent=tenancy.tenant_name(tenant), page_size=1000, page_token=token
                ),
                metadata=call_metadata(who),
            )
        )
        for c in response.categories:
            found[c.code] = c
        token = response.next_page_token
        if not token:
            return found


def _service(category: pb.Category) -> dict[str, Any]:
    group, _, topic = category.code.partition(".")
    name = category.display_name
    return {
        "service_code": category.code,
        "service_name": name,
        "description": f"{name}. Looked at within {_duration(category.sla_minutes)}.",
        "metadata": False,
        "type": "realtime",
        "keywords": f"{group}, {topic.replace('_', ' ')}",
        "group": group,
    }


def _state(event: pb.Event) -> str:
    return pb.Event.State.Name(event.state).removeprefix("STATE_").lower()


def _status(event: pb.Event) -> str:
    return "closed" if _state(event) in _CLOSED_STATES else "open"


def _event_id(event: pb.Event) -> str:
    return event.name.rsplit("/", 1)[-1]


def _service_request(event: pb.Event, cats: dict[str, pb.Category]) -> dict[str, Any]:
    category = cats.get(event.category)
    requested = event.create_time.ToDatetime(tzinfo=UTC)
    expected = requested + timedelta(minutes=category.sla_minutes) if category else None
    return {
        "service_request_id": _event_id(event),
        "status": _status(event),
        "status_notes": _state(event),
        "service_name": category.display_name if category else event.category,
        "service_code": event.category,
        "description": event.description,
        # The village is who answers for the report.
        "agency_responsible": event.village,
        "service_notice": None,
        "requested_datetime": _w3(requested),
        "updated_datetime": _w3(event.update_time.ToDatetime(tzinfo=UTC)),
        "expected_datetime": _w3(expected) if expected else None,
        "address": event.address,
        "address_id": None,
        "zipcode": None,
        "lat": event.location.latitude,
        "long": event.location.longitude,
        "media_url": event.media_uris[0] if event.media_uris else None,
    }


# --- services ----------------------------------------------------------------------------


@router.get("/services.{fmt}", summary="Open311: service list (one per event category)")
@calls("grassroots.events.v1.EventsService", "ListCategories")
async def service_list(
    fmt: Fmt, request: Request, who: Reader, jurisdiction_id: Jurisdiction = None
) -> Response:
    """Every event category of the jurisdiction (the caller's tenant unless named),
    including those its town or village added, so an Open311 app can offer them."""
    tenant = _jurisdiction(who, jurisdiction_id)
    services = [_service(c) for c in (await _categories(request, who, tenant)).values()]
    return _respond(fmt, services, "services", "service")


@router.get("/services/{service_code}.{fmt}", summary="Open311: service definition")
@calls("grassroots.events.v1.EventsService", "ListCategories")
async def service_definition(
    service_code: str, fmt: Fmt, request: Request, who: Reader, jurisdiction_id: Jurisdiction = None
) -> Response:
    """No category asks for extra attributes yet, so every definition lists none."""
    tenant = _jurisdiction(who, jurisdiction_id)
    if service_code not in await _categories(request, who, tenant):
        raise Open311Error.of(404, "service_code", f"{service_code[:64]!r} not found")
    return _respond(fmt, {"service_code": service_code, "attributes": []}, "service_definition")


# --- creating requests -------------------------------------------------------------------


def _coordinate(text: str | None, field: str, limit: float, problems: list[Problem]) -> float:
    if text is None or not text.strip():
        problems.append(
            Problem(400, f"{field}: is required (addresses cannot be located yet; send lat/long)")
        )
        return math.nan
    try:
        value = float(text)
    except ValueError:
        problems.append(Problem(400, f"{field}: {text[:32]!r} is not a number"))
        return math.nan
    if not (math.isfinite(value) and -limit <= value <= limit):
        problems.append(Problem(400, f"{field}: {value} is not in [-{limit:g}, {limit:g}]"))
    return value


def _request_key(reporter: str, code: str, lat: float, lon: float, description: str) -> str:
    """The events API's idempotency key for a report, so a client's retry finds the first.

    Open311 has no idempotency key of its own, so the key is what makes a report the
    same report: who sent it (device, account, e-mail or phone), what, where and the
    words used. Without a reporter nothing says two reports come from one person, so
    each gets a key of its own: two residents' reports are never merged.
    """
    if not reporter:
        return "open311:" + secrets.token_hex(16)
    material = json.dumps([reporter, code, repr(lat), repr(lon), description])
    return "open311:" + hashlib.sha256(material.encode()).hexdigest()


async def _create(request: Request, who: Principal, message: pb.CreateEventRequest) -> pb.Event:
    """Create, or answer a retry with the report it repeats.

    A replayed report counts only while it is unfinished and younger than the
    resubmission window; otherwise the same words are a new report, keyed after the
    one they follow, so a retry of the new one finds it again.
    """
    events = request.app.state.upstreams.events
    base = message.request_id
    for _ in range(MAX_RESUBMISSIONS):
        rpc = events.CreateEvent(message, metadata=call_metadata(who))
        event: pb.Event = await call(rpc, strip_prefix="event.")
        trailing = await rpc.trailing_metadata()
        replayed = any(k == REPLAYED_METADATA_KEY and v == "true" for k, v in trailing or ())
        age = datetime.now(UTC) - event.create_time.ToDatetime(tzinfo=UTC)
        if not replayed or (_status(event) == "open" and age <= RESUBMIT_WINDOW):
            return event
        following = json.dumps([base, event.name]).encode()
        message.request_id = "open311:" + hashlib.sha256(following).hexdigest()
    raise Open311Error.of(409, "description", "sent too often; change it or wait")


def _notice(event: pb.Event, cats: dict[str, pb.Category]) -> str:
    category = cats.get(event.category)
    within = f" within {_duration(category.sla_minutes)}" if category else ""
    return f"Received by {event.village}; it will be looked at{within}."


@router.post("/requests.{fmt}", summary="Open311: create a service request")
@calls("grassroots.events.v1.EventsService", "CreateEvent")
@calls("grassroots.events.v1.EventsService", "ListCategories")  # service_code -> category
async def create_request(
    fmt: Fmt,
    form: Annotated[ServiceRequestForm, Form()],
    request: Request,
    who: Who,
) -> Response:
    """Record the report as an event from source open311; a retry returns the same id.

    Creation is synchronous, so the answer carries the `service_request_id` (no token).
    """
    # The spec's api_key (form field or query parameter) or an Authorization header was
    # verified by gateway.auth before this runs; the principal is the key's app.
    # email, first_name, last_name and phone are accepted and NOT stored: the identity
    # component will store them encrypted. device_id, account_id, email and phone only
    # feed the idempotency key (hashed). address_string and media_url are kept.
    problems: list[Problem] = []
    cats = await _categories(request, who, who.tenant)
    code = (form.service_code or "").strip()
    if not code:
        problems.append(Problem(400, "service_code: is required"))
    elif code not in cats:
        problems.append(Problem(404, f"service_code: {code[:64]!r} not found; see services.{fmt}"))
    lat = _coordinate(form.lat, "lat", 90, problems)
    lon = _coordinate(form.long, "long", 180, problems)
    description = form.description or ""
    if not description.strip():
        problems.append(Problem(400, "description: is required"))
    elif len(description) > MAX_DESCRIPTION_CHARS:
        problems.append(
            Problem(400, f"description: is longer than {MAX_DESCRIPTION_CHARS} characters")
        )
    if problems:
        # The spec answers an unknown service_code with 404, anything else with 400.
        status = 400 if any(p.code == 400 for p in problems) else 404
        raise Open311Error(status, problems)

    reporter = next(
        (v.strip() for v in (form.device_id, form.account_id, form.email, form.phone) if v), ""
    )
    message = pb.CreateEventRequest(
        parent=tenancy.tenant_name(who.tenant),
        request_id=_request_key(reporter, code, lat, lon, description),
        event=pb.Event(
            category=code,
            description=description,
            location=geo_pb2.GeoPoint(longitude=lon, latitude=lat, crs="EPSG:4326"),
            source=pb.Event.SOURCE_OPEN311,
            address=(form.address_string or "").strip(),
            media_uris=[form.media_url.strip()]
            if form.media_url and form.media_url.strip()
            else [],
        ),
    )
    event = await _create(request, who, message)
    body = [{"service_request_id": _event_id(event), "service_notice": _notice(event, cats)}]
    return _respond(fmt, body, "service_requests", "request")


# --- reading requests --------------------------------------------------------------------


async def _get_event(request: Request, who: Principal, event_id: str, field: str) -> pb.Event:
    """The event of the caller's subtree with that id; anything else is Open311's 404."""
    not_found = Open311Error.of(404, field, f"{event_id[:64]!r} not found")
    if not _ID_PATTERN.match(event_id):
        raise not_found
    rpc = request.app.state.upstreams.events.GetEvent(
        pb.GetEventRequest(name=f"tenants/-/events/{event_id}"), metadata=call_metadata(who)
    )
    try:
        event: pb.Event = await call(rpc)
    except ApiError as exc:
        if exc.http_status == 404:
            raise not_found from None
        raise
    return event


def _values(params: Iterable[str] | None) -> list[str]:
    """A parameter that may be repeated and comma delimited, as the spec allows."""
    return [v.strip() for p in params or () for v in p.split(",") if v.strip()]


def _moment(text: str | None, field: str) -> datetime | None:
    if text is None or not text.strip():
        return None
    # A "+" left unencoded in a query string arrives as a space; no w3 date has one.
    value = text.strip().replace(" ", "+")
    try:
        return rfc3339_time(value, field)
    except InvalidArgument as exc:
        raise Open311Error.of(400, field, exc.violations[0].description) from None


def _window(start_date: str | None, end_date: str | None) -> tuple[datetime, datetime | None]:
    """The requested_datetime range: at most 90 days, the latest 90 when not given."""
    start, end = _moment(start_date, "start_date"), _moment(end_date, "end_date")
    if start is not None and end is not None:
        if end < start:
            raise Open311Error.of(400, "end_date", "is before start_date")
        if end - start > DEFAULT_SPAN:
            raise Open311Error.of(400, "end_date", "the range may not span more than 90 days")
        return start, end
    try:
        if start is not None:
            return start, start + DEFAULT_SPAN
        if end is not None:
            return end - DEFAULT_SPAN, end
    except OverflowError:
        field = "start_date" if start is not None else "end_date"
        raise Open311Error.of(400, field, "is too far from today") from None
    return datetime.now(UTC) - DEFAULT_SPAN, None


def _filter(code: str | None, start: datetime, end: datetime | None, statuses: set[str]) -> str:
    """The events service's filter for one Open311 query: category, window and status
    are all applied by the service, so one page answers it."""
    terms = [f'create_time >= "{_w3(start)}"']
    if end is not None:
        terms.append(f'create_time <= "{_w3(end)}"')
    if code:
        terms.append(f'category = "{quote(code)}"')
    if len(statuses) == 1:
        terms.append(f'status = "{next(iter(statuses))}"')
    return " AND ".join(terms)


async def _newest(
    request: Request, who: Principal, tenant: str, filter_text: str
) -> list[pb.Event]:
    """The newest events matching the filter, at most one Open311 answer's worth."""
    page = await call(
        request.app.state.upstreams.events.ListEvents(
            pb.ListEventsRequest(
                parent=tenancy.tenant_name(tenant), filter=filter_text, page_size=MAX_RESULTS
            ),
            metadata=call_metadata(who),
        )
    )
    return list(page.events)


@router.get("/requests.{fmt}", summary="Open311: service requests")
@calls("grassroots.events.v1.EventsService", "ListEvents")
@calls("grassroots.events.v1.EventsService", "GetEvent")
@calls("grassroots.events.v1.EventsService", "ListCategories")
async def service_requests(
    fmt: Fmt,
    request: Request,
    who: Reader,
    jurisdiction_id: Jurisdiction = None,
    service_request_id: Annotated[
        list[str] | None, Query(description="comma delimited; overrides every other filter")
    ] = None,
    service_code: Annotated[list[str] | None, Query(description="comma delimited")] = None,
    start_date: Annotated[str | None, Query(description="w3 date-time")] = None,
    end_date: Annotated[str | None, Query(description="w3 date-time")] = None,
    status: Annotated[list[str] | None, Query(description="open, closed; comma delimited")] = None,
) -> Response:
    """Requests of the jurisdiction, newest first: at most 1000 and 90 days.

    Without credentials only requests of public categories, without personal fields.
    """
    tenant = _jurisdiction(who, jurisdiction_id)
    cats = await _categories(request, who, tenant)
    ids = list(dict.fromkeys(_values(service_request_id)))
    if ids:
        if len(ids) > MAX_IDS:
            raise Open311Error.of(400, "service_request_id", f"at most {MAX_IDS} ids at once")
        results = await asyncio.gather(
            *(_get_event(request, who, i, "service_request_id") for i in ids),
            return_exceptions=True,
        )
        found = [r for r in results if isinstance(r, pb.Event)]
        for result in results:
            # Ids that do not exist (or not for this caller) are left out, as lists do.
            if isinstance(result, BaseException) and not (
                isinstance(result, Open311Error) and result.http_status == 404
            ):
                raise result
        return _respond(
            fmt, [_service_request(e, cats) for e in found], "service_requests", "request"
        )

    codes = list(dict.fromkeys(_values(service_code)))
    unknown = [c for c in codes if c not in cats]
    if unknown:
        raise Open311Error.of(400, "service_code", f"unknown {', '.join(unknown)[:200]}")
    statuses = set(_values(status))
    if statuses - {"open", "closed"}:
        raise Open311Error.of(400, "status", "use open, closed or both")
    start, end = _window(start_date, end_date)
    scans: list[str | None] = list(codes) or [None]
    pages = await asyncio.gather(
        *(_newest(request, who, tenant, _filter(code, start, end, statuses)) for code in scans)
    )
    events = [e for page in pages for e in page]
    events.sort(key=lambda e: (e.create_time.ToNanoseconds(), e.name), reverse=True)
    body = [_service_request(e, cats) for e in events[:MAX_RESULTS]]
    return _respond(fmt, body, "service_requests", "request")


@router.get("/requests/{service_request_id}.{fmt}", summary="Open311: one service request")
@calls("grassroots.events.v1.EventsService", "GetEvent")
@calls("grassroots.events.v1.EventsService", "ListCategories")
async def service_request(
    service_request_id: str, fmt: Fmt, request: Request, who: Reader
) -> Response:
    """One event as a service request; ids outside the caller's subtree (or, without
    credentials, of a category that is not public) are 404."""
    event = await _get_event(request, who, service_request_id, "service_request_id")
    tenant = event.village or who.tenant
    return _respond(
        fmt,
        [_service_request(event, await _categories(request, who, tenant))],
        "service_requests",
        "request",
    )


@router.get("/tokens/{token}.{fmt}", summary="Open311: service_request_id from a token")
@calls("grassroots.events.v1.EventsService", "GetEvent")
async def request_id_from_token(token: str, fmt: Fmt, request: Request, who: Reader) -> Response:
    """Creates are synchronous and hand out no tokens; a token that is an event id answers."""
    event = await _get_event(request, who, token, "token")
    body = [{"service_request_id": _event_id(event), "token": token}]
    return _respond(fmt, body, "service_requests", "request")

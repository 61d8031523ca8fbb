"""gRPC adapter of the events service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC

import grpc

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.events.coalescer import CreateCoalescer
from services.events.domain import access, intake, validation
from services.events.domain.attachments import Attachment
from services.events.domain.categories import Category
from services.events.domain.intake import AnonymousIntake, IntakeSettings
from services.events.domain.model import Event, NewReport, Source, State
from services.events.domain.service import EventHub
from services.events.feed import ChangeFeed
from services.kit import paging, tenancy, tracing
from services.kit.component import ServiceComponent
from services.kit.context import require_principal
from services.kit.errors import DomainError, InvalidArgument
from services.kit.principal import Principal
from services.kit.scopes import method_scopes
from services.kit.timestamps import to_timestamp
from services.kit.unimplemented import fill_unimplemented

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EventsService"].full_name
REPLAYED_METADATA_KEY = "x-idempotent-replayed"
WATCH_BATCH = 500
MAX_BATCH = 1000
# The fields UpdateEvent may change.
AMENDABLE = frozenset({"category", "location"})

# Proto enum values <-> domain sources by name; an unset source is a resident's report.
_SOURCES = {
    number: Source(name.removeprefix("SOURCE_").lower())
    for name, number in pb.Event.Source.items()
    if number != pb.Event.SOURCE_UNSPECIFIED
} | {pb.Event.SOURCE_UNSPECIFIED: Source.RESIDENT}
_SOURCE_TO_PB = {source: number for number, source in _SOURCES.items() if number}
_STATE_TO_PB = {
    name.removeprefix("STATE_").lower(): number
    for name, number in pb.Event.State.items()
    if number != pb.Event.STATE_UNSPECIFIED
}


def _state(state: State | None) -> int:
    return pb.Event.STATE_UNSPECIFIED if state is None else _STATE_TO_PB[state.value]


def _event_name(tenant: str, event_id: str) -> str:
    return f"{tenancy.tenant_name(tenant)}/events/{event_id}"


def event_to_proto(event: Event) -> pb.Event:
    """The full event, contact included: for the outbox, which only services read."""
    message = pb.Event(
        name=_event_name(event.tenant, event.id),
        category=event.category,
        description=event.description,
        location=geo_pb2.GeoPoint(
            longitude=event.location.longitude,
            latitude=event.location.latitude,
            crs="EPSG:4326",
        ),
        source=_SOURCE_TO_PB[event.source],
        state=_state(event.state),  # type: ignore[arg-type]
        village=event.place.village,
        grid_cell=event.place.grid_cell,
        grid_worker=event.place.grid_worker,
        create_time=to_timestamp(event.create_time),
        update_time=to_timestamp(event.update_time),
        etag=event.etag,
        duplicate_of=_event_name(event.tenant, event.duplicate_of) if event.duplicate_of else "",
        timeline=[
            pb.TimelineEntry(
                actor=entry.actor,
                time=to_timestamp(entry.time),
                from_state=_state(entry.from_state),  # type: ignore[arg-type]
                to_state=_state(entry.to_state),  # type: ignore[arg-type]
                note=entry.note,
            )
            for entry in event.timeline
        ],
        comments=[
            pb.Comment(author=c.author, text=c.text, create_time=to_timestamp(c.create_time))
            for c in event.comments
        ],
        severity=event.severity,
        media_uris=list(event.media),
        reporter_contact=event.reporter_contact,
        address=event.address,
        parent=_event_name(event.tenant, event.parent_event) if event.parent_event else "",
        entity=event.entity,
    )
    if event.evaluation is not None:
        message.evaluation.CopyFrom(
            pb.Evaluation(
                score=event.evaluation.score,
                text=event.evaluation.text,
                time=to_timestamp(event.evaluation.time),
            )
        )
    return message


def _report(
    request: pb.CreateEventRequest, parent: str, principal: Principal, outer: str = ""
) -> NewReport:
    """Check one create and turn it into a domain report; `outer` prefixes field paths."""
    event = request.event
    try:
        validation.check_report(
            category=event.category,
            description=event.description,
            longitude=event.location.longitude,
            latitude=event.location.latitude,
            has_location=event.HasField("location"),
            request_id=request.request_id,
        )
        point = validation.storage_point(
            event.location.longitude, event.location.latitude, event.location.crs
        )
        if event.source not in _SOURCES:
            raise InvalidArgument.field("event.source", f"unknown source {event.source}")
        validation.check_details(media=list(event.media_uris))
    except InvalidArgument as exc:
        if not outer:
            raise
        raise exc.under(outer) from None
    return NewReport(
        parent=parent,
        category=event.category,
        description=event.description,
        location=point,
        source=_SOURCES[event.source],
        request_id=request.request_id,
        reporter=principal.subject,
        severity=event.severity,
        media=tuple(event.media_uris),
        reporter_contact=event.reporter_contact.strip(),
        address=event.address.strip(),
        # Which twin entity it is about is the twin's to say, not a caller's.
        entity=event.entity if principal.kind == "service" else "",
        reported_time=(
            event.create_time.ToDatetime(tzinfo=UTC)
            if principal.kind == "service" and event.HasField("create_time")
            else None
        ),
        trace_context=tracing.current_traceparent(),
    )


def _reporter_of(message: pb.Event) -> str:
    """The reporter is the actor of the first timeline entry."""
    return message.timeline[0].actor if message.timeline else ""


def _out(event: Event) -> pb.Event:
    return event_to_proto(access.seen_by(require_principal(), event))


def _category_to_proto(level: str, category: Category) -> pb.Category:
    base = f"{tenancy.tenant_name(level)}/categories" if level else "categories"
    return pb.Category(
        name=f"{base}/{category.code}",
        code=category.code,
        display_name=category.name,
        default_severity=category.default_severity,
        sla_minutes=category.sla_minutes,
        duplicate_radius_meters=category.duplicate_radius_m,
        duplicate_window_minutes=category.duplicate_window_minutes,
        public=category.public,
        joint_categories=list(category.joint_categories),
    )


def _settings_to_proto(tenant: str, level: str, settings: IntakeSettings) -> pb.IntakeSettings:
    return pb.IntakeSettings(
        name=f"{tenancy.tenant_name(tenant)}/intakeSettings",
        anonymous_reports=settings.anonymous_reports,
        anonymous_reports_per_hour=settings.anonymous_reports_per_hour,
        defined_at=level,
    )


def _settings_tenant(name: str, field: str) -> str:
    """`tenants/{tenant}/intakeSettings` -> the tenant path."""
    prefix, _, rest = name.rpartition("/")
    if rest != "intakeSettings":
        raise InvalidArgument.field(field, "is of the form 'tenants/{tenant}/intakeSettings'")
    return tenancy.parse_parent(prefix, field)


def _attachment_to_proto(attachment: Attachment) -> pb.Attachment:
    return pb.Attachment(
        name=f"{tenancy.tenant_name(attachment.tenant)}/attachments/{attachment.id}",
        content_type=attachment.content_type,
        size_bytes=attachment.size_bytes,
        sha256=attachment.sha256,
        create_time=to_timestamp(attachment.create_time),
    )


def _anonymous_report(event: Event, receipt: str = "") -> pb.AnonymousReport:
    return pb.AnonymousReport(receipt=receipt, event=event_to_proto(intake.receipt_view(event)))


class EventsServicer(pb_grpc.EventsServiceServicer):
    def __init__(self, hub: EventHub, feed: ChangeFeed) -> None:
        self.hub = hub
        self.feed = feed
        self.creates = CreateCoalescer(hub)
        self.intake = AnonymousIntake(hub)

    async def GetIntakeSettings(
        self, request: pb.GetIntakeSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.IntakeSettings:
        tenant = _settings_tenant(request.name, "name")
        level, settings = await self.intake.settings(require_principal(), tenant)
        return _settings_to_proto(tenant, level, settings)

    async def UpdateIntakeSettings(
        self, request: pb.UpdateIntakeSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.IntakeSettings:
        given = request.intake_settings
        tenant = _settings_tenant(given.name, "intake_settings.name")
        settings = IntakeSettings(given.anonymous_reports, given.anonymous_reports_per_hour)
        fields = frozenset(request.update_mask.paths) or intake.SETTINGS_FIELDS
        level, stored = await self.intake.define(require_principal(), tenant, settings, fields)
        return _settings_to_proto(tenant, level, stored)

    async def CreateAttachment(
        self, request: pb.CreateAttachmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Attachment:
        parent = tenancy.parse_parent(request.parent)
        stored = await self.hub.attach(require_principal(), parent, request.content)
        return _attachment_to_proto(stored)

    async def GetAttachment(
        self, request: pb.GetAttachmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttachmentContent:
        tenant, attachment_id = tenancy.parse_child_name(request.name, "attachments")
        found, content = await self.hub.attachment(require_principal(), tenant, attachment_id)
        return pb.AttachmentContent(attachment=_attachment_to_proto(found), content=content)

    async def AttachAnonymously(
        self, request: pb.AttachAnonymouslyRequest, context: grpc.aio.ServicerContext
    ) -> pb.Attachment:
        given = request.attachment
        parent = tenancy.parse_parent(given.parent, "attachment.parent")
        where = request.location
        problems = validation.location_violations(
            where.longitude, where.latitude, request.HasField("location"), prefix=""
        )
        if problems:
            raise InvalidArgument(problems)
        try:
            point = validation.storage_point(where.longitude, where.latitude, where.crs)
        except InvalidArgument as exc:
            raise InvalidArgument.field("location.crs", exc.message) from None
        stored = await self.intake.attach(
            require_principal(), parent, request.request_id, point, given.content
        )
        return _attachment_to_proto(stored)

    async def ReportAnonymously(
        self, request: pb.ReportAnonymouslyRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnonymousReport:
        """Only what a passer-by may say: category, words, place, address and media."""
        principal = require_principal()
        parent = tenancy.parse_parent(request.parent)
        given = request.event
        taken = pb.CreateEventRequest(
            request_id=request.request_id,
            event=pb.Event(
                category=given.category,
                description=given.description,
                location=given.location if given.HasField("location") else None,
                address=given.address,
                media_uris=given.media_uris,
                source=pb.Event.SOURCE_RESIDENT,
            ),
        )
        report = _report(taken, parent, principal)
        stored, created = await self.intake.report(principal, report)
        context.set_trailing_metadata(((REPLAYED_METADATA_KEY, "false" if created else "true"),))
        return _anonymous_report(stored, intake.receipt_of(stored.id, request.request_id))

    async def GetAnonymousReport(
        self, request: pb.GetAnonymousReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnonymousReport:
        return _anonymous_report(await self.intake.follow(require_principal(), request.receipt))

    async def EvaluateAnonymousReport(
        self, request: pb.EvaluateAnonymousReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnonymousReport:
        event = await self.intake.evaluate(
            require_principal(), request.receipt, request.score, request.text
        )
        return _anonymous_report(event)

    async def CreateEvent(
        self, request: pb.CreateEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.Event:
        principal = require_principal()
        parent = tenancy.parse_parent(request.parent)
        stored, created = await self.creates.report(principal, _report(request, parent, principal))
        context.set_trailing_metadata(((REPLAYED_METADATA_KEY, "false" if created else "true"),))
        return _out(stored)

    async def BatchCreateEvents(
        self, request: pb.BatchCreateEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchCreateEventsResponse:
        principal = require_principal()
        parent = tenancy.parse_parent(request.parent)
        if not request.requests:
            raise InvalidArgument.field("requests", "is empty")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument.field("requests", f"at most {MAX_BATCH} per call")
        reports = []
        for i, item in enumerate(request.requests):
            if item.parent and item.parent != request.parent:
                raise InvalidArgument.field(f"requests[{i}].parent", "must be empty or equal")
            reports.append(_report(item, parent, principal, f"requests[{i}]."))
        results = await self.hub.report_many(principal, reports)
        return pb.BatchCreateEventsResponse(
            events=[_out(e) for e, _ in results], replayed=[not created for _, created in results]
        )

    async def GetEvent(
        self, request: pb.GetEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.Event:
        tenant, event_id = tenancy.parse_child_name(request.name, "events")
        return _out(await self.hub.get(require_principal(), tenant, event_id))

    async def BatchGetEvents(
        self, request: pb.BatchGetEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchGetEventsResponse:
        """GetEvent for each name, read together; the first name (in order) that
        fails fails the call, with GetEvent's error naming the field `names[i]` (for
        NOT_FOUND and the like, as the ErrorInfo's `field`)."""
        principal = require_principal()
        if not request.names:
            raise InvalidArgument.field("names", "is empty")
        wanted = [
            tenancy.parse_child_name(name, "events", f"names[{i}]")
            for i, name in enumerate(request.names)
        ]
        found = await self.hub.get_many(principal, wanted)
        for i, outcome in enumerate(found):
            if isinstance(outcome, DomainError):
                if not isinstance(outcome, InvalidArgument):  # those name their field
                    outcome.metadata.setdefault("field", f"names[{i}]")
                raise outcome
            if isinstance(outcome, BaseException):
                raise outcome
        return pb.BatchGetEventsResponse(events=[_out(e) for e in found])  # type: ignore[arg-type]

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEventsResponse:
        parent = tenancy.parse_parent(request.parent)
        page = await self.hub.list(
            require_principal(),
            parent,
            request.filter,
            request.page_size,
            request.page_token,
            request.order_by,
        )
        return pb.ListEventsResponse(
            events=[_out(e) for e in page.events],
            next_page_token=page.next_page_token,
        )

    async def CreateCategory(
        self, request: pb.CreateCategoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.Category:
        parent = tenancy.parse_parent(request.parent)
        given = request.category
        category = Category(
            code=given.code,
            name=given.display_name,
            default_severity=given.default_severity,
            sla_minutes=given.sla_minutes,
            duplicate_radius_m=given.duplicate_radius_meters,
            duplicate_window_minutes=given.duplicate_window_minutes,
            public=given.public,
            joint_categories=tuple(given.joint_categories),
        )
        stored = await self.hub.define_category(require_principal(), parent, category)
        return _category_to_proto(parent, stored)

    async def ListCategories(
        self, request: pb.ListCategoriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCategoriesResponse:
        parent = tenancy.parse_parent(request.parent)
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        query = {"parent": parent}
        offset = paging.decode_offset(request.page_token, query)
        everything = self.hub.list_categories(require_principal(), parent)
        page = everything[offset : offset + size]
        more = offset + size if offset + size < len(everything) else None
        return pb.ListCategoriesResponse(
            categories=[_category_to_proto(level, c) for level, c in page],
            next_page_token=paging.encode_offset(more, query),
        )

    async def GetEventStatistics(
        self, request: pb.GetEventStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EventStatistics:
        parent = tenancy.parse_parent(request.parent)
        stats = await self.hub.statistics(require_principal(), parent, request.filter)
        return pb.EventStatistics(
            total=stats.total,
            by_state=stats.by_state,
            by_category=stats.by_category,
            by_grid_cell=stats.by_grid_cell,
            by_village=stats.by_village,
            by_day=stats.by_day,
            sla_breach_rate=stats.sla_breach_rate,
            resolved_count=stats.resolved_count,
            mean_hours_to_resolve=stats.mean_hours_to_resolve,
        )

    async def TransitionEvent(
        self, request: pb.TransitionEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.Event:
        tenant, event_id = tenancy.parse_child_name(request.name, "events")
        if request.state == pb.Event.STATE_UNSPECIFIED:
            raise InvalidArgument.field("state", "is required")
        target = State(pb.Event.State.Name(request.state).removeprefix("STATE_").lower())
        original = ""
        if request.duplicate_of:
            _, original = tenancy.parse_child_name(request.duplicate_of, "events", "duplicate_of")
        event = await self.hub.transition(
            require_principal(), tenant, event_id, target, request.note, request.etag, original
        )
        return _out(event)

    async def UpdateEvent(
        self, request: pb.UpdateEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.Event:
        given = request.event
        tenant, event_id = tenancy.parse_child_name(given.name, "events", "event.name")
        paths = set(request.update_mask.paths)
        if not paths or paths - AMENDABLE:
            raise InvalidArgument.field(
                "update_mask", f"names one or both of: {', '.join(sorted(AMENDABLE))}"
            )
        category = None
        if "category" in paths:
            if not given.category:
                raise InvalidArgument.field("event.category", "is required")
            category = given.category
        location = None
        if "location" in paths:
            loc = given.location
            wrong = validation.location_violations(
                loc.longitude, loc.latitude, given.HasField("location")
            )
            if wrong:
                raise InvalidArgument(wrong)
            location = validation.storage_point(loc.longitude, loc.latitude, loc.crs)
        event = await self.hub.amend(
            require_principal(),
            tenant,
            event_id,
            category=category,
            location=location,
            note=request.note,
            etag=given.etag,
        )
        return _out(event)

    async def EvaluateEvent(
        self, request: pb.EvaluateEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.Event:
        tenant, event_id = tenancy.parse_child_name(request.name, "events")
        event = await self.hub.evaluate(
            require_principal(), tenant, event_id, request.score, request.text, request.etag
        )
        return _out(event)

    async def AddComment(
        self, request: pb.AddCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Event:
        tenant, event_id = tenancy.parse_child_name(request.name, "events")
        return _out(await self.hub.comment(require_principal(), tenant, event_id, request.text))

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        """Everything after `after_offset`, then each change as it is committed."""
        principal = require_principal()
        parent = tenancy.parse_parent(request.parent)
        after = await self.hub.resolve_offset(principal, parent, request.after_offset)
        entries = await self.hub.changes(principal, parent, after, WATCH_BATCH)
        # Headers go out now, so a client learns the watch is accepted before any change.
        await context.send_initial_metadata(())
        while True:
            for entry in entries:
                after = entry.seq
                message = pb.Event.FromString(entry.payload)
                reporter = _reporter_of(message)
                if not access.reads(principal, reporter):
                    continue
                message.reporter_contact = access.contact_for(
                    principal, reporter, message.reporter_contact
                )
                yield pb.WatchEventsResponse(offset=entry.seq, type=entry.type, event=message)
            if len(entries) < WATCH_BATCH:
                await self.feed.wait(1.0)
            entries = await self.hub.changes(principal, parent, after, WATCH_BATCH)


fill_unimplemented(EventsServicer, SERVICE_NAME, "the events component")


def build_component(
    hub: EventHub, feed: ChangeFeed, closers: list[Callable[[], object]]
) -> ServiceComponent:
    return ServiceComponent(
        [(EventsServicer(hub, feed), pb_grpc.add_EventsServiceServicer_to_server)],
        [SERVICE_NAME],
        closers,
        method_scopes=method_scopes(SERVICE_NAME),
    )

"""Use cases of the event hub: report, read, list."""

from __future__ import annotations

from datetime import UTC, datetime

from services.events.domain.model import Event, EventPage, NewReport, State
from services.events.domain.ports import EventStore, Locator
from services.kit import paging, tenancy
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.filtering import parse_equalities
from services.kit.ids import new_id
from services.kit.principal import Principal

LIST_FILTER_FIELDS = ("grid_cell", "village", "category", "state")


class EventHub:
    """Records events exactly once per request id and answers questions about them."""

    def __init__(self, store: EventStore, locator: Locator) -> None:
        self.store = store
        self.locator = locator

    async def report(self, principal: Principal, report: NewReport) -> tuple[Event, bool]:
        """Record a report; returns (event, created). A retry returns the first event."""
        if not principal.can_see(report.parent):
            raise NotFound(f"tenant {tenancy.tenant_name(report.parent)!r} not found")
        previous = await self.store.find_by_request(
            report.parent, report.reporter, report.request_id
        )
        if previous is not None:
            return self._replay(previous, report)
        place = await self.locator.locate(report.parent, report.location)
        if place is None:
            raise InvalidArgument.field(
                "event.location",
                f"({report.location.longitude}, {report.location.latitude}) lies outside every "
                f"village of {tenancy.tenant_name(report.parent)}",
            )
        now = datetime.now(UTC)
        event = Event(
            id=new_id("ev"),
            tenant=place.village,
            category=report.category,
            description=report.description,
            location=report.location,
            source=report.source,
            state=State.REPORTED,
            place=place,
            reporter=report.reporter,
            create_time=now,
            update_time=now,
        )
        stored, created = await self.store.create(report, event)
        if not created:
            found = await self.store.find_by_request(
                report.parent, report.reporter, report.request_id
            )
            assert found is not None
            return self._replay(found, report)
        return stored, True

    @staticmethod
    def _replay(previous: tuple[Event, str], report: NewReport) -> tuple[Event, bool]:
        event, fingerprint = previous
        if fingerprint != report.fingerprint():
            raise FailedPrecondition(
                f"request_id {report.request_id!r} was already used for a different report",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"event": event.id},
            )
        return event, False

    async def get(self, principal: Principal, tenant: str | None, event_id: str) -> Event:
        event = await self.store.get(event_id)
        visible = (
            event is not None
            and principal.can_see(event.tenant)
            and (tenant is None or tenancy.contains(tenant, event.tenant))
        )
        if not visible:
            raise NotFound(f"event {event_id!r} not found")
        assert event is not None
        return event

    async def list(
        self, principal: Principal, parent: str, filter_text: str, size: int, token: str
    ) -> EventPage:
        if not principal.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        filters = parse_equalities(filter_text, LIST_FILTER_FIELDS)
        if "state" in filters and filters["state"] not in {s.value for s in State}:
            raise InvalidArgument.field("filter", f"unknown state {filters['state']!r}")
        limit = paging.page_size(size)
        query = {"parent": parent, "filters": filters}
        cursor = paging.decode_token(token, query)
        events, next_cursor = await self.store.list(parent, filters, limit, cursor)
        next_token = paging.encode_token(next_cursor, query) if next_cursor else ""
        return EventPage(events=events, next_page_token=next_token)

"""Use cases of the event hub: report, read, list."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.events.domain import access, attachments, lifecycle
from services.events.domain.attachments import Attachment
from services.events.domain.categories import Category, CategoryCatalog, check_category
from services.events.domain.duplicates import original_of, search_window
from services.events.domain.facts import COMMENTED, LOCATED_AGAIN, RECATEGORIZED, STATE_CHANGED
from services.events.domain.model import (
    Comment,
    Evaluation,
    Event,
    EventPage,
    GridPlace,
    NewReport,
    OutboxEntry,
    Point,
    State,
    Statistics,
    TimelineEntry,
)
from services.events.domain.ports import Change, EventStore, Locator, NearbyQuery
from services.events.domain.queries import to_filters
from services.events.domain.statistics import summarise
from services.kit import paging, tenancy
from services.kit.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.ids import new_id
from services.kit.principal import Principal
from services.kit.tenancy import ALL_TENANTS

CONFIGURE_SCOPE = "events:configure"
AUTO_CLOSER = "services/events"


def _visible(principal: Principal, tenant: str | None, event: Event) -> bool:
    """The caller's subtree holds the event, and so does the tenant it was asked under,
    and the caller reads events like it (see `access.reads`)."""
    return (
        principal.can_see(event.tenant)
        and (tenant is None or tenancy.contains(tenant, event.tenant))
        and access.reads(principal, event.reporter)
    )


def _check_etag(event: Event, etag: str) -> None:
    """ABORTED when the caller's etag is not the event's: it changed since they read it."""
    if etag and etag != event.etag:
        raise Aborted(
            "the event changed since you read it; read it again and retry",
            reason="ETAG_MISMATCH",
            metadata={"current_etag": event.etag},
        )


def _same_place(a: Point, b: Point) -> bool:
    return (a.longitude, a.latitude) == (b.longitude, b.latitude)


def mark_if_duplicate(nearby: NearbyQuery, event: Event, category: Category) -> Event:
    """A report near an open event of its category in its village becomes a duplicate."""
    box, since = search_window(event.location, category, event.create_time)
    candidates = [
        e
        for e in nearby(event.category, box, since, lifecycle.OPEN_STATES)
        if e.tenant == event.tenant and e.id != event.id and e.create_time >= since
    ]
    original = original_of(event.location, category, candidates)
    if original is None:
        return event
    entry = TimelineEntry(
        event.reporter, event.create_time, None, State.DUPLICATE, f"repeats {original.id}"
    )
    return replace(event, state=State.DUPLICATE, duplicate_of=original.id, timeline=(entry,))


# A joint application's part counts as answered once its department resolved, closed
# or rejected it; the application is then resolved by the hub itself.
_ANSWERED = frozenset({State.RESOLVED, State.CLOSED, State.REJECTED})
JOINT_ACTOR = "services/events/joint"
MAX_JOINT_PARTS = 10


class _AlreadyAnswered(Exception):
    """The application was resolved (or finished) already: nothing to do."""


def _key_reused(report: NewReport, event_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"request_id {report.request_id!r} was already used for a different report",
        reason="IDEMPOTENCY_KEY_REUSED",
        metadata={"event": event_id},
    )


def _first_of_each_key(
    reports: list[NewReport], fresh: list[int]
) -> tuple[list[int], dict[int, int]]:
    """The fresh reports to store (the first under each key) and, for each later one
    that repeats a key, the index of the first, whose event answers it as a replay.

    A key repeated with a different report refuses the batch before anything is
    stored: answered after a commit, the refusal would leave the rest of the batch
    stored while the caller is told the call failed.
    """
    firsts: dict[tuple[str, str, str], int] = {}
    kept: list[int] = []
    repeats: dict[int, int] = {}
    for i in fresh:
        report = reports[i]
        key = (report.parent, report.reporter, report.request_id)
        first = firsts.setdefault(key, i)
        if first == i:
            kept.append(i)
        elif reports[first].fingerprint() != report.fingerprint():
            raise FailedPrecondition(
                f"request_id {report.request_id!r} is used twice in this batch for "
                f"different reports (requests[{first}] and requests[{i}])",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        else:
            repeats[i] = first
    return kept, repeats


class EventHub:
    """Records events exactly once per request id and answers questions about them."""

    def __init__(
        self,
        store: EventStore,
        locator: Locator,
        on_change: Callable[[], None] | None = None,
        categories: CategoryCatalog | None = None,
        on_category: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        """`on_category(tenant, code)` runs after a category is stored: other replicas
        keep the tree in memory too."""
        self.store = store
        self.locator = locator
        self._on_change = on_change or (lambda: None)
        self.categories = categories or CategoryCatalog()
        self._on_category = on_category

    async def reload_categories(self) -> None:
        """Read the category tree again (another replica changed it)."""
        self.categories.reset(await self.store.list_categories())

    async def report(self, principal: Principal, report: NewReport) -> tuple[Event, bool]:
        """Record a report; returns (event, created). A retry returns the first event."""
        return (await self.report_many(principal, [report], batch=False))[0]

    async def report_many(
        self, principal: Principal, reports: list[NewReport], *, batch: bool = True
    ) -> list[tuple[Event, bool]]:
        """Record reports located in one map call and stored in one transaction.

        Field names in errors carry `requests[i].` in a batch, so the caller knows which.
        """
        for parent in {r.parent for r in reports}:
            if not principal.can_see(parent):
                raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        results: list[tuple[Event, bool] | None] = [None] * len(reports)
        fresh: list[int] = []
        earlier = await self.store.find_by_requests(
            [(r.parent, r.reporter, r.request_id) for r in reports]
        )
        for i, report in enumerate(reports):
            previous = earlier.get((report.parent, report.reporter, report.request_id))
            if previous is None:
                fresh.append(i)
            else:
                results[i] = self._replay(previous, report)
        fresh, repeats = _first_of_each_key(reports, fresh)
        if fresh:
            await self._check_media(principal, [(i, reports[i]) for i in fresh], batch)
            parent = reports[fresh[0]].parent
            places = await self.locator.locate_many(parent, [reports[i].location for i in fresh])
            now = datetime.now(UTC)
            items = []
            owners: list[int | None] = []  # which report each item answers (None: a part)
            chosen: dict[str, Category] = {}
            for i, place in zip(fresh, places, strict=True):
                report = reports[i]
                prefix = f"requests[{i}]." if batch else ""
                if place is None:
                    raise InvalidArgument.field(
                        f"{prefix}event.location",
                        f"({report.location.longitude}, {report.location.latitude}) lies "
                        f"outside every village of {tenancy.tenant_name(report.parent)}",
                    )
                category = self.categories.get(place.village, report.category)
                if category is None:
                    known = sorted(self.categories.effective(place.village))
                    raise InvalidArgument.field(
                        f"{prefix}event.category",
                        f"unknown category {report.category[:64]!r} in {place.village}; "
                        f"known: {', '.join(known)}",
                    )
                event = self._new_event(report, place, _when(report, now, prefix), category)
                chosen[event.id] = category
                items.append((report, event))
                owners.append(i)
                # A joint application's parts go in the same transaction: never one
                # without the other.
                for n, code in enumerate(category.joint_categories, start=1):
                    part_category = self.categories.get(place.village, code)
                    if part_category is None:
                        raise InvalidArgument.field(
                            f"{prefix}event.category",
                            f"{report.category!r} is a joint application whose part {code!r} "
                            f"is not a category in {place.village}",
                        )
                    part = replace(report, category=code, request_id=f"{report.request_id}~{n}")
                    child = replace(
                        self._new_event(part, place, event.create_time, part_category),
                        parent_event=event.id,
                    )
                    chosen[child.id] = part_category
                    items.append((part, child))
                    owners.append(None)

            def find_original(nearby: NearbyQuery, event: Event) -> Event:
                return mark_if_duplicate(nearby, event, chosen[event.id])

            def check_taken(report: NewReport, fingerprint: str, event_id: str) -> None:
                if not report.same_request(fingerprint):
                    raise _key_reused(report, event_id)

            stored = await self.store.create_many(items, find_original, check_taken)
            self._on_change()
            raced: list[int] = []
            for owner, (event, created) in zip(owners, stored, strict=True):
                if owner is None:
                    continue  # a part: its application answers for it
                if created:
                    results[owner] = (event, True)
                else:
                    raced.append(owner)
            if raced:
                # Another create took these keys meanwhile: answer with its events.
                winners = await self.store.find_by_requests(
                    [(reports[i].parent, reports[i].reporter, reports[i].request_id) for i in raced]
                )
                for i in raced:
                    report = reports[i]
                    found = winners[(report.parent, report.reporter, report.request_id)]
                    results[i] = self._replay(found, report)
        for later, first in repeats.items():
            answer = results[first]
            assert answer is not None  # every first of a key was answered above
            results[later] = (answer[0], False)
        return [r for r in results if r is not None]

    @staticmethod
    def _new_event(report: NewReport, place: GridPlace, now: datetime, category: Category) -> Event:
        first = TimelineEntry(report.reporter, now, None, State.REPORTED, "reported")
        return Event(
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
            timeline=(first,),
            severity=report.severity or category.default_severity,
            media=report.media,
            reporter_contact=report.reporter_contact,
            address=report.address,
            entity=report.entity,
            trace_context=report.trace_context,
        )

    @staticmethod
    def _replay(previous: tuple[Event, str], report: NewReport) -> tuple[Event, bool]:
        event, fingerprint = previous
        if not report.same_request(fingerprint):
            raise _key_reused(report, event.id)
        return event, False

    async def attach(self, principal: Principal, tenant: str, content: bytes) -> Attachment:
        """Keep a photo for a report or a resolution (ADR 36)."""
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        attachment = attachments.new_attachment(principal, tenant, content)
        await self.store.save_attachment(attachment, content)
        return attachment

    async def attachment(
        self, principal: Principal, tenant: str | None, attachment_id: str
    ) -> tuple[Attachment, bytes]:
        """A photo with its bytes, for its uploader and whoever reads the tenant's events;
        NOT_FOUND for anyone else, and under a tenant that does not hold it."""
        found = await self.store.get_attachment(attachment_id, content=True)
        if (
            found is None
            or not attachments.reads(principal, found[0])
            or (tenant is not None and not tenancy.contains(tenant, found[0].tenant))
        ):
            raise attachments.not_found(attachment_id)
        return found

    async def _check_media(
        self, principal: Principal, reports: list[tuple[int, NewReport]], batch: bool
    ) -> None:
        """Photos a report names by resource name must be the reporter's own uploads.
        Each report comes with its index in the request, which errors name."""
        for i, report in reports:
            prefix = f"requests[{i}]." if batch else ""
            for k, uri in enumerate(report.media):
                reference = attachments.parse_reference(uri)
                if reference is None:
                    continue
                found = await self.store.get_attachment(reference[1], content=False)
                attachment = found[0] if found and found[0].tenant == reference[0] else None
                attachments.check_usable(
                    principal,
                    attachment,
                    f"{prefix}event.media_uris[{k}]",
                    report.reporter if principal.is_anonymous else "",
                )

    async def transition(
        self,
        principal: Principal,
        tenant: str | None,
        event_id: str,
        target: State,
        note: str,
        etag: str,
        duplicate_of: str = "",
    ) -> Event:
        """Move an event along its lifecycle if the caller may take that move.

        Illegal moves name the current state; a move the caller may not take is
        PERMISSION_DENIED naming who may (see `access.MAY`). Marking a duplicate names
        the original, an event of the same village.
        """
        original: Event | None = None
        if target is State.DUPLICATE:
            if not duplicate_of:
                raise InvalidArgument.field("duplicate_of", "names the original of a duplicate")
            if duplicate_of == event_id:
                raise InvalidArgument.field("duplicate_of", "an event cannot repeat itself")
            await self.get(principal, tenant, event_id)  # NOT_FOUND comes first
            try:
                original = await self.get(principal, tenant, duplicate_of)
            except NotFound:
                raise InvalidArgument.field(
                    "duplicate_of", f"event {duplicate_of[:64]!r} not found"
                ) from None
        elif duplicate_of:
            raise InvalidArgument.field("duplicate_of", "only with state duplicate")

        def change(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            action = lifecycle.check_transition(event.state, target)
            access.check(principal, event, action)
            now = datetime.now(UTC)
            moved = replace(event, state=target, update_time=now)
            if original is not None:
                if original.tenant != event.tenant or original.state in lifecycle.FINISHED_STATES:
                    raise InvalidArgument.field(
                        "duplicate_of", "must be an unfinished event of the same village"
                    )
                moved = replace(moved, duplicate_of=original.id)
                note_text = note or f"repeats {original.id}"
            else:
                note_text = note
            entry = TimelineEntry(principal.subject, now, event.state, target, note_text)
            return moved, entry, None

        moved = await self._update(event_id, change, principal, tenant, etag, fact=STATE_CHANGED)
        await self._roll_up(moved)
        return moved

    async def _roll_up(self, part: Event) -> None:
        """When the last department answers its part of a joint application, resolve the
        application with every part's answer (state and the department's last note)."""
        if not part.parent_event or part.state not in _ANSWERED:
            return
        parts, _ = await self.store.list(
            part.tenant, {"parent": part.parent_event}, MAX_JOINT_PARTS * 2, None
        )
        if any(p.state not in _ANSWERED for p in parts):
            return
        answers = []
        for listed in sorted(parts, key=lambda p: p.category):
            full = await self.store.get(listed.id) or listed
            note = full.timeline[-1].note if full.timeline else ""
            answers.append(f"{full.category}: {full.state.value}" + (f" ({note})" if note else ""))

        def change(application: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            if application.state not in lifecycle.OPEN_STATES:
                raise _AlreadyAnswered
            now = datetime.now(UTC)
            entry = TimelineEntry(
                JOINT_ACTOR, now, application.state, State.RESOLVED, "; ".join(answers)[:2000]
            )
            return replace(application, state=State.RESOLVED, update_time=now), entry, None

        with contextlib.suppress(_AlreadyAnswered, NotFound):
            await self._update(part.parent_event, change, None, None, fact=STATE_CHANGED)

    async def evaluate(
        self,
        principal: Principal,
        tenant: str | None,
        event_id: str,
        score: int,
        text: str,
        etag: str,
    ) -> Event:
        """The reporter rates a resolved event, which closes it."""
        if not score:
            raise InvalidArgument.field("score", "is required: 1 to 5")

        def change(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            access.check(principal, event, lifecycle.Action.EVALUATE)
            if event.state is not State.RESOLVED:
                raise FailedPrecondition(
                    f"only a resolved event can be evaluated; this one is {event.state.value}",
                    reason="ILLEGAL_TRANSITION",
                    metadata={"current_state": event.state.value},
                )
            now = datetime.now(UTC)
            entry = TimelineEntry(
                principal.subject, now, event.state, State.CLOSED, f"evaluated {score}/5"
            )
            closed = replace(
                event, state=State.CLOSED, update_time=now, evaluation=Evaluation(score, text, now)
            )
            return closed, entry, None

        return await self._update(event_id, change, principal, tenant, etag, fact=STATE_CHANGED)

    async def comment(
        self, principal: Principal, tenant: str | None, event_id: str, text: str
    ) -> Event:
        if not text.strip():
            raise InvalidArgument.field("text", "is required")

        def change(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            access.check(principal, event, lifecycle.Action.COMMENT)
            now = datetime.now(UTC)
            return replace(event, update_time=now), None, Comment(principal.subject, text, now)

        return await self._update(event_id, change, principal, tenant, fact=COMMENTED)

    async def amend(
        self,
        principal: Principal,
        tenant: str | None,
        event_id: str,
        *,
        category: str | None = None,
        location: Point | None = None,
        note: str = "",
        etag: str = "",
    ) -> Event:
        """Staff correct an open event's category or place (a resident's guess of the
        category, a pin dropped on the wrong street).

        The new place must lie in the event's village; the event keeps its state, the
        timeline says what changed, and the change is published as `event.recategorized`
        (or `event.located_again` when only the place moved) so dispatch routes it again.
        """
        if category is None and location is None:
            raise InvalidArgument.field("update_mask", "names category, location or both")
        current = await self.get(principal, tenant, event_id)  # NOT_FOUND comes first
        place: GridPlace | None = None
        if location is not None:
            (place,) = await self.locator.locate_many(current.tenant, [location])
            if place is None or place.village != current.tenant:
                raise InvalidArgument.field(
                    "event.location",
                    f"({location.longitude}, {location.latitude}) lies outside the event's "
                    f"village {tenancy.tenant_name(current.tenant)}",
                )
        if category is not None and self.categories.get(current.tenant, category) is None:
            known = sorted(self.categories.effective(current.tenant))
            raise InvalidArgument.field(
                "event.category",
                f"unknown category {category[:64]!r} in {current.tenant}; "
                f"known: {', '.join(known)}",
            )

        def change(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            access.check(principal, event, lifecycle.Action.AMEND)
            if event.state not in lifecycle.OPEN_STATES:
                raise FailedPrecondition(
                    f"only an open event can be corrected; this one is {event.state.value}",
                    reason="EVENT_NOT_OPEN",
                    metadata={"current_state": event.state.value},
                )
            now = datetime.now(UTC)
            changed, said = event, []
            if category is not None and category != event.category:
                changed = replace(changed, category=category)
                said.append(f"category {event.category} -> {category}")
            if place is not None and location and not _same_place(location, event.location):
                changed = replace(changed, location=location, place=place)
                said.append(f"moved to grid cell {place.grid_cell or '-'}")
            if not said:
                return event, None, None
            text = "; ".join(said) + (f": {note}" if note else "")
            entry = TimelineEntry(principal.subject, now, event.state, event.state, text)
            return replace(changed, update_time=now), entry, None

        recategorized = category is not None and category != current.category
        moved = location is not None and not _same_place(location, current.location)
        if not (recategorized or moved):
            # Nothing to correct: no new version, nothing published; the checks still hold.
            access.check(principal, current, lifecycle.Action.AMEND)
            _check_etag(current, etag)
            return current
        fact = RECATEGORIZED if recategorized else LOCATED_AGAIN
        return await self._update(event_id, change, principal, tenant, etag, fact=fact)

    async def auto_close(self, now: datetime, after: timedelta, batch: int = 200) -> int:
        """Close events resolved longer ago than `after` that nobody evaluated.

        A sweep of the whole store by the service itself (ALL_TENANTS);
        returns how many it closed.
        """
        filters: dict[str, object] = {"state": State.RESOLVED.value, "updated_before": now - after}
        events, _ = await self.store.list(ALL_TENANTS, filters, batch, None)
        closed = 0
        note = f"closed automatically {after.total_seconds() / 3600:g} h after resolution"

        def change(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            lifecycle.check_transition(event.state, State.CLOSED)
            entry = TimelineEntry(AUTO_CLOSER, now, event.state, State.CLOSED, note)
            return replace(event, state=State.CLOSED, update_time=now), entry, None

        for event in events:
            try:
                await self._update(event.id, change, None, None, event.etag, fact=STATE_CHANGED)
            except (FailedPrecondition, Aborted):
                continue  # changed meanwhile (evaluated, reopened): leave it
            closed += 1
        return closed

    async def _update(
        self,
        event_id: str,
        change: Change,
        principal: Principal | None,
        tenant: str | None,
        etag: str = "",
        *,
        fact: str,
    ) -> Event:
        """Apply a change in the store's transaction, after the checks every change needs.

        Visibility comes first, so another tenant's event is NOT_FOUND whatever etag is
        sent; then the etag, so a stale one is ABORTED before anything changes. A
        `principal` of None is the service itself (sweeps).
        """

        def guarded(event: Event) -> tuple[Event, TimelineEntry | None, Comment | None]:
            if principal is not None and not _visible(principal, tenant, event):
                raise NotFound(f"event {event_id!r} not found")
            _check_etag(event, etag)
            return change(event)

        event = await self.store.update(event_id, guarded, fact)
        self._on_change()
        return event

    async def changes(
        self, principal: Principal, parent: str, after: int, limit: int = 500
    ) -> list[OutboxEntry]:
        """What happened in a tenant subtree after an offset, oldest first.

        The caller filters the entries it may read with `access.reads`: only the
        payload names the reporter.
        """
        if principal.is_anonymous:
            raise PermissionDenied("following changes needs an API key or an access token")
        if not principal.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        if after < 0:
            raise InvalidArgument.field("after_offset", "must not be negative (-1 means now)")
        return await self.store.changes(parent, after, limit)

    async def resolve_offset(self, principal: Principal, parent: str, after: int) -> int:
        """-1 means "from now": the newest offset at the time of the call."""
        if after == -1:
            if not principal.can_see(parent):
                raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
            return await self.store.latest_offset()
        return after

    async def get(self, principal: Principal, tenant: str | None, event_id: str) -> Event:
        """The event as stored. A resident also reads the original their report was
        found to repeat, to follow its progress; the anonymous reader reads events of
        public categories (callers show them through `access.seen_by`)."""
        event = await self.store.get(event_id)
        if event is not None and await self._shown(principal, tenant, event):
            return event
        raise NotFound(f"event {event_id!r} not found")

    async def get_many(
        self, principal: Principal, wanted: list[tuple[str | None, str]]
    ) -> list[Event | NotFound]:
        """`get` for each (tenant, event id), read from the store together: each the
        event, or the NotFound `get` would raise."""
        stored = await self.store.get_many([event_id for _, event_id in wanted])
        found: list[Event | NotFound] = []
        for tenant, event_id in wanted:
            event = stored.get(event_id)
            if event is not None and await self._shown(principal, tenant, event):
                found.append(event)
            else:
                found.append(NotFound(f"event {event_id!r} not found"))
        return found

    async def _shown(self, principal: Principal, tenant: str | None, event: Event) -> bool:
        return (
            principal.can_see(event.tenant)
            and (tenant is None or tenancy.contains(tenant, event.tenant))
            and await self._reads(principal, event)
        )

    async def _reads(self, principal: Principal, event: Event) -> bool:
        if principal.is_anonymous:
            return self._is_public(event)
        if access.reads(principal, event.reporter):
            return True
        mine = {"reporter": principal.subject, "duplicate_of": event.id}
        repeats, _ = await self.store.list(event.tenant, mine, 1, None)
        return bool(repeats)

    def _is_public(self, event: Event) -> bool:
        category = self.categories.get(event.tenant, event.category)
        return category is not None and category.public

    def _narrowed(self, principal: Principal, parent: str, filters: dict[str, object]) -> None:
        """Residents' queries cover their own reports; the anonymous reader's the
        categories public somewhere in the subtree."""
        if principal.is_anonymous:
            filters["categories"] = self.categories.public_codes(parent)
        elif not access.reads_subtree(principal):
            filters["reporter"] = principal.subject

    async def list(
        self,
        principal: Principal,
        parent: str,
        filter_text: str,
        size: int,
        token: str,
        order_by: str = "",
    ) -> EventPage:
        if not principal.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        filters = to_filters(filter_text, order_by)
        self._narrowed(principal, parent, filters)
        limit = paging.page_size(size)
        query = {"parent": parent, "filter": filter_text, "order": filters.get("order", "desc")}
        cursor = paging.decode_token(token, query)
        events, next_cursor = await self.store.list(parent, filters, limit, cursor)
        if principal.is_anonymous:
            events = [e for e in events if self._is_public(e)]
        next_token = paging.encode_token(next_cursor, query) if next_cursor else ""
        return EventPage(events=events, next_page_token=next_token)

    async def statistics(self, principal: Principal, parent: str, filter_text: str) -> Statistics:
        """Counts and service figures for a tenant subtree, for dashboards."""
        if not principal.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        filters = to_filters(filter_text)
        self._narrowed(principal, parent, filters)
        rows = await self.store.statistics_rows(parent, filters)
        return summarise(rows, datetime.now(UTC), self.categories.effective(parent))

    async def define_category(
        self, principal: Principal, tenant: str, category: Category
    ) -> Category:
        """Add or override a category for a tenant's subtree."""
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        if not principal.has_scope(CONFIGURE_SCOPE):
            raise PermissionDenied(f"defining categories needs the {CONFIGURE_SCOPE!r} scope")
        check_category(category)
        await self.store.save_category(tenant, category)
        self.categories.put(tenant, category)
        if self._on_category is not None:
            await self._on_category(tenant, category.code)
        return category

    def list_categories(
        self, principal: Principal, tenant: str
    ) -> builtins.list[tuple[str, Category]]:
        """What `tenant` can report, and at which level each definition lives."""
        if not (principal.can_see(tenant) or tenancy.contains(tenant, principal.tenant)):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        effective = self.categories.effective(tenant)
        return [
            (self.categories.defined_at(tenant, code) or "", effective[code])
            for code in sorted(effective)
        ]


def _when(report: NewReport, now: datetime, prefix: str) -> datetime:
    """A report's time: now, or for an import of earlier records the time it happened
    (never in the future, where it would dodge SLA clocks and duplicate windows)."""
    if report.reported_time is None:
        return now
    if report.reported_time > now:
        raise InvalidArgument.field(
            f"{prefix}event.create_time", "an imported report cannot happen in the future"
        )
    return report.reported_time

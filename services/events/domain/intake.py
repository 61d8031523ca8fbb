"""Reports from people without an account, where a village takes them (ADR 35).

A village's (or an ancestor's) intake settings say whether it takes reports without an
account and how many an hour. Such a report's reporter is not a person but its
receipt: `anonymous:` and a digest of the client's secret request id, so the event
names nobody, a retry with the same request id is the same event, and only the
holder of the receipt (`{event}.{request_id}`) follows or evaluates it. The service
counts the village's reports without an account itself, so a gateway that forgot
its per-address limit still cannot flood a village.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from services.events.domain import access, attachments
from services.events.domain.attachments import Attachment
from services.events.domain.model import Event, GridPlace, NewReport, Point
from services.kit import tenancy
from services.kit.errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from services.kit.principal import Principal

if TYPE_CHECKING:
    from services.events.domain.service import EventHub

CONFIGURE_SCOPE = "events:configure"
REPORTER_PREFIX = "anonymous:"
# The request id is the receipt's secret: long enough not to be guessed.
SECRET = re.compile(r"[A-Za-z0-9_-]{22,128}")
_RECEIPT = re.compile(r"(ev_[A-Za-z0-9]{1,64})\.([A-Za-z0-9_-]{22,128})")
WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class IntakeSettings:
    """Whether a tenant's villages take reports without an account, and how many."""

    anonymous_reports: bool = False
    anonymous_reports_per_hour: int = 20


OFF = IntakeSettings()
SETTINGS_FIELDS = frozenset({"anonymous_reports", "anonymous_reports_per_hour"})


def reporter_of(secret: str) -> str:
    """The reporter an anonymous report is stored under: a digest, never the secret."""
    digest = hashlib.sha256(f"grassroots-receipt:{secret}".encode()).hexdigest()
    return REPORTER_PREFIX + digest[:40]


def is_anonymous_reporter(reporter: str) -> bool:
    return reporter.startswith(REPORTER_PREFIX)


def receipt_of(event_id: str, secret: str) -> str:
    return f"{event_id}.{secret}"


def parse_receipt(receipt: str) -> tuple[str, str]:
    """(event id, secret); INVALID_ARGUMENT naming `receipt` when it has another shape."""
    match = _RECEIPT.fullmatch(receipt)
    if match is None:
        raise InvalidArgument.field("receipt", "is the receipt the report's answer gave")
    return match.group(1), match.group(2)


def receipt_view(event: Event) -> Event:
    """The event as its receipt's holder sees it: the public view (no reporter, contact,
    comments or actors), without the grid worker, with their own evaluation."""
    seen = access.public_view(event)
    place = GridPlace(event.place.village, event.place.grid_cell, "")
    return replace(seen, place=place, evaluation=event.evaluation)


class AnonymousIntake:
    """The use cases of reports without an account, on top of the event hub."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    async def settings(self, principal: Principal, tenant: str) -> tuple[str, IntakeSettings]:
        """The settings that apply at `tenant` and the level defining them ("" for none)."""
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        return await self._effective(tenant)

    async def _effective(self, tenant: str) -> tuple[str, IntakeSettings]:
        levels = tenancy.ancestors_and_self(tenant)
        defined = await self.hub.store.intake_settings(levels)
        for level in reversed(levels):
            if level in defined:
                return level, defined[level]
        return "", OFF

    async def define(
        self,
        principal: Principal,
        tenant: str,
        settings: IntakeSettings,
        fields: frozenset[str] = SETTINGS_FIELDS,
    ) -> tuple[str, IntakeSettings]:
        """Set a tenant's intake settings for its subtree (nearer levels still win).
        Only `fields` are taken from `settings`; the others keep the values that apply at
        the tenant now, so a change of the hourly number alone leaves reports on or off."""
        if not principal.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        if not principal.has_scope(CONFIGURE_SCOPE):
            raise PermissionDenied(f"intake settings need the {CONFIGURE_SCOPE!r} scope")
        unknown = sorted(fields - SETTINGS_FIELDS)
        if unknown:
            raise InvalidArgument.field(
                "update_mask", f"{unknown[0]!r} is not a field of the intake settings"
            )
        if fields != SETTINGS_FIELDS:
            _, now = await self._effective(tenant)
            kept = {name: getattr(now, name) for name in SETTINGS_FIELDS - fields}
            settings = replace(settings, **kept)
        if not 1 <= settings.anonymous_reports_per_hour <= 10_000:
            raise InvalidArgument.field(
                "intake_settings.anonymous_reports_per_hour", "must be 1 to 10000"
            )
        await self.hub.store.save_intake_settings(tenant, settings)
        return tenant, settings

    async def report(self, principal: Principal, report: NewReport) -> tuple[Event, bool]:
        """Record a report without an account; `report.request_id` is its secret.

        A retry with the same secret answers the first event even when the village's
        hour is used up. Otherwise the village the location lies in must take such
        reports (PERMISSION_DENIED naming it) and be under its hourly number
        (RESOURCE_EXHAUSTED with the seconds to wait).
        """
        if not SECRET.fullmatch(report.request_id):
            raise InvalidArgument.field(
                "request_id", "22 to 128 letters, digits, '-' and '_' (a random UUID will do)"
            )
        if not principal.can_see(report.parent):
            raise NotFound(f"tenant {tenancy.tenant_name(report.parent)!r} not found")
        report = replace(report, reporter=reporter_of(report.request_id), reporter_contact="")
        key = (report.parent, report.reporter, report.request_id)
        if key not in await self.hub.store.find_by_requests([key]):
            (place,) = await self.hub.locator.locate_many(report.parent, [report.location])
            if place is not None:
                await self._admit(place.village)
                _photos_kept_in(place.village, report.media)
        return await self.hub.report(principal, report)

    async def attach(
        self, principal: Principal, parent: str, secret: str, location: Point, content: bytes
    ) -> Attachment:
        """Keep a photo for the report `secret` will make at `location` (ADR 36).

        The village the place lies in keeps it, so its staff read it as they read the
        report; it must take reports without an account and have some left this hour
        (the report's own limits). The uploader is the report's reporter, the receipt's
        digest: only that report may name the photo.
        """
        if not SECRET.fullmatch(secret):
            raise InvalidArgument.field(
                "request_id", "22 to 128 letters, digits, '-' and '_' (the report's request_id)"
            )
        if not principal.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        (place,) = await self.hub.locator.locate_many(parent, [location])
        if place is None:
            raise InvalidArgument.field(
                "location", f"is in no village of {tenancy.tenant_name(parent)}"
            )
        await self._admit(place.village)
        uploader = Principal(subject=reporter_of(secret), tenant=place.village, kind="user")
        return await self.hub.attach(uploader, place.village, content)

    async def _admit(self, village: str) -> None:
        _, settings = await self._effective(village)
        if not settings.anonymous_reports:
            raise PermissionDenied(
                f"{tenancy.tenant_name(village)} takes reports only from signed-in people",
                reason="ANONYMOUS_REPORTS_OFF",
                metadata={"village": tenancy.tenant_name(village)},
            )
        since = datetime.now(UTC) - WINDOW
        taken = await self.hub.store.count_reports(village, REPORTER_PREFIX, since)
        if taken >= settings.anonymous_reports_per_hour:
            raise ResourceExhausted(
                f"{tenancy.tenant_name(village)} has taken its "
                f"{settings.anonymous_reports_per_hour} reports without an account this "
                "hour; sign in, or try again later",
                reason="ANONYMOUS_REPORTS_LIMIT",
                metadata={"retry_after_seconds": str(int(WINDOW.total_seconds() / 4))},
            )

    async def follow(self, principal: Principal, receipt: str) -> Event:
        """The event a receipt names; NOT_FOUND for a wrong receipt or one outside
        the caller's subtree, whatever part of it is wrong."""
        event_id, secret = parse_receipt(receipt)
        event = await self.hub.store.get(event_id)
        if (
            event is None
            or not principal.can_see(event.tenant)
            or not hmac.compare_digest(event.reporter, reporter_of(secret))
        ):
            raise NotFound("no report has this receipt")
        return event

    async def evaluate(self, principal: Principal, receipt: str, score: int, text: str) -> Event:
        """The receipt's holder rates the resolved report, as its reporter would."""
        event = await self.follow(principal, receipt)
        holder = Principal(subject=event.reporter, tenant=event.tenant, kind="user")
        return await self.hub.evaluate(holder, event.tenant, event.id, score, text, "")


def _photos_kept_in(village: str, media: tuple[str, ...]) -> None:
    """A report's photos are those kept for its own village: one sent for another
    place would be shown to staff who cannot open it."""
    for k, uri in enumerate(media):
        reference = attachments.parse_reference(uri)
        if reference is not None and not tenancy.contains(village, reference[0]):
            raise InvalidArgument.field(
                f"event.media_uris[{k}]", "was kept for another place than the report's"
            )

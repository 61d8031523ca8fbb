"""Scheduled service orders: recurring visits from a plan, as an iCalendar RRULE.

A service plan ("visit each resident living alone every Monday at 9") names its
targets, its carers and its recurrence. Each occurrence makes one order per target,
assigned to the nearest carer with room, and the carer checks in and out at the
target. Occurrences are computed in China Standard Time, so `BYHOUR=9` means nine in
the morning where the village is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from services.kit.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
)
from services.kit.geodesy import great_circle_m

LOCAL_TIME = ZoneInfo("Asia/Shanghai")
# Visits are planned by the day or coarser: an hourly rule over a thousand residents
# would bury the carers, and is almost always a typo for DAILY.
ALLOWED_FREQUENCIES = {DAILY: "DAILY", WEEKLY: "WEEKLY", MONTHLY: "MONTHLY", YEARLY: "YEARLY"}
# A plan starts in this century and within ten years of being saved; rules are evaluated
# from their start, so an earlier one only costs time (and reads old local times).
EARLIEST_START = datetime(2000, 1, 1, tzinfo=LOCAL_TIME)
LATEST_START_AHEAD = timedelta(days=3653)
MAX_INTERVAL = 1000
# The RRULE parts a visit plan is written with; BYSETPOS, BYWEEKNO, BYYEARDAY and
# dateutil's BYEASTER are refused: visits need none of them, and long lists of them make
# each searched period cost more (a 465-character BYSETPOS took seconds to refuse).
RRULE_PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", "BYMONTHDAY", "BYMONTH"}
    | {"BYHOUR", "BYMINUTE", "BYSECOND"}
)
MAX_PART_VALUES = 62  # BYMONTHDAY's 31 days counted from either end of the month
FIRST_VISIT_WITHIN = timedelta(days=3653)
# The Gregorian calendar, weekdays included, repeats every 400 years.
_CALENDAR_CYCLE_YEARS = 400
MAX_TARGETS = 2000
MAX_CARERS = 500
MAX_DISTANCE_M = 5000.0
MAX_VISIT_MINUTES = 7 * 24 * 60
MAX_NOTE = 2000
_TARGET_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class OrderState(Enum):
    ASSIGNED = "assigned"
    CHECKED_IN = "checked_in"
    DONE = "done"
    UNASSIGNED = "unassigned"
    CANCELLED = "cancelled"  # its plan was deleted before anybody checked in


# Orders a deleted plan cancels: nobody has checked in yet.
NOT_STARTED = (OrderState.ASSIGNED, OrderState.UNASSIGNED)


@dataclass(frozen=True)
class Place:
    """A WGS84 position."""

    longitude: float
    latitude: float


@dataclass(frozen=True)
class Target:
    id: str
    display_name: str
    place: Place


@dataclass(frozen=True)
class ServicePlanDefinition:
    display_name: str
    recurrence: str
    start_time: datetime
    visit_minutes: int
    handler_role: str
    carers: tuple[str, ...]
    max_distance_m: float
    targets: tuple[Target, ...]
    # Role of whoever takes over an order nobody checked in to by its due time ("" for
    # no escalation).
    escalation_role: str = ""


@dataclass(frozen=True)
class ServicePlan:
    id: str
    tenant: str
    definition: ServicePlanDefinition
    create_time: datetime
    # The next occurrence without orders yet; None once the rule has no more.
    next_occurrence: datetime | None
    version: int = 1
    # When the plan was deleted: kept for its orders (a checked-in visit still checks out
    # within the plan's distance), but no longer read, listed or scheduled.
    delete_time: datetime | None = None

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True)
class ServiceOrder:
    id: str
    tenant: str
    plan_id: str
    target: Target
    scheduled_time: datetime
    due_time: datetime
    handler: str
    state: OrderState
    check_in_time: datetime | None = None
    check_in_place: Place | None = None
    check_out_time: datetime | None = None
    check_out_place: Place | None = None
    note: str = ""
    version: int = 1
    # Who had the order before it was escalated for being missed, and when.
    escalated_from: str = ""
    escalate_time: datetime | None = None

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


def _rule(recurrence: str, start: datetime) -> rrule:
    text = recurrence.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    if not text or "\n" in text or ":" in text:
        raise ValueError("one RRULE line, for example FREQ=WEEKLY;BYDAY=MO;BYHOUR=9")
    rule = rrulestr(text, dtstart=start.astimezone(LOCAL_TIME).replace(microsecond=0))
    if not isinstance(rule, rrule):
        raise ValueError("one RRULE, not a set of rules")
    return rule


def _part_problems(recurrence: str) -> list[str]:
    """What is wrong with the rule's NAME=VALUE parts, before dateutil reads them."""
    text = recurrence.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    problems = []
    for i, part in enumerate(text.split(";")):
        name, equals, value = part.partition("=")
        name = name.strip().upper()
        if not equals or not name or not value.strip():
            problems.append(f"part {i + 1} ({part!r}) is not NAME=VALUE")
        elif name not in RRULE_PARTS:
            problems.append(f"{name} is not used for visits; use {', '.join(sorted(RRULE_PARTS))}")
        elif len(value.split(",")) > MAX_PART_VALUES:
            problems.append(f"{name} lists more than {MAX_PART_VALUES} values")
    return problems


def _ever_fires(rule: rrule) -> bool:
    """Whether the rule's pattern matches any day at all, ignoring COUNT and UNTIL.

    dateutil looks for a rule's next occurrence period by period up to the year 9999,
    so a rule no day satisfies (30 February; BYMONTH=3 with INTERVAL=12 from January)
    would take seconds. Moved forward by whole 400-year cycles of its own interval, the
    rule keeps its pattern (same calendar, same phase) and has at most one cycle left
    to look through: about 146,000 periods however the rule is written.
    """
    step = _CALENDAR_CYCLE_YEARS * rule._interval
    start = rule._dtstart
    cycles = max(0, (datetime.max.year - 1 - start.year) // step)
    probe = rule.replace(
        dtstart=start.replace(year=start.year + cycles * step), count=None, until=None
    )
    return probe.after(probe._dtstart, inc=True) is not None


def _shape_problems(rule: rrule) -> list[str]:
    """What makes a parsed rule unfit for visits: too often, too sparse to evaluate."""
    problems = []
    if rule._freq not in ALLOWED_FREQUENCIES:
        problems.append("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY for visits")
    # dateutil fills BYHOUR, BYMINUTE and BYSECOND from the start when they are absent.
    if any(len(part or ()) > 1 for part in (rule._byhour, rule._byminute, rule._bysecond)):
        problems.append("at most one visit a day: one BYHOUR and one BYMINUTE value")
    if rule._interval > MAX_INTERVAL:
        problems.append(f"INTERVAL must be at most {MAX_INTERVAL}")
    return problems


def first_occurrence(recurrence: str, start: datetime, after: datetime) -> datetime | None:
    """The first occurrence at or after `after` (UTC-aware), or None when none is left."""
    found = _rule(recurrence, start).after(after, inc=True)
    return None if found is None else found.astimezone(start.tzinfo)


def next_occurrence(recurrence: str, start: datetime, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after`."""
    found = _rule(recurrence, start).after(after, inc=False)
    return None if found is None else found.astimezone(start.tzinfo)


def validate(
    definition: ServicePlanDefinition, now: datetime, prefix: str = "service_plan."
) -> datetime:
    """Every problem at once, naming its field; returns the first occurrence to generate.

    A rule that can never fire again (UNTIL in the past, 30 February, COUNT used up
    before now) is refused on `recurrence`, since a plan that makes no orders is a
    mistake nobody would notice until a resident was missed.
    """
    problems: list[FieldViolation] = []

    def text(value: str, name: str, limit: int) -> None:
        if not value.strip():
            problems.append(FieldViolation(prefix + name, "is required"))
        elif len(value) > limit:
            problems.append(FieldViolation(prefix + name, f"at most {limit} characters"))

    text(definition.display_name, "display_name", 200)
    text(definition.handler_role, "handler_role", 64)
    if len(definition.escalation_role) > 64:
        problems.append(FieldViolation(prefix + "escalation_role", "at most 64 characters"))
    first: datetime | None = None
    field_name = prefix + "recurrence"
    start = definition.start_time
    start_ok = EARLIEST_START <= start <= now + LATEST_START_AHEAD
    if not start_ok:
        problems.append(
            FieldViolation(
                prefix + "start_time",
                f"must be from {EARLIEST_START.date().isoformat()} and at most ten years ahead",
            )
        )
    if not definition.recurrence.strip():
        problems.append(FieldViolation(field_name, "is required, for example FREQ=WEEKLY;BYDAY=MO"))
    elif len(definition.recurrence) > 500:
        problems.append(FieldViolation(field_name, "at most 500 characters"))
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in definition.recurrence):
        problems.append(FieldViolation(field_name, "one line without control characters"))
    elif parts := _part_problems(definition.recurrence):
        problems.extend(FieldViolation(field_name, text) for text in parts)
    elif start_ok:
        try:
            rule = _rule(definition.recurrence, start)
            shape = _shape_problems(rule)
            problems.extend(FieldViolation(field_name, text) for text in shape)
            if not shape:
                # The pattern first: a rule no day satisfies is found without a long search.
                if _ever_fires(rule):
                    first = first_occurrence(definition.recurrence, start, max(now, start))
                if first is not None and first > max(now, start) + FIRST_VISIT_WITHIN:
                    problems.append(
                        FieldViolation(
                            field_name,
                            f"its first visit would be on {first.date().isoformat()}, "
                            "more than ten years away",
                        )
                    )
                elif first is None:
                    problems.append(
                        FieldViolation(
                            field_name,
                            "never fires from now on (check UNTIL, COUNT and the BY... parts "
                            "against start_time)",
                        )
                    )
        except (ValueError, TypeError, OverflowError) as exc:
            problems.append(FieldViolation(field_name, f"is not an iCalendar RRULE: {exc}"[:300]))
    if not 1 <= definition.visit_minutes <= MAX_VISIT_MINUTES:
        problems.append(
            FieldViolation(prefix + "visit_minutes", f"must be 1 to {MAX_VISIT_MINUTES}")
        )
    if not (0 < definition.max_distance_m <= MAX_DISTANCE_M):
        problems.append(
            FieldViolation(
                prefix + "max_check_in_distance_meters",
                f"must be more than 0 and at most {MAX_DISTANCE_M:g}",
            )
        )
    if not definition.targets:
        problems.append(FieldViolation(prefix + "targets", "needs at least one target"))
    if len(definition.targets) > MAX_TARGETS:
        problems.append(FieldViolation(prefix + "targets", f"at most {MAX_TARGETS}"))
    seen: set[str] = set()
    for i, target in enumerate(definition.targets):
        at = f"{prefix}targets[{i}]"
        if not _TARGET_ID.fullmatch(target.id):
            problems.append(FieldViolation(at + ".id", "1 to 64 letters, digits, - and _"))
        elif target.id in seen:
            problems.append(FieldViolation(at + ".id", f"{target.id!r} appears twice"))
        seen.add(target.id)
        if len(target.display_name) > 200:
            problems.append(FieldViolation(at + ".display_name", "at most 200 characters"))
    if len(definition.carers) > MAX_CARERS:
        problems.append(FieldViolation(prefix + "carers", f"at most {MAX_CARERS}"))
    for i, carer in enumerate(definition.carers):
        if not carer.strip() or len(carer) > 200:
            problems.append(
                FieldViolation(f"{prefix}carers[{i}]", "a subject, 1 to 200 characters")
            )
    if problems:
        raise InvalidArgument(problems)
    assert first is not None
    return first


def distance_m(a: Place, b: Place) -> float:
    """Great-circle distance in metres between two places."""
    return great_circle_m(a.longitude, a.latitude, b.longitude, b.latitude)


def assign(
    targets: Sequence[Target],
    carers: Sequence[str],
    positions: Mapping[str, Place],
    load: Mapping[str, int],
) -> dict[str, str]:
    """Target id -> carer: the nearest carer with room, so one carer is not sent everywhere.

    Room is a fair share of this round (targets / carers, rounded up) on top of the
    open orders a carer already holds. Carers without a known position rank after
    those with one; ties go to the carer with fewer open orders, then by name.
    """
    if not carers:
        return {}
    share = math.ceil(len(targets) / len(carers))
    taken: dict[str, int] = dict.fromkeys(carers, 0)
    baseline = min(load.get(c, 0) for c in carers)
    chosen: dict[str, str] = {}
    for target in targets:

        def rank(carer: str, target: Target = target) -> tuple[float, int, str]:
            place = positions.get(carer)
            far = distance_m(place, target.place) if place else math.inf
            return (far, load.get(carer, 0) + taken[carer], carer)

        with_room = (
            [c for c in carers if taken[c] < share and load.get(c, 0) - baseline < share]
            or [c for c in carers if taken[c] < share]
            or list(carers)
        )
        carer = min(with_room, key=rank)
        taken[carer] += 1
        chosen[target.id] = carer
    return chosen


def orders_for(
    plan: ServicePlan,
    occurrence: datetime,
    assignment: Mapping[str, str],
    make_id: Callable[[], str],
) -> list[ServiceOrder]:
    """One order per target for an occurrence, each with its assigned carer (or none)."""
    due = occurrence + timedelta(minutes=plan.definition.visit_minutes)
    return [
        ServiceOrder(
            id=make_id(),
            tenant=plan.tenant,
            plan_id=plan.id,
            target=target,
            scheduled_time=occurrence,
            due_time=due,
            handler=assignment.get(target.id, ""),
            state=OrderState.ASSIGNED if assignment.get(target.id) else OrderState.UNASSIGNED,
        )
        for target in plan.definition.targets
    ]


def missed(order: ServiceOrder, now: datetime) -> bool:
    """Due and nobody has checked in: a visit that did not happen (one under way is not)."""
    return (
        order.state in (OrderState.ASSIGNED, OrderState.UNASSIGNED)
        and order.due_time <= now
        and order.escalate_time is None
    )


def escalate(order: ServiceOrder, to: str, now: datetime) -> ServiceOrder:
    """Give a missed order to `to` (the escalation role's nearest handler), keeping who
    had it; the order stays open for the new handler to check in and out."""
    return replace(
        order,
        handler=to,
        state=OrderState.ASSIGNED if to else OrderState.UNASSIGNED,
        escalated_from=order.handler,
        escalate_time=now,
        version=order.version + 1,
    )


def nearest(place: Place, positions: Mapping[str, Place | None]) -> str:
    """The handler nearest the place (those without a position last, then by name); ""
    when there is nobody."""
    if not positions:
        return ""

    def rank(handler: str) -> tuple[float, str]:
        at = positions[handler]
        return (distance_m(at, place) if at else math.inf, handler)

    return min(positions, key=rank)


def _check_visit(order: ServiceOrder, caller: str, place: Place, max_distance_m: float) -> float:
    if order.handler != caller:
        raise PermissionDenied("only the carer the order is assigned to checks in and out")
    far = distance_m(place, order.target.place)
    if far > max_distance_m:
        raise InvalidArgument.field(
            "location",
            f"is {far:.0f} m from {order.target.display_name or order.target.id}; "
            f"the plan allows {max_distance_m:g} m",
        )
    return far


def check_in(
    order: ServiceOrder, caller: str, place: Place, max_distance_m: float, now: datetime
) -> ServiceOrder:
    """The assigned carer arrives; refused farther than the plan allows from the target."""
    _check_visit(order, caller, place, max_distance_m)
    if order.state is not OrderState.ASSIGNED:
        raise FailedPrecondition(
            f"the order is {order.state.value}; only an assigned order checks in"
        )
    return replace(
        order,
        state=OrderState.CHECKED_IN,
        check_in_time=now,
        check_in_place=place,
        version=order.version + 1,
    )


def check_out(
    order: ServiceOrder,
    caller: str,
    place: Place,
    note: str,
    max_distance_m: float,
    now: datetime,
) -> ServiceOrder:
    """The carer leaves with a note, still at the target; the order is done."""
    if len(note) > MAX_NOTE:
        raise InvalidArgument.field("note", f"at most {MAX_NOTE} characters")
    _check_visit(order, caller, place, max_distance_m)
    if order.state is not OrderState.CHECKED_IN:
        raise FailedPrecondition(f"the order is {order.state.value}; check in before checking out")
    return replace(
        order,
        state=OrderState.DONE,
        check_out_time=now,
        check_out_place=place,
        note=note,
        version=order.version + 1,
    )


# What an update may change, as the contract names the fields.
UPDATABLE = (
    "display_name",
    "recurrence",
    "start_time",
    "visit_minutes",
    "handler_role",
    "carers",
    "max_check_in_distance_meters",
    "targets",
    "escalation_role",
)
_ATTRIBUTE = {"max_check_in_distance_meters": "max_distance_m"}


def changed_fields(before: ServicePlanDefinition, after: ServicePlanDefinition) -> list[str]:
    """The contract's names of the fields that differ, in UPDATABLE's order."""
    return [
        f
        for f in UPDATABLE
        if getattr(before, _ATTRIBUTE.get(f, f)) != getattr(after, _ATTRIBUTE.get(f, f))
    ]


def update(
    plan: ServicePlan, definition: ServicePlanDefinition, now: datetime
) -> tuple[ServicePlan, list[str]]:
    """The plan with its new definition, checked as a create is, and what changed. Orders
    already made keep what they were made with; a new rule or start moves the next
    occurrence to the new rule's first from now on (an unchanged rule keeps its place,
    so a plan whose rule has ended can still be renamed)."""
    changed = changed_fields(plan.definition, definition)
    moved = "recurrence" in changed or "start_time" in changed
    first = validate(definition, now if moved else definition.start_time)
    if not changed:
        return plan, []
    return (
        replace(
            plan,
            definition=definition,
            next_occurrence=first if moved else plan.next_occurrence,
            version=plan.version + 1,
        ),
        changed,
    )


def cancel(order: ServiceOrder) -> ServiceOrder:
    """An order whose plan was deleted before anybody checked in."""
    return replace(order, state=OrderState.CANCELLED, version=order.version + 1)

"""Emergency plans: three response levels and what moving between them opens and closes.

Levels follow the Chinese convention: 3 is the mildest, 1 the worst, and 0 means the
plan is stood down. A level's response includes every milder one, so being at level 2
means the actions of levels 3 and 2 are open. Raising from 0 to 2 therefore opens the
items of 3 and 2; lowering from 2 to 3 closes what level 2 opened; standing down
closes everything. A change is computed here, free of storage, so the store can
apply it, its command-log entries and its fact in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from services.command.domain.model import NAME_PATTERN, Position, is_name
from services.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument

LEVELS = (3, 2, 1)
STOOD_DOWN = 0
MAX_DISPLAY_NAME = 200
MAX_TEXT = 2000
MAX_ITEMS_PER_LEVEL = 50
MAX_DISPATCH_COUNT = 1000


class ItemKind(Enum):
    DISPATCH = "dispatch"
    CHECKLIST = "checklist"
    NOTICE = "notice"


class ItemState(Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Dispatch:
    role: str
    team: str = ""
    count: int = 1

    def describe(self) -> str:
        team = f" ({self.team})" if self.team else ""
        return f"dispatch {self.count} x {self.role}{team}"


@dataclass(frozen=True)
class Notice:
    audience: str
    text: str


@dataclass(frozen=True)
class Level:
    level: int
    summary: str = ""
    dispatches: tuple[Dispatch, ...] = ()
    checklist: tuple[str, ...] = ()
    notices: tuple[Notice, ...] = ()
    # Who the checklist's tasks are offered to; empty: they wait for a desk.
    checklist_role: str = ""


@dataclass(frozen=True)
class Item:
    """Something a level opened; it stays listed, closed, after its level steps down.

    Dispatches and checklist lines open tasks in the command desk (`plan_tasks.py`):
    `slots` of them (a dispatch's count, one for a checklist line, none for a notice),
    offered to holders of `role` (and `team`). Ids are unique over the plan's life (the
    plan version that opened the item, then its place), so a task opened by one
    activation is never taken for one of the next."""

    id: str
    level: int
    kind: ItemKind
    description: str
    state: ItemState
    open_time: datetime
    close_time: datetime | None = None
    role: str = ""
    team: str = ""
    slots: int = 0


@dataclass(frozen=True)
class PlanDefinition:
    """What a person writes: the plan without its running state."""

    display_name: str
    levels: tuple[Level, ...]
    signal: str = ""
    # Where the plan's tasks are; None: offered without distance (least recently given work).
    location: Position | None = None

    def level(self, number: int) -> Level:
        return next(level for level in self.levels if level.level == number)


@dataclass(frozen=True)
class EmergencyPlan:
    id: str
    tenant: str
    definition: PlanDefinition
    create_time: datetime
    current_level: int = STOOD_DOWN
    level_reason: str = ""
    level_actor: str = ""
    level_change_time: datetime | None = None
    # The observation time of the newest signal applied, so a late duplicate of an
    # older signal cannot undo a newer one (the bus delivers at least once).
    signal_time: datetime | None = None
    items: tuple[Item, ...] = ()
    version: int = 1
    # When the plan was deleted: it is kept for the record (its tasks and log name it)
    # but no longer read, listed or raised.
    delete_time: datetime | None = None

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True)
class LevelChange:
    """The outcome of a change: the plan after it and what it opened and closed."""

    plan: EmergencyPlan
    from_level: int
    to_level: int
    opened: tuple[Item, ...] = field(default_factory=tuple)
    closed: tuple[Item, ...] = field(default_factory=tuple)
    notices: tuple[Notice, ...] = field(default_factory=tuple)

    @property
    def raised(self) -> bool:
        """Raising means getting worse: a smaller non-zero number, or leaving 0."""
        return severity(self.to_level) > severity(self.from_level)


def severity(level: int) -> int:
    """0 for stood down, 1 for level 3, up to 3 for level 1: bigger is worse."""
    return 0 if level == STOOD_DOWN else 4 - level


def active_levels(current: int) -> tuple[int, ...]:
    """The levels whose actions are open at `current` (mildest first)."""
    return tuple(level for level in LEVELS if current != STOOD_DOWN and level >= current)


def check_level(level: int | None, field_name: str = "level") -> int:
    if level is None:
        raise InvalidArgument.field(field_name, "is required: 3, 2 or 1, or 0 to stand down")
    if level != STOOD_DOWN and level not in LEVELS:
        raise InvalidArgument.field(
            field_name, f"must be 3, 2 or 1 (1 is the worst), or 0 to stand down; got {level}"
        )
    return level


def _text(value: str, field_name: str, limit: int, *, required: bool) -> list[FieldViolation]:
    if required and not value.strip():
        return [FieldViolation(field_name, "is required")]
    if len(value) > limit:
        return [FieldViolation(field_name, f"at most {limit} characters")]
    return []


def _name(value: str, field_name: str, *, required: bool) -> list[FieldViolation]:
    """A role or team a handler can hold: a dispatch to any other name waits forever."""
    if not value:
        return [FieldViolation(field_name, "is required")] if required else []
    if not is_name(value):
        return [FieldViolation(field_name, f"must match {NAME_PATTERN}, like a handler's")]
    return []


def validate(definition: PlanDefinition, prefix: str = "emergency_plan.") -> PlanDefinition:
    """Every problem at once, each naming its field; a plan must have levels 3, 2 and 1."""
    problems = _text(
        definition.display_name, prefix + "display_name", MAX_DISPLAY_NAME, required=True
    )
    problems += _text(definition.signal, prefix + "signal", 300, required=False)
    seen: dict[int, int] = {}
    for i, level in enumerate(definition.levels):
        at = f"{prefix}levels[{i}]"
        if level.level not in LEVELS:
            problems.append(FieldViolation(at + ".level", f"must be 3, 2 or 1, got {level.level}"))
        elif level.level in seen:
            problems.append(FieldViolation(at + ".level", f"level {level.level} appears twice"))
        else:
            seen[level.level] = i
        problems += _text(level.summary, at + ".summary", MAX_TEXT, required=False)
        problems += _name(level.checklist_role, at + ".checklist_role", required=False)
        actions = len(level.dispatches) + len(level.checklist) + len(level.notices)
        if actions > MAX_ITEMS_PER_LEVEL:
            problems.append(FieldViolation(at, f"at most {MAX_ITEMS_PER_LEVEL} actions per level"))
        for j, dispatch in enumerate(level.dispatches):
            where = f"{at}.dispatches[{j}]"
            problems += _name(dispatch.role, where + ".role", required=True)
            problems += _name(dispatch.team, where + ".team", required=False)
            if not 1 <= dispatch.count <= MAX_DISPATCH_COUNT:
                problems.append(
                    FieldViolation(where + ".count", f"must be 1 to {MAX_DISPATCH_COUNT}")
                )
        for j, line in enumerate(level.checklist):
            problems += _text(line, f"{at}.checklist[{j}]", MAX_TEXT, required=True)
        for j, notice in enumerate(level.notices):
            where = f"{at}.notices[{j}]"
            problems += _text(notice.audience, where + ".audience", 64, required=True)
            problems += _text(notice.text, where + ".text", MAX_TEXT, required=True)
    location = definition.location
    if location is not None and not (
        -180 <= location.longitude <= 180 and -90 <= location.latitude <= 90
    ):
        problems.append(FieldViolation(prefix + "location", "is not a WGS84 longitude/latitude"))
    missing = [level for level in LEVELS if level not in seen]
    if missing:
        names = ", ".join(str(level) for level in missing)
        problems.append(
            FieldViolation(
                prefix + "levels",
                f"level {names} is missing: a plan defines levels 3, 2 and 1",
            )
        )
    if problems:
        raise InvalidArgument(problems)
    ordered = tuple(sorted(definition.levels, key=lambda level: -level.level))
    return replace(definition, levels=ordered)


def _open_items(
    definition: PlanDefinition, level: int, version: int, start: int, now: datetime
) -> list[Item]:
    """The items a level opens, numbered `i{version}.{n}`: the plan version that opens
    them keeps ids unique over every activation."""
    spec = definition.level(level)
    described: list[tuple[ItemKind, str, str, str, int]] = [
        *((ItemKind.DISPATCH, d.describe(), d.role, d.team, d.count) for d in spec.dispatches),
        *((ItemKind.CHECKLIST, line, spec.checklist_role, "", 1) for line in spec.checklist),
        *((ItemKind.NOTICE, f"notify {n.audience}: {n.text}", "", "", 0) for n in spec.notices),
    ]
    return [
        Item(f"i{version}.{start + n}", level, kind, text, ItemState.OPEN, now, None, role, team, k)
        for n, (kind, text, role, team, k) in enumerate(described, start=1)
    ]


def change_level(
    plan: EmergencyPlan, to_level: int, actor: str, reason: str, now: datetime
) -> LevelChange:
    """Move the plan to `to_level`: open the items of newly active levels, close those
    of levels no longer active. Leaving 0 starts a fresh list of items."""
    check_level(to_level)
    from_level = plan.current_level
    before = set(active_levels(from_level))
    after = set(active_levels(to_level))
    items = list(plan.items) if from_level != STOOD_DOWN else []
    closed: list[Item] = []
    for i, item in enumerate(items):
        if item.state is ItemState.OPEN and item.level not in after:
            items[i] = replace(item, state=ItemState.CLOSED, close_time=now)
            closed.append(items[i])
    opened: list[Item] = []
    notices: list[Notice] = []
    # Mildest level first, so the list reads in the order a response escalates.
    for level in sorted(after - before, reverse=True):
        new = _open_items(plan.definition, level, plan.version + 1, len(opened), now)
        items.extend(new)
        opened.extend(new)
        notices.extend(plan.definition.level(level).notices)
    changed = replace(
        plan,
        current_level=to_level,
        level_reason=reason,
        level_actor=actor,
        level_change_time=now,
        items=tuple(items),
        version=plan.version + 1,
    )
    return LevelChange(changed, from_level, to_level, tuple(opened), tuple(closed), tuple(notices))


# What an update may change, as the contract names the fields.
UPDATABLE = ("display_name", "signal", "levels", "location")
# The reason of the refusal under an active level (the gateway answers 409).
LEVEL_ACTIVE = "EMERGENCY_LEVEL_ACTIVE"
# What cannot change under an active level: its response, and what moves it.
FROZEN_WHILE_ACTIVE = ("levels", "signal")


def check_stood_down(plan: EmergencyPlan, what: str) -> None:
    """Refuse `what` (a delete, a change of levels) while a level is active: the items it
    opened would no longer match the plan, or a plan no one can stand down would stay up."""
    if plan.current_level != STOOD_DOWN:
        raise FailedPrecondition(
            f"level {plan.current_level} of the plan is active: stand it down first "
            f"(level 0), then {what}",
            reason=LEVEL_ACTIVE,
            metadata={"current_level": str(plan.current_level)},
        )


def changed_fields(before: PlanDefinition, after: PlanDefinition) -> list[str]:
    """The contract's names of the fields that differ, in UPDATABLE's order."""
    return [f for f in UPDATABLE if getattr(before, f) != getattr(after, f)]


def update(
    plan: EmergencyPlan, definition: PlanDefinition, now: datetime
) -> tuple[EmergencyPlan, list[str]]:
    """The plan with its new (validated) definition, and what changed. Levels and signal
    are refused under an active level; a new signal forgets the old rule's last
    observation, so the new rule's first signal is not taken for a late one."""
    changed = changed_fields(plan.definition, definition)
    frozen = [f for f in changed if f in FROZEN_WHILE_ACTIVE]
    if frozen:
        check_stood_down(plan, f"change its {' and '.join(frozen)}")
    if not changed:
        return plan, []
    signal_time = plan.signal_time if "signal" not in changed else None
    return (
        replace(plan, definition=definition, signal_time=signal_time, version=plan.version + 1),
        changed,
    )


def delete(plan: EmergencyPlan, now: datetime) -> EmergencyPlan:
    check_stood_down(plan, "delete it")
    return replace(plan, delete_time=now, version=plan.version + 1)

"""Events and tasks as rows a report template can aggregate, beside a form's records.

A department's table often mixes what grid workers entered with what the loop did:
events per category and grid cell, tasks resolved within their SLA. The events and
command services own those facts; an adapter reads them through their public APIs
(`LoopActivity`) and this module turns each into the same shape as a form record, with
a fixed, typed field list (a form of its own, `EVENTS_FORM` and `TASKS_FORM`), so one
template checker and one aggregation serve all three sources and the numbers of two
reports over the same rows agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.empower.domain.forms_model import FieldType, Form, FormField, FormRecord, Source

EVENT_STATES = (
    "reported",
    "accepted",
    "dispatched",
    "in_progress",
    "resolved",
    "closed",
    "rejected",
    "duplicate",
    "reopened",
    "withdrawn",
)
# Nothing more happens to an event in these states (unless it is reopened).
FINISHED_EVENT_STATES = frozenset({"closed", "rejected", "duplicate", "withdrawn"})
EVENT_SOURCES = ("resident", "grid_patrol", "twin_rule", "enterprise", "open311")
TASK_STATES = (
    "assigned",
    "accepted",
    "done",
    "escalated",
    "in_progress",
    "waiting",
    "cancelled",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(key: str, label: str) -> FormField:
    return FormField(key=key, label=label, type=FieldType.TEXT)


def _choice(key: str, label: str, options: tuple[str, ...]) -> FormField:
    return FormField(key=key, label=label, type=FieldType.CHOICE, options=options)


def _integer(key: str, label: str) -> FormField:
    return FormField(key=key, label=label, type=FieldType.INTEGER)


def _boolean(key: str, label: str) -> FormField:
    return FormField(key=key, label=label, type=FieldType.BOOLEAN)


EVENTS_FORM = Form(
    id="events",
    tenant="",
    display_name="Events",
    fields=(
        _text("category", "Category"),
        _choice("state", "State", EVENT_STATES),
        _choice("source", "Source", EVENT_SOURCES),
        _integer("severity", "Severity"),
        _boolean("open", "Open"),
        _text("entity", "Twin entity"),
    ),
    create_time=_EPOCH,
)
TASKS_FORM = Form(
    id="tasks",
    tenant="",
    display_name="Tasks",
    fields=(
        _text("category", "Category"),
        _text("team", "Team"),
        _choice("state", "State", TASK_STATES),
        _text("handler_role", "Handler role"),
        _integer("severity", "Severity"),
        _integer("escalation_level", "Escalation level"),
        _boolean("resolved", "Resolved"),
        _boolean("within_sla", "Resolved within SLA"),
        _boolean("overdue", "Overdue"),
        _integer("resolve_minutes", "Minutes to resolve"),
    ),
    create_time=_EPOCH,
)
SOURCE_FORMS = {Source.EVENTS: EVENTS_FORM, Source.TASKS: TASKS_FORM}


@dataclass(frozen=True)
class EventFact:
    """What a report reads of an event (no description, no reporter)."""

    name: str
    village: str
    category: str
    state: str
    source: str
    severity: int
    grid_cell: str
    create_time: datetime
    # The twin entity a rule raised it for (`tenants/.../entities/{id}`), else "".
    entity: str = ""


@dataclass(frozen=True)
class TaskFact:
    """What a report reads of a task."""

    name: str
    village: str
    category: str
    team: str
    state: str
    handler_role: str
    severity: int
    escalation_level: int
    grid_cell: str
    create_time: datetime
    due_time: datetime | None
    resolve_time: datetime | None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def event_row(event: EventFact) -> FormRecord:
    values = {
        "category": event.category,
        "state": event.state,
        "source": event.source,
        "severity": str(event.severity),
        "open": _flag(event.state not in FINISHED_EVENT_STATES),
        # The entity's id: a report per device or vehicle groups by it.
        "entity": event.entity.rsplit("/", 1)[-1],
    }
    return _row(
        event.name, event.village, Source.EVENTS, values, event.grid_cell, event.create_time
    )


def task_row(task: TaskFact, now: datetime) -> FormRecord:
    """`within_sla`: resolved by its due time (or with no SLA); `overdue`: resolved after
    its due time, or still unresolved past it when the report runs."""
    resolved = task.resolve_time is not None
    late = task.due_time is not None and (task.resolve_time or now) > task.due_time
    values = {
        "category": task.category,
        "team": task.team,
        "state": task.state,
        "handler_role": task.handler_role,
        "severity": str(task.severity),
        "escalation_level": str(task.escalation_level),
        "resolved": _flag(resolved),
        "within_sla": _flag(resolved and not late),
        "overdue": _flag(late and task.state != "cancelled"),
    }
    if task.resolve_time is not None:
        minutes = (task.resolve_time - task.create_time).total_seconds() // 60
        values["resolve_minutes"] = str(max(0, int(minutes)))
    return _row(task.name, task.village, Source.TASKS, values, task.grid_cell, task.create_time)


def _row(
    name: str,
    village: str,
    source: Source,
    values: dict[str, str],
    grid_cell: str,
    created: datetime,
) -> FormRecord:
    return FormRecord(
        id=name,
        tenant=village,
        form=source.value,
        form_id=source.value,
        values=values,
        grid_cell=grid_cell,
        author="",
        request_id="",
        create_time=created,
    )

"""What the command component works with: handlers, routing rules and tasks.

Plain dataclasses, free of wire and storage types. Times are aware UTC datetimes;
positions are WGS84 longitude/latitude (other systems are converted at the edge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.tenancy import path_to_id

DEFAULT_CAPACITY = 5
DEFAULT_OFFER_TIMEOUT = timedelta(minutes=10)


class EscalationAction(StrEnum):
    ADD_SUPERVISOR = "add_supervisor"
    REASSIGN = "reassign"


class TaskState(StrEnum):
    """A task's state. The value is the stored word; `published` is the contract's
    (`Task.State`), the one word callers see in REST, filters, the board and errors."""

    OFFERED = "offered"  # the contract's ASSIGNED: offered to a handler, not yet accepted
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    WAITING = "waiting"  # routed, but no available handler holds the role yet
    CANCELLED = "cancelled"

    @property
    def published(self) -> str:
        """The contract's name of the state: `assigned` for an offered task."""
        return "assigned" if self is TaskState.OFFERED else self.value


OPEN_TASK_STATES = frozenset(
    {TaskState.OFFERED, TaskState.ACCEPTED, TaskState.IN_PROGRESS, TaskState.WAITING}
)
# The states that count against a handler's capacity.
HELD_TASK_STATES = frozenset({TaskState.OFFERED, TaskState.ACCEPTED, TaskState.IN_PROGRESS})


class SlaStatus(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OVERDUE = "overdue"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Position:
    longitude: float
    latitude: float


# Roles, teams and department desks: the names handlers hold and that routing rules and
# emergency plans send work to. A plan naming a team no handler could hold would wait
# for nobody, so every side checks the same pattern.
NAME_PATTERN = "[a-z][a-z0-9_]{0,62}"
_NAME = re.compile(NAME_PATTERN)


def is_name(value: str) -> bool:
    """A role, team or desk name such as `grid_worker` or `xingming_volunteer`."""
    return _NAME.fullmatch(value) is not None


@dataclass(frozen=True)
class Shift:
    """Weekly on-duty time; `end` before `start` runs past midnight."""

    weekdays: tuple[int, ...]
    start: str
    end: str


def plan_task_origin(plan: str, item: str, slot: int) -> str:
    """`{plan}/items/{item}/{slot}`: where a plan task comes from, kept where an event's
    task keeps its event (unique), so opening it twice finds the first one."""
    return f"{plan}/items/{item}/{slot}"


@dataclass(frozen=True)
class HandlerProfile:
    tenant: str
    id: str
    user: str
    display_name: str = ""
    roles: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    capacity: int = DEFAULT_CAPACITY
    on_duty: bool = True
    shifts: tuple[Shift, ...] = ()
    position: Position | None = None
    position_time: datetime | None = None
    open_tasks: int = 0
    last_assigned: datetime | None = None
    supervisor: bool = False
    create_time: datetime | None = None


@dataclass(frozen=True)
class RoutingRule:
    tenant: str
    id: str
    category: str
    handler_role: str = ""
    team: str = ""
    department: str = ""
    priority: int = 0
    min_severity: int = 0
    grid_cells: tuple[str, ...] = ()
    village: str = ""
    active_from: str = ""
    active_until: str = ""
    response_sla: timedelta | None = None
    resolution_sla: timedelta | None = None
    offer_timeout: timedelta = DEFAULT_OFFER_TIMEOUT
    escalation_action: EscalationAction = EscalationAction.ADD_SUPERVISOR
    display_name: str = ""
    create_time: datetime | None = None

    @property
    def target_team(self) -> str:
        """Team or department desk the rule sends to (a department is a desk's team)."""
        return self.team or self.department


@dataclass(frozen=True)
class EventFacts:
    """What routing and dispatch need to know of an event (from the bus or events API)."""

    event: str  # resource name: tenants/{tenant}/events/{id}
    tenant: str  # the village the event lies in
    category: str
    severity: int
    grid_cell: str
    location: Position
    time: datetime
    grid_worker: str = ""


@dataclass(frozen=True)
class RoutingDecision:
    rule: str  # resource name of the rule
    explanation: str
    handler_role: str
    team: str


@dataclass(frozen=True)
class Transfer:
    from_handler: str
    to_handler: str
    reason: str
    time: datetime
    actor: str


@dataclass(frozen=True)
class Task:
    """Work for a handler: an event's (one task per event), or one an emergency plan's
    level opened (`emergency_plan`, its item and slot; no event)."""

    tenant: str
    id: str
    event: str
    state: TaskState
    category: str
    severity: int
    grid_cell: str
    village: str
    location: Position | None  # None: a plan task with no place (offered without distance)
    routing: RoutingDecision
    create_time: datetime
    update_time: datetime
    handler: str = ""  # subject of the handler (users/...)
    handler_profile: str = ""  # resource name of the handler's profile
    offer_expire: datetime | None = None
    response_due: datetime | None = None
    resolution_due: datetime | None = None
    accept_time: datetime | None = None
    offer_time: datetime | None = None
    start_time: datetime | None = None
    resolve_time: datetime | None = None
    resolution_note: str = ""
    media: tuple[str, ...] = ()
    escalation_level: int = 0
    escalated_to: str = ""
    supervisor: str = ""
    passed_by: tuple[str, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    distance_m: float = 0.0
    version: int = 1
    escalation_action: EscalationAction = EscalationAction.ADD_SUPERVISOR
    offer_timeout: timedelta = DEFAULT_OFFER_TIMEOUT
    response_sla: timedelta | None = None
    resolution_sla: timedelta | None = None
    # Ids of the deadline and at-risk timers that acted on the task (each acts once).
    escalations: tuple[str, ...] = ()
    # Tenants whose handlers may take it: the event's village up to the rule's node.
    candidate_tenants: tuple[str, ...] = ()
    # A task an emergency plan opened: the plan's resource name, the item and which of
    # the item's handlers (1..slots) this one is, and what to do.
    emergency_plan: str = ""
    emergency_item: str = ""
    slot: int = 0
    slots: int = 0
    description: str = ""

    @property
    def origin(self) -> str:
        """What the task is for, unique among tasks: the event, or the plan item's slot."""
        if self.emergency_plan:
            return plan_task_origin(self.emergency_plan, self.emergency_item, self.slot)
        return self.event

    @property
    def name(self) -> str:
        return f"tenants/{path_to_id(self.tenant)}/tasks/{self.id}"

    @property
    def open(self) -> bool:
        return self.state in OPEN_TASK_STATES

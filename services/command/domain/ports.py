"""What the command domain needs from the outside: its store and the events service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.command.domain.model import EventFacts, HandlerProfile, RoutingRule, Task
from services.command.domain.roads import RoadNetwork
from services.command.domain.task_order import NEWEST_FIRST, TaskOrder
from services.command.domain.timers import Timer, TimerStore


@dataclass(frozen=True)
class Fact:
    """A `task.*` fact for the bus, written in the same transaction as the change."""

    type: str
    key: str
    tenant: str
    payload: bytes


@dataclass(frozen=True)
class NewTask:
    """A task to create, with the facts it publishes and the timers it starts."""

    task: Task
    facts: Sequence[Fact]
    timers: Sequence[Timer]


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    tenant: str
    type: str
    key: str
    payload: bytes
    # The traceparent of the request or message that made the fact ("" when untraced).
    trace_context: str = ""


@dataclass(frozen=True)
class Candidate:
    """A handler as dispatch sees one: where, how loaded, when last given work."""

    profile: HandlerProfile
    open_tasks: int


@dataclass(frozen=True)
class BoardCounts:
    by_state: Mapping[str, int]
    by_grid_cell: Mapping[str, int]
    by_handler: Mapping[str, int]
    by_team: Mapping[str, int]
    at_risk: int
    overdue: int
    escalated: int
    mean_accept_seconds: float | None
    mean_resolve_seconds: float | None


class CommandStore(TimerStore, Protocol):
    """Handler profiles, routing rules, tasks, their facts and timers, in one store.

    A task change, the facts it publishes and the timers it starts or stops are written
    in one transaction; `create_tasks` is idempotent on the event (one task per event), or
    for a plan's task on its origin (one task per plan item slot).
    """

    # handler profiles
    async def create_handler(self, profile: HandlerProfile) -> HandlerProfile: ...
    async def get_handler(self, subtree: str, tenant: str, handler_id: str) -> HandlerProfile: ...
    async def find_handler(self, subtree: str, user: str) -> HandlerProfile | None: ...
    async def update_handler(self, profile: HandlerProfile) -> HandlerProfile: ...
    async def delete_handler(self, subtree: str, tenant: str, handler_id: str) -> None:
        """Delete the profile unless its user holds open tasks (offered, accepted, in
        progress): then FAILED_PRECONDITION naming how many, decided in the transaction
        that would delete it."""
        ...

    async def list_handlers(
        self, subtree: str, filters: Mapping[str, str], limit: int, offset: int
    ) -> list[HandlerProfile]: ...
    async def candidates(
        self, tenants: Sequence[str], role: str, team: str
    ) -> list[HandlerProfile]: ...
    async def supervisors(self, tenant: str) -> list[HandlerProfile]: ...

    # routing rules
    async def create_rule(self, rule: RoutingRule) -> RoutingRule: ...
    async def get_rule(self, subtree: str, tenant: str, rule_id: str) -> RoutingRule: ...
    async def delete_rule(self, subtree: str, tenant: str, rule_id: str) -> None: ...
    async def rules_of(self, tenants: Sequence[str]) -> list[RoutingRule]: ...

    # tasks
    async def create_tasks(self, new: Sequence[NewTask]) -> list[tuple[Task, bool]]:
        """Insert each task with its facts and timers, all in one transaction, and (when
        it is offered) record the offer time on its handler for fairness; where the event
        (or origin) has a task already, that task is returned instead, with False."""
        ...

    async def update_task(
        self,
        task: Task,
        expected_version: int,
        facts: Sequence[Fact],
        schedule: Sequence[Timer] = (),
        cancel: Sequence[str] = (),
    ) -> Task:
        """Write the change if the task is still at `expected_version` (else ABORTED), with
        its facts, timers to start and stop, and the offer time on a newly offered handler."""
        ...

    async def get_task(self, subtree: str, tenant: str, task_id: str) -> Task: ...
    async def tasks_of_events(self, events: Sequence[str]) -> dict[str, Task]:
        """The task of each event that has one, by event name; also takes the origins of
        plan tasks (`Task.origin`), by origin."""
        ...

    async def list_tasks(
        self,
        subtree: str,
        filters: Mapping[str, object],
        limit: int,
        offset: int,
        order: TaskOrder = NEWEST_FIRST,
    ) -> list[Task]: ...
    async def waiting_tasks(self, subtree: str, limit: int) -> list[Task]: ...
    async def board(self, subtree: str, now: datetime) -> BoardCounts: ...

    # outbox
    async def unpublished(self, limit: int) -> list[OutboxEntry]: ...
    async def mark_published(self, seqs: Sequence[int]) -> None: ...


class EventsPort(Protocol):
    """The events service, moved through its API as the command service itself."""

    async def move(self, event: str, target: str, note: str) -> None:
        """Move the event to `target` (an events state name) with its current etag,
        retrying on a concurrent change; a move the event already made is a no-op."""
        ...

    async def facts(self, event: str) -> EventFacts:
        """What routing needs of an event, read as the command service (NOT_FOUND when
        there is no such event)."""
        ...

    async def category_codes(self, tenant: str) -> list[str]:
        """Every category code the tenant sees (its own and inherited)."""
        ...


class RoadsPort(Protocol):
    async def network(self, village: str) -> RoadNetwork | None:
        """The village's road network, or None where it keeps no road layer (or the map
        cannot be reached: dispatch then measures in straight lines)."""
        ...


class PeoplePort(Protocol):
    """Identity (the empower service), read as the command service itself."""

    async def tenants_of(self, subtree: str, users: Sequence[str]) -> dict[str, str]:
        """The tenant node of each user subject (`users/{id}`) that exists in `subtree`
        and is not disabled, in one call; users missing from the answer are unknown there."""
        ...

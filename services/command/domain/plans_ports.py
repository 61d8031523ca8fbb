"""What the plans domain needs from storage, as one protocol both stores implement."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from services.command.domain.command_log import LogEntry
from services.command.domain.emergency import EmergencyPlan
from services.command.domain.plan_facts import Fact
from services.command.domain.service_orders import Place, ServiceOrder, ServicePlan

# A change decided on the current row: the new row, its log entries and its facts;
# None leaves everything as it was (a stale signal, say).
PlanDecision = Callable[
    [EmergencyPlan], tuple[EmergencyPlan, Sequence[LogEntry], Sequence[Fact]] | None
]
OrderDecision = Callable[[ServiceOrder], tuple[ServiceOrder, Sequence[LogEntry]]]
# A change of a live service plan decided on its current row and its orders nobody has
# checked in to yet: the new row, the orders that change and the log entries.
ServicePlanDecision = Callable[
    [ServicePlan, Sequence[ServiceOrder]],
    tuple[ServicePlan, Sequence[ServiceOrder], Sequence[LogEntry]],
]


class PlansStore(Protocol):
    async def find_key(self, tenant: str, actor: str, request_id: str) -> tuple[str, str] | None:
        """(resource id, fingerprint) an earlier create used this key for, if any."""
        ...

    async def create_emergency_plan(
        self, plan: EmergencyPlan, log: LogEntry, key: tuple[str, str, str] | None
    ) -> bool:
        """Store a plan with its log entry and (actor, request id, fingerprint) key in one
        transaction; False when the key was taken meanwhile (nothing is written)."""
        ...

    async def get_emergency_plan(self, plan_id: str) -> EmergencyPlan | None:
        """The plan, a deleted one too (its `delete_time` says so)."""
        ...

    async def list_emergency_plans(
        self, subtree: str, limit: int, after_id: str
    ) -> list[EmergencyPlan]:
        """Live plans under `subtree`, by id, after `after_id`."""
        ...

    async def plans_following(self, signal: str) -> list[EmergencyPlan]:
        """Every live plan whose `signal` names this rule (`ALL_TENANTS`)."""
        ...

    async def decide_plan(self, plan_id: str, decision: PlanDecision) -> EmergencyPlan | None:
        """Apply a decision to the locked current plan with its log and outbox rows, in one
        transaction; returns the stored plan (None when no live plan has the id). A plan
        the decision deletes forgets the request ids that created it."""
        ...

    async def append_log(self, entries: Sequence[LogEntry]) -> None: ...

    async def list_log(
        self, subtree: str, resource: str, limit: int, before_seq: int
    ) -> list[LogEntry]:
        """Entries under `subtree`, newest first, before `before_seq` (0: newest)."""
        ...

    async def create_service_plan(
        self, plan: ServicePlan, log: LogEntry, key: tuple[str, str, str] | None
    ) -> bool: ...

    async def get_service_plan(self, plan_id: str) -> ServicePlan | None:
        """The plan, a deleted one too (its `delete_time` says so)."""
        ...

    async def list_service_plans(
        self, subtree: str, limit: int, after_id: str
    ) -> list[ServicePlan]:
        """Live plans under `subtree`, by id, after `after_id`."""
        ...

    async def due_service_plans(self, until: datetime, limit: int) -> list[ServicePlan]:
        """Live plans whose next occurrence is at or before `until` (`ALL_TENANTS`)."""
        ...

    async def decide_service_plan(
        self, plan_id: str, decision: ServicePlanDecision
    ) -> ServicePlan | None:
        """Apply a decision to the locked live plan and its not-started orders, with its
        log entries, in one transaction; None when no live plan has the id. A plan the
        decision deletes forgets the request ids that created it."""
        ...

    async def record_occurrence(
        self,
        plan: ServicePlan,
        orders: Sequence[ServiceOrder],
        next_occurrence: datetime | None,
        logs: Sequence[LogEntry],
    ) -> bool:
        """Store an occurrence's orders and move the plan on, in one transaction, only if
        the plan still waits for `plan.next_occurrence` (another replica may have done
        it); orders already there for a target and time are kept as they are."""
        ...

    async def open_orders_by_handler(self, handlers: Sequence[str]) -> dict[str, int]: ...

    async def last_positions(self, handlers: Sequence[str]) -> dict[str, Place]:
        """Where each carer last checked in or out."""
        ...

    async def get_order(self, order_id: str) -> ServiceOrder | None: ...

    async def list_orders(
        self,
        subtree: str,
        filters: Mapping[str, str],
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[ServiceOrder]:
        """Orders in the subtree, soonest first, after (scheduled microseconds, id)."""
        ...

    async def decide_order(self, order_id: str, decision: OrderDecision) -> ServiceOrder:
        """Apply a decision to the locked current order with its log entries."""
        ...

    async def unpublished(self, limit: int) -> list[tuple[int, Fact]]: ...

    async def mark_published(self, seqs: Sequence[int]) -> None: ...

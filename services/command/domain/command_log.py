"""The command log: every decision taken under a plan, with who or what, when and why.

Entries are only ever appended (on PostgreSQL the app role may not change or delete
them), written in the same transaction as the decision they record, so the log can
never claim a decision that did not happen or miss one that did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.command.domain.emergency import LevelChange

# Actions, one name per kind of decision.
PLAN_CREATED = "emergency_plan.created"
PLAN_UPDATED = "emergency_plan.updated"
PLAN_DELETED = "emergency_plan.deleted"
LEVEL_RAISED = "emergency.level_raised"
LEVEL_LOWERED = "emergency.level_lowered"
SIGNAL_IGNORED = "emergency.signal_ignored"
SERVICE_PLAN_CREATED = "service_plan.created"
SERVICE_PLAN_UPDATED = "service_plan.updated"
SERVICE_PLAN_DELETED = "service_plan.deleted"
ORDER_CANCELLED = "service_order.cancelled"
ORDER_ASSIGNED = "service_order.assigned"
ORDER_UNASSIGNED = "service_order.unassigned"
ORDER_CHECKED_IN = "service_order.checked_in"
ORDER_CHECKED_OUT = "service_order.checked_out"
CHECK_IN_REFUSED = "service_order.check_in_refused"
ORDER_ESCALATED = "service_order.escalated"
# A task's SLA breach that found nobody to take it: at the top of escalation, or a
# reassignment with no free handler at the level above.
TASK_ESCALATION_STOPPED = "task.escalation_stopped"
TASK_NOT_REASSIGNED = "task.not_reassigned"


@dataclass(frozen=True)
class LogEntry:
    """One decision. `resource` is the resource name it is about; `seq` orders entries
    (assigned by the store, 0 before it is stored)."""

    tenant: str
    time: datetime
    actor: str
    action: str
    resource: str
    reason: str
    detail: str = ""
    seq: int = 0


def signal_actor(rule: str) -> str:
    """How a twin rule appears as the actor of the decisions it caused."""
    return f"signal:{rule}"


def level_changed(change: LevelChange, resource: str) -> LogEntry:
    """The entry for a level change, naming what it opened and closed."""
    plan = change.plan
    parts = [f"level {change.from_level} -> {change.to_level}"]
    if change.opened:
        parts.append(
            f"opened {len(change.opened)}: " + "; ".join(i.description for i in change.opened)
        )
    if change.closed:
        parts.append(f"closed {len(change.closed)}: " + ", ".join(i.id for i in change.closed))
    return LogEntry(
        tenant=plan.tenant,
        time=plan.level_change_time or plan.create_time,
        actor=plan.level_actor,
        action=LEVEL_RAISED if change.raised else LEVEL_LOWERED,
        resource=resource,
        reason=plan.level_reason,
        detail=" | ".join(parts)[:4000],
    )

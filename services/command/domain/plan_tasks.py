"""The tasks an emergency plan's active levels stand for.

A dispatch item ("dispatch 2 x grid_worker") is two tasks, one per handler sent; a
checklist line is one task; a notice is none. Each task's origin names the plan, the
item and the slot (`model.plan_task_origin`), and its id is derived from the origin,
so the plan can name its tasks without asking the store, and opening them again (a
retry, a restart, a second replica) finds the ones already there. The desk walks a
plan's tasks to what its items say (`CommandDesk.follow_plan`): the slots of open items
have a task, and the open tasks of items no longer open are cancelled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.command.domain.emergency import EmergencyPlan, Item, ItemKind, ItemState
from services.command.domain.model import plan_task_origin
from services.kit import tenancy

# Opens the plan's tasks and cancels those its level no longer covers.
ITEM_KINDS_WITH_TASKS = frozenset({ItemKind.DISPATCH, ItemKind.CHECKLIST})


def plan_name(plan: EmergencyPlan) -> str:
    return f"{tenancy.tenant_name(plan.tenant)}/emergencyPlans/{plan.id}"


def task_id(origin: str) -> str:
    """The id of the task with this origin: the same origin, the same task."""
    return "task_p" + hashlib.sha256(origin.encode()).hexdigest()[:25]


def task_name(tenant: str, origin: str) -> str:
    return f"{tenancy.tenant_name(tenant)}/tasks/{task_id(origin)}"


@dataclass(frozen=True)
class Slot:
    """One task an item stands for."""

    item: Item
    slot: int
    origin: str

    @property
    def id(self) -> str:
        return task_id(self.origin)


def slots_of(plan: EmergencyPlan, item: Item) -> list[Slot]:
    if item.kind not in ITEM_KINDS_WITH_TASKS:
        return []
    name = plan_name(plan)
    return [Slot(item, n, plan_task_origin(name, item.id, n)) for n in range(1, item.slots + 1)]


def wanted(plan: EmergencyPlan) -> list[Slot]:
    """The tasks the plan's open items stand for, in the order they were opened."""
    return [
        slot for item in plan.items if item.state is ItemState.OPEN for slot in slots_of(plan, item)
    ]


def task_names(plan: EmergencyPlan, item: Item) -> list[str]:
    """Resource names of the tasks an item opened (open or closed since)."""
    return [task_name(plan.tenant, slot.origin) for slot in slots_of(plan, item)]


def description(plan: EmergencyPlan, item: Item) -> str:
    """What the handler reads: the plan, the level and the item."""
    summary = plan.definition.level(item.level).summary if item.level else ""
    level = f"level {item.level}" + (f" ({summary})" if summary else "")
    return f"{plan.definition.display_name}, {level}: {item.description}"[:2000]


# What a plan task's explanation says of its handler: it waits for one, or it was offered.
WAITING_FOR = "waiting for an available "
OFFERED_TO = "offered to the nearest available "
FOR_A_DESK = "waiting for a desk"


def explanation(name: str, item: Item) -> str:
    """A new plan task's explanation: it waits until someone is offered it."""
    who = item.role + (f" ({item.team})" if item.team else "") if item.role else ""
    to = WAITING_FOR + who if who else FOR_A_DESK
    return f"emergency plan {name} at level {item.level}: {item.description}; {to}"


def explained(text: str, offered: bool) -> str:
    """A plan task's explanation once it is offered to someone, or waits again."""
    if offered:
        return text.replace("; " + WAITING_FOR, "; " + OFFERED_TO, 1)
    return text.replace("; " + OFFERED_TO, "; " + WAITING_FOR, 1)

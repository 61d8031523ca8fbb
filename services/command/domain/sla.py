"""SLA clocks: deadlines as durable timers, how a task stands, where a breach goes.

A routed task gets a response deadline (offer to acceptance) and a resolution deadline
(creation to resolution) from its rule. Each deadline is a timer row with an at-risk
timer at 80% of it, so nothing depends on a process staying up. A breach escalates one
level up the tenant tree (village -> town -> district) and starts the next period, so
a task left alone climbs until someone acts or it reaches the district, where it stops:
the city above the districts runs no desk that takes a village's work.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from services.command.domain.model import OPEN_TASK_STATES, SlaStatus, Task, TaskState
from services.command.domain.timers import Timer

AT_RISK_SHARE = 0.8

OFFER_EXPIRED = "task.offer_expired"
RESPONSE_DUE = "task.response_due"
RESOLUTION_DUE = "task.resolution_due"
AT_RISK = "task.at_risk"
KINDS = (OFFER_EXPIRED, RESPONSE_DUE, RESOLUTION_DUE, AT_RISK)

_AWAITING_ANSWER = frozenset({TaskState.OFFERED, TaskState.WAITING})


def timer_id(task: Task, kind: str, level: int | str) -> str:
    return f"{task.tenant}/{task.id}/{kind}/{level}"


def payload(task: Task, **extra: object) -> str:
    return json.dumps({"tenant": task.tenant, "task": task.id, **extra}, separators=(",", ":"))


def deadline_timers(
    task: Task, kind: str, start: datetime, span: timedelta, level: int
) -> list[Timer]:
    """A deadline and its at-risk warning, for escalation `level` (0: the first period)."""
    due = start + span
    warn = start + span * AT_RISK_SHARE
    return [
        Timer(timer_id(task, kind, level), task.tenant, kind, due, payload(task, level=level)),
        Timer(
            timer_id(task, f"{AT_RISK}.{kind}", level),
            task.tenant,
            AT_RISK,
            warn,
            payload(task, level=level, deadline=kind),
        ),
    ]


def offer_timer(task: Task) -> Timer:
    """The offer runs out: the next candidate gets it. Keyed on the offer, so an offer
    that was answered (or replaced) makes its timer a no-op."""
    assert task.offer_time is not None and task.offer_expire is not None
    stamp = int(task.offer_time.timestamp() * 1_000_000)
    return Timer(
        timer_id(task, OFFER_EXPIRED, stamp),
        task.tenant,
        OFFER_EXPIRED,
        task.offer_expire,
        payload(task, handler=task.handler, offer_us=stamp),
    )


def status(task: Task, now: datetime) -> SlaStatus:
    """How a task stands against its deadlines now (as the store's queries count it)."""
    if task.state not in OPEN_TASK_STATES:
        return SlaStatus.STOPPED
    clocks: list[tuple[datetime, datetime]] = []
    if task.state in _AWAITING_ANSWER and task.response_due is not None:
        clocks.append((task.offer_time or task.create_time, task.response_due))
    if task.resolution_due is not None:
        clocks.append((task.create_time, task.resolution_due))
    if any(now > due for _, due in clocks):
        return SlaStatus.OVERDUE
    if any(now >= start + (due - start) * AT_RISK_SHARE for start, due in clocks):
        return SlaStatus.AT_RISK
    return SlaStatus.ON_TRACK


# The highest node a task escalates to: the district (`sh/jiading`), two levels down
# the tree from the city.
TOP_DEPTH = 2


def escalation_target(task: Task) -> str | None:
    """The tenant one level above where the task stands now; None at the district or
    above it (the top of escalation)."""
    current = task.escalated_to or task.village
    if current.count("/") + 1 <= TOP_DEPTH:
        return None
    return current.rsplit("/", 1)[0]

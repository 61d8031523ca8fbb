"""How command data maps to rows: one definition both stores use, so they cannot drift.

Each table keeps the columns queries filter and sort on, and the whole record as JSON
in `body`, which is what is read back: a new field is a change to the body, not a
migration. Times are microseconds since the epoch, as in the events store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.command.domain.model import (
    EscalationAction,
    HandlerProfile,
    Position,
    RoutingDecision,
    RoutingRule,
    Shift,
    Task,
    TaskState,
    Transfer,
)
from services.command.domain.task_order import TaskOrder, TaskOrderField
from services.command.domain.timers import Timer
from services.kit.errors import FailedPrecondition
from services.kit.tenancy import ALL_TENANTS


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _opt_us(moment: datetime | None) -> int | None:
    return us(moment) if moment is not None else None


def _opt_time(value: int | None) -> datetime | None:
    return from_us(value) if value is not None else None


def _seconds(span: timedelta | None) -> float | None:
    return span.total_seconds() if span is not None else None


def _span(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value is not None else None


def joined(values: tuple[str, ...]) -> str:
    """Roles and teams as `|a|b|`, so `LIKE '%|a|%'` finds one without JSON functions."""
    return "|" + "|".join(values) + "|" if values else ""


# ---- timers ---------------------------------------------------------------------------

TIMER_COLUMNS = "id, tenant, kind, due_us, payload, attempts, fired_us, cancelled"
INSERT_TIMER = (
    f"INSERT INTO timers ({TIMER_COLUMNS}, owner, lease_us) VALUES (?, ?, ?, ?, ?, 0, NULL, 0, "
    "'', 0) ON CONFLICT (id) DO NOTHING"
)
CANCEL_TIMERS = "UPDATE timers SET cancelled = 1 WHERE fired_us IS NULL AND cancelled = 0 AND id IN"
FINISH_TIMERS = "UPDATE timers SET fired_us = ? WHERE owner = ? AND fired_us IS NULL AND id IN"
GET_TIMER = f"SELECT {TIMER_COLUMNS} FROM timers WHERE id = ?"
# The earliest moment a row may be claimed: due, or its lease's end when leased.
NEXT_DUE = (
    "SELECT min(CASE WHEN lease_us > due_us THEN lease_us ELSE due_us END) AS due FROM timers "
    "WHERE fired_us IS NULL AND cancelled = 0"
)


def timer_values(timer: Timer) -> tuple[object, ...]:
    return (timer.id, timer.tenant, timer.kind, us(timer.due), timer.payload)


def row_to_timer(row: Mapping[str, Any]) -> Timer:
    return Timer(
        id=row["id"],
        tenant=row["tenant"],
        kind=row["kind"],
        due=from_us(row["due_us"]),
        payload=row["payload"],
        attempts=row["attempts"],
        fired=_opt_time(row["fired_us"]),
        cancelled=bool(row["cancelled"]),
    )


# ---- handler profiles -----------------------------------------------------------------

HANDLER_COLUMNS = (
    "tenant, id, user_subject, roles, teams, on_duty, capacity, longitude, latitude, "
    "last_assigned_us, supervisor, create_us, body"
)
INSERT_HANDLER = f"INSERT INTO handlers ({HANDLER_COLUMNS}) VALUES ({', '.join('?' * 13)})"
UPDATE_HANDLER = (
    "UPDATE handlers SET user_subject = ?, roles = ?, teams = ?, on_duty = ?, capacity = ?, "
    "longitude = ?, latitude = ?, last_assigned_us = ?, supervisor = ?, create_us = ?, body = ? "
    "WHERE tenant = ? AND id = ?"
)


TOUCH_HANDLER = "UPDATE handlers SET last_assigned_us = ? WHERE user_subject = ?"


def handler_values(profile: HandlerProfile) -> tuple[object, ...]:
    """Values of HANDLER_COLUMNS in order."""
    position = profile.position
    body = {
        "user": profile.user,
        "display_name": profile.display_name,
        "roles": list(profile.roles),
        "skills": list(profile.skills),
        "teams": list(profile.teams),
        "capacity": profile.capacity,
        "on_duty": profile.on_duty,
        "shifts": [[list(s.weekdays), s.start, s.end] for s in profile.shifts],
        "position_us": _opt_us(profile.position_time),
        "supervisor": profile.supervisor,
    }
    return (
        profile.tenant,
        profile.id,
        profile.user,
        joined(profile.roles),
        joined(profile.teams),
        1 if profile.on_duty else 0,
        profile.capacity,
        position.longitude if position else None,
        position.latitude if position else None,
        _opt_us(profile.last_assigned),
        1 if profile.supervisor else 0,
        _opt_us(profile.create_time),
        json.dumps(body, separators=(",", ":")),
    )


def update_handler_values(profile: HandlerProfile) -> tuple[object, ...]:
    values = handler_values(profile)
    return (*values[2:], profile.tenant, profile.id)


def row_to_handler(row: Mapping[str, Any], open_tasks: int = 0) -> HandlerProfile:
    body = json.loads(row["body"])
    position = None
    if row["longitude"] is not None:
        position = Position(row["longitude"], row["latitude"])
    return HandlerProfile(
        tenant=row["tenant"],
        id=row["id"],
        user=row["user_subject"],
        display_name=body["display_name"],
        roles=tuple(body["roles"]),
        skills=tuple(body["skills"]),
        teams=tuple(body["teams"]),
        capacity=row["capacity"],
        on_duty=bool(row["on_duty"]),
        shifts=tuple(Shift(tuple(w), s, e) for w, s, e in body["shifts"]),
        position=position,
        position_time=_opt_time(body.get("position_us")),
        open_tasks=open_tasks,
        last_assigned=_opt_time(row["last_assigned_us"]),
        supervisor=bool(row["supervisor"]),
        create_time=_opt_time(row["create_us"]),
    )


# ---- routing rules --------------------------------------------------------------------

RULE_COLUMNS = "tenant, id, priority, create_us, body"
INSERT_RULE = f"INSERT INTO routing_rules ({RULE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"


def rule_values(rule: RoutingRule) -> tuple[object, ...]:
    body = {
        "category": rule.category,
        "handler_role": rule.handler_role,
        "team": rule.team,
        "department": rule.department,
        "min_severity": rule.min_severity,
        "grid_cells": list(rule.grid_cells),
        "village": rule.village,
        "active_from": rule.active_from,
        "active_until": rule.active_until,
        "response_sla": _seconds(rule.response_sla),
        "resolution_sla": _seconds(rule.resolution_sla),
        "offer_timeout": rule.offer_timeout.total_seconds(),
        "escalation_action": rule.escalation_action.value,
        "display_name": rule.display_name,
    }
    create = rule.create_time or datetime.now(UTC)
    return (rule.tenant, rule.id, rule.priority, us(create), json.dumps(body))


def row_to_rule(row: Mapping[str, Any]) -> RoutingRule:
    body = json.loads(row["body"])
    return RoutingRule(
        tenant=row["tenant"],
        id=row["id"],
        category=body["category"],
        handler_role=body["handler_role"],
        team=body["team"],
        department=body["department"],
        priority=row["priority"],
        min_severity=body["min_severity"],
        grid_cells=tuple(body["grid_cells"]),
        village=body["village"],
        active_from=body["active_from"],
        active_until=body["active_until"],
        response_sla=_span(body["response_sla"]),
        resolution_sla=_span(body["resolution_sla"]),
        offer_timeout=timedelta(seconds=body["offer_timeout"]),
        escalation_action=EscalationAction(body["escalation_action"]),
        display_name=body["display_name"],
        create_time=from_us(row["create_us"]),
    )


# ---- tasks ----------------------------------------------------------------------------

TASK_COLUMNS = (
    "tenant, id, event, state, handler, team, grid_cell, village, category, create_us, "
    "update_us, response_due_us, resolution_due_us, offer_us, accept_us, resolve_us, "
    "escalation_level, version, body"
)
TASK_COLUMN_COUNT = len(TASK_COLUMNS.split(","))
INSERT_TASK = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * TASK_COLUMN_COUNT)})"
_TASK_UPDATED = [c.strip() for c in TASK_COLUMNS.split(",")][3:]
UPDATE_TASK = (
    f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in _TASK_UPDATED)} "
    "WHERE tenant = ? AND id = ? AND version = ?"
)


def task_values(task: Task) -> tuple[object, ...]:
    routing = task.routing
    body = {
        "role": routing.handler_role,
        "rule": routing.rule,
        "explanation": routing.explanation,
        "severity": task.severity,
        "lon": task.location.longitude if task.location else None,
        "lat": task.location.latitude if task.location else None,
        "handler_profile": task.handler_profile,
        "offer_expire_us": _opt_us(task.offer_expire),
        "start_us": _opt_us(task.start_time),
        "note": task.resolution_note,
        "media": list(task.media),
        "escalated_to": task.escalated_to,
        "supervisor": task.supervisor,
        "passed_by": list(task.passed_by),
        "transfers": [
            [t.from_handler, t.to_handler, t.reason, us(t.time), t.actor] for t in task.transfers
        ],
        "distance_m": task.distance_m,
        "escalation_action": task.escalation_action.value,
        "offer_timeout": task.offer_timeout.total_seconds(),
        "response_sla": _seconds(task.response_sla),
        "resolution_sla": _seconds(task.resolution_sla),
        "escalations": list(task.escalations),
        "candidate_tenants": list(task.candidate_tenants),
    }
    if task.emergency_plan:
        body["plan"] = [
            task.emergency_plan,
            task.emergency_item,
            task.slot,
            task.slots,
            task.description,
        ]
    return (
        task.tenant,
        task.id,
        task.origin,  # the event, or the plan item's slot: unique either way
        task.state.value,
        task.handler,
        routing.team,
        task.grid_cell,
        task.village,
        task.category,
        us(task.create_time),
        us(task.update_time),
        _opt_us(task.response_due),
        _opt_us(task.resolution_due),
        _opt_us(task.offer_time),
        _opt_us(task.accept_time),
        _opt_us(task.resolve_time),
        task.escalation_level,
        task.version,
        json.dumps(body, separators=(",", ":")),
    )


def update_task_values(task: Task, expected_version: int) -> tuple[object, ...]:
    values = task_values(task)
    return (*values[3:], task.tenant, task.id, expected_version)


def row_to_task(row: Mapping[str, Any]) -> Task:
    body = json.loads(row["body"])
    plan, item, slot, slots, description = body.get("plan") or ("", "", 0, 0, "")
    return Task(
        tenant=row["tenant"],
        id=row["id"],
        event="" if plan else row["event"],
        state=TaskState(row["state"]),
        category=row["category"],
        severity=body["severity"],
        grid_cell=row["grid_cell"],
        village=row["village"],
        location=Position(body["lon"], body["lat"]) if body["lon"] is not None else None,
        routing=RoutingDecision(body["rule"], body["explanation"], body["role"], row["team"]),
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
        handler=row["handler"],
        handler_profile=body["handler_profile"],
        offer_expire=_opt_time(body["offer_expire_us"]),
        response_due=_opt_time(row["response_due_us"]),
        resolution_due=_opt_time(row["resolution_due_us"]),
        offer_time=_opt_time(row["offer_us"]),
        accept_time=_opt_time(row["accept_us"]),
        start_time=_opt_time(body["start_us"]),
        resolve_time=_opt_time(row["resolve_us"]),
        resolution_note=body["note"],
        media=tuple(body["media"]),
        escalation_level=row["escalation_level"],
        escalated_to=body["escalated_to"],
        supervisor=body["supervisor"],
        passed_by=tuple(body["passed_by"]),
        transfers=tuple(Transfer(f, t, r, from_us(at), a) for f, t, r, at, a in body["transfers"]),
        distance_m=body["distance_m"],
        version=row["version"],
        escalation_action=EscalationAction(body["escalation_action"]),
        offer_timeout=timedelta(seconds=body["offer_timeout"]),
        response_sla=_span(body["response_sla"]),
        resolution_sla=_span(body["resolution_sla"]),
        escalations=tuple(body["escalations"]),
        candidate_tenants=tuple(body["candidate_tenants"]),
        emergency_plan=plan,
        emergency_item=item,
        slot=slot,
        slots=slots,
        description=description,
    )


# ---- outbox ---------------------------------------------------------------------------

APPEND_OUTBOX = (
    "INSERT INTO outbox (tenant, type, key, payload, create_us, trace_context) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


# ---- shared WHERE clauses -------------------------------------------------------------

_OPEN = "('offered', 'accepted', 'in_progress', 'waiting')"
_WAITING_FOR_ANSWER = "('offered', 'waiting')"
# A deadline passed: acceptance while offered or waiting, resolution while open.
OVERDUE_SQL = (
    f"(state IN {_OPEN} AND ((state IN {_WAITING_FOR_ANSWER} AND response_due_us IS NOT NULL "
    "AND response_due_us < ?) OR (resolution_due_us IS NOT NULL AND resolution_due_us < ?)))"
)
# 80% or more of a clock used (and not overdue): the acceptance clock runs from the
# offer (or creation), the resolution clock from creation.
AT_RISK_SQL = (
    f"(state IN {_OPEN} AND NOT {OVERDUE_SQL} AND ((state IN {_WAITING_FOR_ANSWER} "
    "AND response_due_us IS NOT NULL AND ? >= coalesce(offer_us, create_us) "
    "+ (response_due_us - coalesce(offer_us, create_us)) * 0.8) "
    "OR (resolution_due_us IS NOT NULL AND ? >= create_us "
    "+ (resolution_due_us - create_us) * 0.8)))"
)
AT_RISK_PARAMS = 4  # now, repeated for each ? in AT_RISK_SQL
OPEN_SQL = f"state IN {_OPEN}"
TASK_FILTER_COLUMNS = {
    "handler": "handler",
    "state": "state",
    "event": "event",
    "grid_cell": "grid_cell",
    "team": "team",
    "village": "village",
    "category": "category",
}
# Bounds on a task's create time, by the name the domain's filters give them.
TASK_TIME_BOUNDS = {
    "created_from": "create_us >= ?",
    "created_after": "create_us > ?",
    "created_to": "create_us <= ?",
    "created_before": "create_us < ?",
}
SUBTREE_SQL = "(tenant = ? OR (tenant >= ? AND tenant < ?))"


def subtree_params(subtree: str) -> list[object]:
    """'/' sorts just before '0', so every descendant path lies in [subtree/, subtree0)."""
    return [subtree, subtree + "/", subtree + "0"]


def scope_where(subtree: str) -> tuple[list[str], list[object]]:
    if subtree == ALL_TENANTS:
        return ["1 = 1"], []
    return [SUBTREE_SQL], subtree_params(subtree)


_ORDER_COLUMNS = {
    TaskOrderField.CREATE_TIME: "create_us",
    TaskOrderField.UPDATE_TIME: "update_us",
    TaskOrderField.DUE_TIME: "resolution_due_us",
    TaskOrderField.RESPONSE_DUE_TIME: "response_due_us",
}


def task_order(order: TaskOrder) -> str:
    """ORDER BY for a task list: tasks without the field's time last, the id breaking ties
    (so offset pages neither repeat nor skip)."""
    column = _ORDER_COLUMNS[order.field]
    way = "DESC" if order.descending else "ASC"
    return f" ORDER BY ({column} IS NULL), {column} {way}, id {way}"


def task_where(
    subtree: str, filters: Mapping[str, object], now: datetime
) -> tuple[str, list[object]]:
    """WHERE (with `?`) over tasks of a subtree and the domain's filters."""
    where, args = scope_where(subtree)
    now_us = us(now)
    for name, value in filters.items():
        if name in TASK_FILTER_COLUMNS:
            where.append(f"{TASK_FILTER_COLUMNS[name]} = ?")
            args.append(value)
        elif name == "emergency_plan":
            # A plan's tasks keep `{plan}/items/...` where an event's keep the event.
            where.append("event >= ? AND event < ?")
            args.extend([f"{value}/items/", f"{value}/items0"])
        elif name in TASK_TIME_BOUNDS and isinstance(value, datetime):
            where.append(TASK_TIME_BOUNDS[name])
            args.append(us(value))
        elif name == "open" and value:
            where.append(OPEN_SQL)
        elif name == "sla_status":
            if value == "overdue":
                where.append(OVERDUE_SQL)
                args.extend([now_us] * 2)
            elif value == "at_risk":
                where.append(AT_RISK_SQL)
                args.extend([now_us] * 4)
            elif value == "on_track":
                where.append(f"{OPEN_SQL} AND NOT {OVERDUE_SQL} AND NOT {AT_RISK_SQL}")
                args.extend([now_us] * 6)
            elif value == "stopped":
                where.append(f"NOT {OPEN_SQL}")
    return " AND ".join(where), args


def handler_where(
    subtree: str, filters: Mapping[str, str], tenants: Sequence[str] = ()
) -> tuple[str, list[object]]:
    """WHERE (with `?`) over handlers of a subtree (or of exactly `tenants`), by role,
    team and duty."""
    where, args = scope_where(subtree)
    if tenants:
        where.append(f"tenant IN ({', '.join('?' * len(tenants))})")
        args.extend(tenants)
    for name, value in filters.items():
        if name == "role":
            where.append("roles LIKE ?")
            args.append(f"%|{value}|%")
        elif name == "team":
            where.append("teams LIKE ?")
            args.append(f"%|{value}|%")
        elif name == "user":
            where.append("user_subject = ?")
            args.append(value)
        elif name == "on_duty":
            where.append("on_duty = ?")
            args.append(1 if value == "true" else 0)
    return " AND ".join(where), args


def handler_holds_tasks(handler_id: str, held: int) -> FailedPrecondition:
    """Why a profile is not deleted: the work its handler still has."""
    return FailedPrecondition(
        f"handler {handler_id!r} holds {held} open task{'s' if held != 1 else ''}; "
        "transfer them first",
        reason="HANDLER_HAS_OPEN_TASKS",
    )

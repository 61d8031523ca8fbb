"""How plans, orders and log entries map to rows: one definition both stores use.

Definitions and running state are kept as JSON text in a `body` column; the columns
queries filter or order on are kept beside it. Times are microseconds since the epoch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.command.domain.command_log import LogEntry
from services.command.domain.emergency import (
    Dispatch,
    EmergencyPlan,
    Item,
    ItemKind,
    ItemState,
    Level,
    Notice,
    PlanDefinition,
)
from services.command.domain.model import Position
from services.command.domain.service_orders import (
    OrderState,
    Place,
    ServiceOrder,
    ServicePlan,
    ServicePlanDefinition,
    Target,
)

Row = Mapping[str, Any]


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _opt_us(moment: datetime | None) -> int | None:
    return None if moment is None else us(moment)


def _opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _place(value: list[float] | None) -> Place | None:
    return None if value is None else Place(value[0], value[1])


def _coords(place: Place | None) -> list[float] | None:
    return None if place is None else [place.longitude, place.latitude]


# Statements both stores run, in the kit's dialect notation (services.kit.sqldialect).
INSERT_KEY = (
    "INSERT INTO plans_keys (tenant, actor, request_id, resource_id, fingerprint, create_us) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
FIND_KEY = (
    "SELECT resource_id, fingerprint FROM plans_keys WHERE tenant = ? AND actor = ? "
    "AND request_id = ?"
)
INSERT_PLAN = (
    "INSERT INTO emergency_plans (id, tenant, signal, version, create_us, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
UPDATE_PLAN = (
    "UPDATE emergency_plans SET version = ?, signal = ?, delete_us = ?, body = ? WHERE id = ?"
)
PLAN_COLUMNS = "id, tenant, version, create_us, body, delete_us"
# A deleted plan's request ids are forgotten: a create with one makes a new plan.
FORGET_KEYS = "DELETE FROM plans_keys WHERE resource_id = ?"
INSERT_LOG = (
    "INSERT INTO command_log (tenant, at_us, actor, action, resource, reason, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
LOG_COLUMNS = "seq, tenant, at_us, actor, action, resource, reason, detail"
INSERT_OUTBOX = (
    "INSERT INTO plans_outbox (tenant, type, key, payload, create_us) VALUES (?, ?, ?, ?, ?)"
)
INSERT_SERVICE_PLAN = (
    "INSERT INTO service_plans (id, tenant, next_us, version, create_us, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SERVICE_PLAN_COLUMNS = "id, tenant, next_us, version, create_us, body, delete_us"
UPDATE_SERVICE_PLAN = (
    "UPDATE service_plans SET next_us = ?, version = ?, delete_us = ?, body = ? WHERE id = ?"
)
INSERT_ORDER = (
    "INSERT INTO service_orders (id, tenant, plan_id, target_id, scheduled_us, handler, "
    "state, version, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# Where the carer last was (check-in or check-out) is kept in columns, so the nearest
# carer can be found without reading every order's body.
UPDATE_ORDER = (
    "UPDATE service_orders SET state = ?, version = ?, body = ?, last_us = ?, last_lon = ?, "
    "last_lat = ?, handler = ? WHERE id = ?"
)
ORDER_COLUMNS = "id, tenant, plan_id, version, body"


def definition_json(definition: PlanDefinition) -> dict[str, Any]:
    where = definition.location
    return {
        "display_name": definition.display_name,
        "signal": definition.signal,
        "location": [where.longitude, where.latitude] if where else None,
        "levels": [
            {
                "level": level.level,
                "summary": level.summary,
                "dispatches": [[d.role, d.team, d.count] for d in level.dispatches],
                "checklist": list(level.checklist),
                "notices": [[n.audience, n.text] for n in level.notices],
                "checklist_role": level.checklist_role,
            }
            for level in definition.levels
        ],
    }


def _definition(data: Mapping[str, Any]) -> PlanDefinition:
    where = data.get("location")
    return PlanDefinition(
        display_name=data["display_name"],
        signal=data["signal"],
        location=Position(where[0], where[1]) if where else None,
        levels=tuple(
            Level(
                level=level["level"],
                summary=level["summary"],
                dispatches=tuple(Dispatch(r, t, c) for r, t, c in level["dispatches"]),
                checklist=tuple(level["checklist"]),
                notices=tuple(Notice(a, t) for a, t in level["notices"]),
                checklist_role=level.get("checklist_role", ""),
            )
            for level in data["levels"]
        ),
    )


def plan_body(plan: EmergencyPlan) -> str:
    return json.dumps(
        {
            "definition": definition_json(plan.definition),
            "current_level": plan.current_level,
            "level_reason": plan.level_reason,
            "level_actor": plan.level_actor,
            "level_change_us": _opt_us(plan.level_change_time),
            "signal_us": _opt_us(plan.signal_time),
            "items": [
                [
                    i.id,
                    i.level,
                    i.kind.value,
                    i.description,
                    i.state.value,
                    us(i.open_time),
                    _opt_us(i.close_time),
                    i.role,
                    i.team,
                    i.slots,
                ]
                for i in plan.items
            ],
        },
        ensure_ascii=False,
    )


def plan_values(plan: EmergencyPlan) -> tuple[object, ...]:
    return (
        plan.id,
        plan.tenant,
        plan.definition.signal,
        plan.version,
        us(plan.create_time),
        plan_body(plan),
    )


def row_to_plan(row: Row) -> EmergencyPlan:
    body = json.loads(row["body"])
    return EmergencyPlan(
        id=row["id"],
        tenant=row["tenant"],
        definition=_definition(body["definition"]),
        create_time=from_us(row["create_us"]),
        current_level=body["current_level"],
        level_reason=body["level_reason"],
        level_actor=body["level_actor"],
        level_change_time=_opt_time(body["level_change_us"]),
        signal_time=_opt_time(body["signal_us"]),
        # Items stored before they opened tasks have no role, team and slots.
        items=tuple(
            Item(i, lv, ItemKind(k), d, ItemState(s), from_us(o), _opt_time(c), *more)
            for i, lv, k, d, s, o, c, *more in body["items"]
        ),
        version=row["version"],
        delete_time=_opt_time(row["delete_us"]),
    )


def plan_update_values(plan: EmergencyPlan) -> tuple[object, ...]:
    """UPDATE_PLAN's values: version, signal, delete time, body, then the id."""
    return (
        plan.version,
        plan.definition.signal,
        _opt_us(plan.delete_time),
        plan_body(plan),
        plan.id,
    )


def log_values(entry: LogEntry) -> tuple[object, ...]:
    return (
        entry.tenant,
        us(entry.time),
        entry.actor,
        entry.action,
        entry.resource,
        entry.reason,
        entry.detail,
    )


def row_to_log(row: Row) -> LogEntry:
    return LogEntry(
        tenant=row["tenant"],
        time=from_us(row["at_us"]),
        actor=row["actor"],
        action=row["action"],
        resource=row["resource"],
        reason=row["reason"],
        detail=row["detail"],
        seq=row["seq"],
    )


def _target_json(target: Target) -> list[object]:
    return [target.id, target.display_name, target.place.longitude, target.place.latitude]


def _target(value: list[Any]) -> Target:
    return Target(value[0], value[1], Place(value[2], value[3]))


def _service_plan_body(plan: ServicePlan) -> str:
    d = plan.definition
    body = {
        "display_name": d.display_name,
        "recurrence": d.recurrence,
        "start_us": us(d.start_time),
        "visit_minutes": d.visit_minutes,
        "handler_role": d.handler_role,
        "carers": list(d.carers),
        "max_distance_m": d.max_distance_m,
        "targets": [_target_json(t) for t in d.targets],
        "escalation_role": d.escalation_role,
    }
    return json.dumps(body, ensure_ascii=False)


def service_plan_values(plan: ServicePlan) -> tuple[object, ...]:
    return (
        plan.id,
        plan.tenant,
        _opt_us(plan.next_occurrence),
        plan.version,
        us(plan.create_time),
        _service_plan_body(plan),
    )


def service_plan_update_values(plan: ServicePlan) -> tuple[object, ...]:
    """UPDATE_SERVICE_PLAN's values: next occurrence, version, delete time, body, id."""
    return (
        _opt_us(plan.next_occurrence),
        plan.version,
        _opt_us(plan.delete_time),
        _service_plan_body(plan),
        plan.id,
    )


def row_to_service_plan(row: Row) -> ServicePlan:
    body = json.loads(row["body"])
    return ServicePlan(
        id=row["id"],
        tenant=row["tenant"],
        definition=ServicePlanDefinition(
            display_name=body["display_name"],
            recurrence=body["recurrence"],
            start_time=from_us(body["start_us"]),
            visit_minutes=body["visit_minutes"],
            handler_role=body["handler_role"],
            carers=tuple(body["carers"]),
            max_distance_m=body["max_distance_m"],
            targets=tuple(_target(t) for t in body["targets"]),
            escalation_role=body.get("escalation_role", ""),
        ),
        create_time=from_us(row["create_us"]),
        next_occurrence=_opt_time(row["next_us"]),
        version=row["version"],
        delete_time=_opt_time(row["delete_us"]),
    )


def order_body(order: ServiceOrder) -> str:
    return json.dumps(
        {
            "target": _target_json(order.target),
            "scheduled_us": us(order.scheduled_time),
            "due_us": us(order.due_time),
            "handler": order.handler,
            "state": order.state.value,
            "check_in_us": _opt_us(order.check_in_time),
            "check_in": _coords(order.check_in_place),
            "check_out_us": _opt_us(order.check_out_time),
            "check_out": _coords(order.check_out_place),
            "note": order.note,
            "escalated_from": order.escalated_from,
            "escalate_us": _opt_us(order.escalate_time),
        },
        ensure_ascii=False,
    )


def order_values(order: ServiceOrder) -> tuple[object, ...]:
    return (
        order.id,
        order.tenant,
        order.plan_id,
        order.target.id,
        us(order.scheduled_time),
        order.handler,
        order.state.value,
        order.version,
        order_body(order),
    )


def order_update_values(order: ServiceOrder) -> tuple[object, ...]:
    """UPDATE_ORDER's values: state, version, body, the latest visit place, the handler
    (an escalation changes it), then the id."""
    moment, place = order.check_out_time, order.check_out_place
    if place is None:
        moment, place = order.check_in_time, order.check_in_place
    return (
        order.state.value,
        order.version,
        order_body(order),
        _opt_us(moment),
        place.longitude if place else None,
        place.latitude if place else None,
        order.handler,
        order.id,
    )


def row_to_order(row: Row) -> ServiceOrder:
    body = json.loads(row["body"])
    return ServiceOrder(
        id=row["id"],
        tenant=row["tenant"],
        plan_id=row["plan_id"],
        target=_target(body["target"]),
        scheduled_time=from_us(body["scheduled_us"]),
        due_time=from_us(body["due_us"]),
        handler=body["handler"],
        state=OrderState(body["state"]),
        check_in_time=_opt_time(body["check_in_us"]),
        check_in_place=_place(body["check_in"]),
        check_out_time=_opt_time(body["check_out_us"]),
        check_out_place=_place(body["check_out"]),
        note=body["note"],
        version=row["version"],
        escalated_from=body.get("escalated_from", ""),
        escalate_time=_opt_time(body.get("escalate_us")),
    )

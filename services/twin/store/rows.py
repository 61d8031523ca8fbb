"""SQL and row conversions shared by the SQLite and PostgreSQL twin stores.

Statements use `?` placeholders (services.kit.sqldialect renders them per backend).
Models and rules are stored as JSON documents: they are read whole at start and
written rarely, and their shape grows with the contract.
"""

from __future__ import annotations

import json
from typing import Any

from services.twin.domain.entities import Entity, Point, Relationship
from services.twin.domain.models import Kind, Model, PropertySpec
from services.twin.domain.rules import (
    Direction,
    Geofence,
    GeofenceMode,
    Inactivity,
    Levels,
    Phase,
    Rule,
    RuleState,
    Threshold,
)

ENTITY_COLUMNS = (
    "tenant, entity_id, entity_type, longitude, latitude, building, display_name, create_ms"
)
INSERT_ENTITY = (
    f"INSERT INTO twin_entities ({ENTITY_COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
GET_ENTITY = f"SELECT {ENTITY_COLUMNS} FROM twin_entities WHERE tenant = ? AND entity_id = ?"
INSERT_SERIES = (
    "INSERT INTO twin_series (tenant, entity_id, property) VALUES (?, ?, ?) "
    "ON CONFLICT (tenant, entity_id, property) DO NOTHING"
)
SERIES_ID = "SELECT id FROM twin_series WHERE tenant = ? AND entity_id = ? AND property = ?"
INSERT_RELATIONSHIP = (
    "INSERT INTO twin_relationships (tenant, entity_id, type, target_tenant, target_id) "
    "VALUES (?, ?, ?, ?, ?)"
)
SELECT_RELATIONSHIPS = (
    "SELECT tenant, entity_id, type, target_tenant, target_id FROM twin_relationships "
    "WHERE tenant = ? AND entity_id = ?"
)
OUTGOING = (
    "SELECT type, target_tenant, target_id FROM twin_relationships "
    "WHERE tenant = ? AND entity_id = ? AND (? = '' OR type = ?) "
    "ORDER BY type, target_tenant, target_id"
)
INCOMING = (
    "SELECT type, tenant, entity_id FROM twin_relationships "
    "WHERE target_tenant = ? AND target_id = ? AND (? = '' OR type = ?) "
    "ORDER BY type, tenant, entity_id"
)
# Subtree test on text: the node itself, or paths starting with "node/" ("/" + 1 = "0").
SUBTREE = "(tenant = ? OR (tenant >= ? AND tenant < ?))"


def subtree_args(subtree: str) -> tuple[str, str, str]:
    return (subtree, subtree + "/", subtree + "0")


LIST_ENTITIES = (
    f"SELECT {ENTITY_COLUMNS} FROM twin_entities WHERE {SUBTREE} "
    "AND (? = '' OR entity_type = ?) AND (tenant > ? OR (tenant = ? AND entity_id > ?)) "
    "ORDER BY tenant, entity_id LIMIT ?"
)
UPSERT_MODEL = (
    "INSERT INTO twin_models (tenant, model_id, body) VALUES (?, ?, ?) "
    "ON CONFLICT (tenant, model_id) DO UPDATE SET body = excluded.body"
)
INSERT_RULE = "INSERT INTO twin_rules (tenant, rule_id, body) VALUES (?, ?, ?)"
UPSERT_STATE = (
    "INSERT INTO twin_rule_states (rule_tenant, rule_id, tenant, entity_id, phase, since_ms, "
    "level, episode) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule_tenant, rule_id, tenant, "
    "entity_id) DO UPDATE SET phase = excluded.phase, since_ms = excluded.since_ms, "
    "level = excluded.level, episode = excluded.episode"
)
INSERT_ALARM = (
    "INSERT INTO twin_alarms (kind, episode, rule_tenant, rule_id, tenant, entity_id, at_ms, "
    "value, level, old_level, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
PENDING_ALARMS = (
    "SELECT seq, kind, episode, rule_tenant, rule_id, tenant, entity_id, at_ms, value, level, "
    "old_level FROM twin_alarms WHERE delivered = 0 ORDER BY seq LIMIT ?"
)
BUMP_EPOCH = (
    "INSERT INTO twin_meta (name, value) VALUES ('epoch', 1) "
    "ON CONFLICT (name) DO UPDATE SET value = twin_meta.value + 1"
)
GET_EPOCH = "SELECT value FROM twin_meta WHERE name = 'epoch'"
FIND_SERIES = (
    "SELECT s.id, s.tenant, s.entity_id FROM twin_series s JOIN twin_entities e "
    "ON e.tenant = s.tenant AND e.entity_id = s.entity_id WHERE s.property = ? "
    "AND (s.tenant = ? OR (s.tenant >= ? AND s.tenant < ?)) AND (? = '' OR e.entity_type = ?) "
    "AND (? = 0 OR (e.longitude >= ? AND e.longitude <= ? AND e.latitude >= ? AND e.latitude <= ?))"
)


INSERT_LOG = (
    "INSERT INTO twin_log (t_min, t_max, n, series, times, vals, lons, lats) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
OLDEST_LOGGED = "SELECT id, series, times, vals, lons, lats FROM twin_log ORDER BY id LIMIT ?"
DROP_LOGGED = "DELETE FROM twin_log WHERE id <= ?"
LOGGED_IN_RANGE = (
    "SELECT series, times, vals, lons, lats FROM twin_log WHERE t_min < ? AND t_max >= ? "
    "ORDER BY id"
)
ALL_LOGGED = "SELECT series, times, vals, lons, lats FROM twin_log ORDER BY id"
INSERT_CHUNK = (
    "INSERT INTO twin_chunks (series_id, t_min, t_max, n, times, vals, lons, lats) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# The chunks that may hold a series' newest reading: those ending at its latest time.
NEWEST_CHUNKS = (
    "SELECT times, vals, lons, lats FROM twin_chunks WHERE series_id = ? AND t_max = "
    "(SELECT max(t_max) FROM twin_chunks WHERE series_id = ?)"
)
# Chunks overlapping [start, end): first time before the end, last time at or after the start.
CHUNKS_IN_RANGE = (
    "SELECT times, vals, lons, lats FROM twin_chunks WHERE series_id = ? AND t_min < ? "
    "AND t_max >= ? ORDER BY t_min"
)


def entity_values(e: Entity) -> tuple[Any, ...]:
    lon = e.location.longitude if e.location else None
    lat = e.location.latitude if e.location else None
    return (e.tenant, e.entity_id, e.entity_type, lon, lat, e.building, e.display_name, e.create_ms)


def row_to_entity(row: Any, relationships: list[Any]) -> Entity:
    location = Point(row[3], row[4]) if row[3] is not None and row[4] is not None else None
    return Entity(
        tenant=row[0],
        entity_id=row[1],
        entity_type=row[2],
        location=location,
        building=row[5] or "",
        display_name=row[6] or "",
        create_ms=int(row[7]),
        relationships=tuple(Relationship(r[2], (r[3], r[4])) for r in relationships),
    )


def model_to_json(model: Model) -> str:
    return json.dumps(
        {
            "smart_data_model": model.smart_data_model,
            "description": model.description,
            "properties": [
                {
                    "name": p.name,
                    "kind": int(p.kind),
                    "unit": p.unit,
                    "minimum": p.minimum,
                    "maximum": p.maximum,
                }
                for p in model.properties
            ],
        }
    )


def model_from_json(tenant: str, model_id: str, body: str) -> Model:
    data = json.loads(body)
    return Model(
        model_id=model_id,
        tenant=tenant,
        smart_data_model=data["smart_data_model"],
        description=data["description"],
        properties=tuple(
            PropertySpec(p["name"], Kind(p["kind"]), p["unit"], p["minimum"], p["maximum"])
            for p in data["properties"]
        ),
    )


def rule_to_json(rule: Rule) -> str:
    cond = rule.condition
    condition: dict[str, Any]
    if isinstance(cond, Threshold):
        condition = {
            "threshold": [int(cond.direction), cond.trigger, cond.clear, cond.min_duration_ms]
        }
    elif isinstance(cond, Levels):
        condition = {"levels": [list(cond.bounds), cond.hysteresis, cond.event_from_level]}
    elif isinstance(cond, Inactivity):
        condition = {"inactivity": cond.silence_ms}
    else:
        condition = {
            "geofence": [
                cond.layer,
                int(cond.mode),
                cond.buffer_m,
                cond.dwell_ms,
                cond.speed_property,
                cond.stopped_at_most,
            ]
        }
    return json.dumps(
        {
            "entity_type": rule.entity_type,
            "property": rule.watched,
            "event_category": rule.event_category,
            "display_name": rule.display_name,
            "severity": rule.severity,
            **condition,
        }
    )


def rule_from_json(tenant: str, rule_id: str, body: str) -> Rule:
    d = json.loads(body)
    condition: Threshold | Levels | Inactivity | Geofence
    if "threshold" in d:
        direction, trigger, clear, min_ms = d["threshold"]
        condition = Threshold(Direction(direction), trigger, clear, min_ms)
    elif "levels" in d:
        bounds, hysteresis, from_level = d["levels"]
        condition = Levels(tuple(bounds), hysteresis, from_level)
    elif "inactivity" in d:
        condition = Inactivity(d["inactivity"])
    else:
        # Rules written before buffers, dwell and stops hold only the layer and the mode.
        layer, mode, buffer_m, dwell_ms, speed_property, at_most = [
            *d["geofence"],
            0.0,
            0,
            "",
            0.0,
        ][:6]
        condition = Geofence(layer, GeofenceMode(mode), buffer_m, dwell_ms, speed_property, at_most)
    return Rule(
        tenant=tenant,
        rule_id=rule_id,
        entity_type=d["entity_type"],
        watched=d["property"],
        condition=condition,
        event_category=d["event_category"],
        display_name=d["display_name"],
        severity=d["severity"],
    )


def state_from_row(row: Any) -> RuleState:
    return RuleState(Phase(row[4]), int(row[5]), int(row[6]), row[7])

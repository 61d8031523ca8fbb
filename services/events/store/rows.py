"""How an event maps to a row: one definition both stores use, so they cannot drift."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.events.domain.model import Evaluation, Event, GridPlace, Point, Source, State
from services.events.store.contacts import ReporterContacts

COLUMNS = (
    "id, tenant, category, description, longitude, latitude, reported_crs, source, state, "
    "grid_cell, grid_worker, reporter, create_us, update_us, version, duplicate_of, "
    "eval_score, eval_text, eval_us, severity, media, reporter_contact, address"
)
COLUMN_COUNT = len(COLUMNS.split(","))
_COLUMN_NAMES = [c.strip() for c in COLUMNS.split(",")]
# What an update writes: every column but those fixed at creation.
_FIXED = ("id", "tenant", "create_us")
_UPDATED = [c for c in _COLUMN_NAMES if c not in _FIXED]

# Statements both stores run, in the kit's dialect notation (services.kit.sqldialect).
INSERT_EVENT = f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' * COLUMN_COUNT)})"
# An update writes every changeable column, so no field a change makes is left behind.
UPDATE_EVENT = (
    f"UPDATE events SET {', '.join(f'{c} = ?' for c in _UPDATED)} WHERE id = ? AND version = ?"
)
TEXT_MATCH = "description {like} ? ESCAPE '\\'"
# Columns added after the first schema, with their definitions, for older databases.
ADDED_COLUMNS = (
    ("severity", "INTEGER NOT NULL DEFAULT 2"),
    ("media", "TEXT NOT NULL DEFAULT '[]'"),
    ("reporter_contact", "TEXT NOT NULL DEFAULT ''"),
    ("address", "TEXT NOT NULL DEFAULT ''"),
)


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def event_values(event: Event, contacts: ReporterContacts) -> tuple[object, ...]:
    evaluation = event.evaluation
    return (
        event.id,
        event.tenant,
        event.category,
        event.description,
        event.location.longitude,
        event.location.latitude,
        event.location.reported_crs,
        event.source.value,
        event.state.value,
        event.place.grid_cell,
        event.place.grid_worker,
        event.reporter,
        us(event.create_time),
        us(event.update_time),
        event.version,
        event.duplicate_of,
        evaluation.score if evaluation else None,
        evaluation.text if evaluation else None,
        us(evaluation.time) if evaluation else None,
        event.severity,
        json.dumps(list(event.media)),
        contacts.seal(event.id, event.reporter_contact),
        event.address,
    )


def row_to_event(row: Mapping[str, Any] | sqlite3.Row, contacts: ReporterContacts) -> Event:
    evaluation = None
    if row["eval_score"] is not None:
        evaluation = Evaluation(row["eval_score"], row["eval_text"], from_us(row["eval_us"]))
    return Event(
        id=row["id"],
        tenant=row["tenant"],
        category=row["category"],
        description=row["description"],
        location=Point(row["longitude"], row["latitude"], row["reported_crs"]),
        source=Source(row["source"]),
        state=State(row["state"]),
        place=GridPlace(row["tenant"], row["grid_cell"], row["grid_worker"]),
        reporter=row["reporter"],
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
        version=row["version"],
        duplicate_of=row["duplicate_of"],
        evaluation=evaluation,
        severity=row["severity"],
        media=tuple(json.loads(row["media"])),
        reporter_contact=contacts.open(row["id"], row["reporter_contact"]),
        address=row["address"],
    )


def update_values(event: Event, contacts: ReporterContacts) -> tuple[object, ...]:
    """UPDATE_EVENT's SET values for the event, in column order."""
    values = event_values(event, contacts)
    return tuple(v for c, v in zip(_COLUMN_NAMES, values, strict=True) if c not in _FIXED)

"""How an event maps to a row, and the statements both stores run: one definition
each, so the SQLite and PostgreSQL stores cannot drift (ADR 12).

Statements are written with `?` and `{like}` and rendered by each store's dialect
(`services.kit.sqldialect`); rows are read by column name, which `sqlite3.Row` and
psycopg's `dict_row` both offer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.events.domain.attachments import Attachment
from services.events.domain.model import (
    Comment,
    Evaluation,
    Event,
    GridPlace,
    OutboxEntry,
    Point,
    Source,
    State,
    StatisticsRow,
    TimelineEntry,
)
from services.events.store.contacts import ReporterContacts
from services.kit.tenancy import ALL_TENANTS

COLUMNS = (
    "id, tenant, category, description, longitude, latitude, reported_crs, source, state, "
    "grid_cell, grid_worker, reporter, create_us, update_us, version, duplicate_of, "
    "eval_score, eval_text, eval_us, severity, media, reporter_contact, address, parent_event, "
    "entity"
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
E_COLUMNS = ", ".join("e." + c for c in _COLUMN_NAMES)
# "tenant is the subtree's root or below it", as a range an index can scan: '/' sorts
# just before '0', so every descendant path lies in [root + '/', root + '0').
SUBTREE = "(tenant = ? OR (tenant >= ? AND tenant < ?))"
GET_EVENT = f"SELECT {COLUMNS} FROM events WHERE id = ?"
TIMELINE = (
    "SELECT actor, at_us, from_state, to_state, note FROM timeline WHERE event_id = ? ORDER BY seq"
)
COMMENTS = "SELECT author, text, create_us FROM comments WHERE event_id = ? ORDER BY seq"
# The same for several events: append "(?, ?, ...) ORDER BY event_id, seq".
TIMELINES = (
    "SELECT event_id, actor, at_us, from_state, to_state, note FROM timeline WHERE event_id IN"
)
COMMENTS_OF = "SELECT event_id, author, text, create_us FROM comments WHERE event_id IN"
# Events of a category inside a box since a time: the duplicate search's candidates.
NEARBY = (
    f"SELECT {COLUMNS} FROM events WHERE category = ? "
    "AND latitude BETWEEN ? AND ? AND longitude BETWEEN ? AND ? AND create_us >= ?"
)
APPEND_OUTBOX = (
    "INSERT INTO outbox (tenant, type, event_id, payload, create_us, trace_context) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
UNPUBLISHED = (
    "SELECT seq, tenant, type, event_id, payload, trace_context FROM outbox "
    "WHERE published_us IS NULL ORDER BY seq LIMIT ?"
)
LATEST_OFFSET = "SELECT coalesce(max(seq), 0) FROM outbox"
# One village's events by reporters of a prefix since a moment (anonymous intake's hour);
# the prefix is a range, so the tenant and time index answers it in both dialects.
COUNT_REPORTS = (
    "SELECT count(*) FROM events WHERE tenant = ? AND reporter >= ? AND reporter < ? "
    "AND create_us >= ?"
)
CHANGES = (
    "SELECT seq, tenant, type, event_id, payload FROM outbox "
    f"WHERE seq > ? AND {SUBTREE} ORDER BY seq LIMIT ?"
)
STATISTICS = (
    "SELECT category, state, grid_cell, create_us, tenant, "
    "(SELECT min(at_us) FROM timeline t WHERE t.event_id = e.id "
    "AND t.to_state = 'resolved') AS resolved_us FROM events e WHERE {where}"
)
LIST = (
    f"SELECT {COLUMNS} FROM events WHERE {{where}} "
    "ORDER BY create_us {direction}, id {direction} LIMIT ?"
)
# Keyset paging: rows after the cursor's (create_us, id) in the list's order.
_AFTER = {
    False: "(create_us < ? OR (create_us = ? AND id < ?))",
    True: "(create_us > ? OR (create_us = ? AND id > ?))",
}
_FILTER_COLUMNS = {
    "grid_cell": "grid_cell",
    "village": "tenant",
    "category": "category",
    "state": "state",
    "reporter": "reporter",
    "duplicate_of": "duplicate_of",
    "parent": "parent_event",
}
# Filters that take a collection of values: any of them matches.
_IN_COLUMNS = {"states": "state", "categories": "category"}
_TIME_FILTERS = {
    "created_from": "create_us >= ?",
    "created_after": "create_us > ?",
    "created_to": "create_us <= ?",
    "created_before": "create_us < ?",
    "updated_before": "update_us < ?",
}
# Columns added after the first schema, with their definitions, for older databases.
ADDED_COLUMNS = (
    ("severity", "INTEGER NOT NULL DEFAULT 2"),
    ("media", "TEXT NOT NULL DEFAULT '[]'"),
    ("reporter_contact", "TEXT NOT NULL DEFAULT ''"),
    ("address", "TEXT NOT NULL DEFAULT ''"),
    ("parent_event", "TEXT NOT NULL DEFAULT ''"),
    ("entity", "TEXT NOT NULL DEFAULT ''"),
)


def subtree_params(subtree: str) -> list[str]:
    """SUBTREE's three values for the subtree rooted at `subtree`."""
    return [subtree, subtree + "/", subtree + "0"]


def where(subtree: str, filters: Mapping[str, object]) -> tuple[str, list[object]]:
    """The WHERE condition (dialect notation) for a tenant subtree and the domain's
    typed filters, with its values. Names that are no filter (`order`) are skipped."""
    every = subtree == ALL_TENANTS
    terms: list[str] = ["1 = 1" if every else SUBTREE]
    args: list[object] = [] if every else [*subtree_params(subtree)]
    for name, value in filters.items():
        if name in _TIME_FILTERS:
            if not isinstance(value, datetime):
                raise TypeError(f"filter {name!r} needs a datetime, not {value!r}")
            terms.append(_TIME_FILTERS[name])
            args.append(us(value))
        elif name in _FILTER_COLUMNS:
            terms.append(f"{_FILTER_COLUMNS[name]} = ?")
            args.append(value)
        elif name in _IN_COLUMNS:
            values = sorted(str(v) for v in value)  # type: ignore[attr-defined]
            terms.append(f"{_IN_COLUMNS[name]} IN ({', '.join('?' * len(values)) or 'NULL'})")
            args.extend(values)
        elif name == "text":
            escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            terms.append(TEXT_MATCH)
            args.append(f"%{escaped}%")
    return " AND ".join(terms), args


def list_query(
    subtree: str, filters: Mapping[str, object], limit: int, cursor: Mapping[str, object] | None
) -> tuple[str, list[object]]:
    """LIST for one page (dialect notation): newest first, or oldest with `order: asc`;
    one row more than `limit` tells whether another page follows."""
    condition, args = where(subtree, filters)
    ascending = filters.get("order") == "asc"
    if cursor:
        condition += " AND " + _AFTER[ascending]
        args.extend([cursor["t"], cursor["t"], cursor["id"]])
    args.append(limit + 1)
    direction = "ASC" if ascending else "DESC"
    return LIST.format(where=condition, direction=direction), args


def next_cursor(
    rows: Sequence[Mapping[str, Any] | sqlite3.Row], limit: int
) -> dict[str, object] | None:
    """Where the next page starts, when `rows` (LIST's, limit + 1 at most) has one."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return {"t": last["create_us"], "id": last["id"]}


def timeline_entry(row: Mapping[str, Any] | sqlite3.Row) -> TimelineEntry:
    return TimelineEntry(
        actor=row["actor"],
        time=from_us(row["at_us"]),
        from_state=State(row["from_state"]) if row["from_state"] else None,
        to_state=State(row["to_state"]),
        note=row["note"],
    )


def comment(row: Mapping[str, Any] | sqlite3.Row) -> Comment:
    return Comment(row["author"], row["text"], from_us(row["create_us"]))


def statistics_row(row: Mapping[str, Any] | sqlite3.Row) -> StatisticsRow:
    resolved = row["resolved_us"]
    return StatisticsRow(
        row["category"],
        State(row["state"]),
        row["grid_cell"],
        from_us(row["create_us"]),
        from_us(resolved) if resolved is not None else None,
        row["tenant"],
    )


def outbox_entry(row: Sequence[Any]) -> OutboxEntry:
    """An outbox row of UNPUBLISHED or CHANGES (read by position)."""
    return OutboxEntry(*row)


ATTACHMENT_COLUMNS = "id, tenant, uploader, content_type, size_bytes, sha256, create_us"
INSERT_ATTACHMENT = (
    f"INSERT INTO attachments ({ATTACHMENT_COLUMNS}, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def attachment_values(attachment: Attachment, content: bytes) -> tuple[object, ...]:
    a = attachment
    return (
        a.id,
        a.tenant,
        a.uploader,
        a.content_type,
        a.size_bytes,
        a.sha256,
        us(a.create_time),
        content,
    )


def row_to_attachment(row: Mapping[str, Any]) -> Attachment:
    return Attachment(
        id=row["id"],
        tenant=row["tenant"],
        uploader=row["uploader"],
        content_type=row["content_type"],
        size_bytes=int(row["size_bytes"]),
        sha256=row["sha256"],
        create_time=from_us(int(row["create_us"])),
    )


def prefix_range(prefix: str) -> tuple[str, str]:
    """[low, high) bounds of the strings starting with `prefix` (byte-wise order)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


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
        event.parent_event,
        event.entity,
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
        parent_event=row["parent_event"],
        entity=row["entity"],
    )


def update_values(event: Event, contacts: ReporterContacts) -> tuple[object, ...]:
    """UPDATE_EVENT's SET values for the event, in column order."""
    values = event_values(event, contacts)
    return tuple(v for c, v in zip(_COLUMN_NAMES, values, strict=True) if c not in _FIXED)

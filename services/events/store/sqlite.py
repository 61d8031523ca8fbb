"""The embedded event store: one SQLite file in WAL mode.

An event, its first timeline entry and its idempotency key are written in one
transaction, so a create that returned success is on disk (synchronous=FULL) and a
retry can never make a second. Updates read, check and write inside one transaction
on the database's single thread, so concurrent changes cannot interleave.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from services.events.domain.attachments import Attachment
from services.events.domain.categories import Category
from services.events.domain.facts import REPORTED
from services.events.domain.intake import IntakeSettings
from services.events.domain.model import (
    Comment,
    Event,
    NewReport,
    OutboxEntry,
    State,
    StatisticsRow,
    TimelineEntry,
)
from services.events.domain.ports import Change, OriginalFinder, TakenKeyCheck
from services.events.store.contacts import ReporterContacts
from services.events.store.rows import (
    ADDED_COLUMNS,
    APPEND_OUTBOX,
    ATTACHMENT_COLUMNS,
    CHANGES,
    COLUMNS,
    COMMENTS,
    COMMENTS_OF,
    COUNT_REPORTS,
    E_COLUMNS,
    GET_EVENT,
    INSERT_ATTACHMENT,
    INSERT_EVENT,
    LATEST_OFFSET,
    NEARBY,
    STATISTICS,
    TIMELINE,
    TIMELINES,
    UNPUBLISHED,
    UPDATE_EVENT,
    attachment_values,
    comment,
    event_values,
    list_query,
    next_cursor,
    outbox_entry,
    prefix_range,
    row_to_attachment,
    row_to_event,
    statistics_row,
    subtree_params,
    timeline_entry,
    update_values,
    us,
    where,
)
from services.kit import tracing
from services.kit.errors import NotFound
from services.kit.sqldialect import SQLITE
from services.kit.sqlite import SqliteDatabase, transaction

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    category      TEXT NOT NULL,
    description   TEXT NOT NULL,
    longitude     REAL NOT NULL,
    latitude      REAL NOT NULL,
    reported_crs  TEXT NOT NULL,
    source        TEXT NOT NULL,
    state         TEXT NOT NULL,
    grid_cell     TEXT NOT NULL,
    grid_worker   TEXT NOT NULL,
    reporter      TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    update_us     INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    duplicate_of  TEXT NOT NULL DEFAULT '',
    eval_score    INTEGER,
    eval_text     TEXT,
    eval_us       INTEGER,
    severity      INTEGER NOT NULL DEFAULT 2,
    media         TEXT NOT NULL DEFAULT '[]',
    reporter_contact TEXT NOT NULL DEFAULT '',
    address       TEXT NOT NULL DEFAULT '',
    parent_event  TEXT NOT NULL DEFAULT '',
    entity        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_parent ON events (parent_event) WHERE parent_event <> '';
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_grid_time ON events (grid_cell, create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_time ON events (create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_reporter_time ON events (reporter, create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_nearby ON events (category, latitude, longitude);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    parent       TEXT NOT NULL,
    reporter     TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    event_id     TEXT NOT NULL REFERENCES events (id),
    create_us    INTEGER NOT NULL,
    PRIMARY KEY (parent, reporter, request_id)
);
CREATE TABLE IF NOT EXISTS timeline (
    event_id     TEXT NOT NULL REFERENCES events (id),
    seq          INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    at_us        INTEGER NOT NULL,
    from_state   TEXT,
    to_state     TEXT NOT NULL,
    note         TEXT NOT NULL,
    PRIMARY KEY (event_id, seq)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    type          TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    payload       BLOB NOT NULL,
    create_us     INTEGER NOT NULL,
    published_us  INTEGER,
    trace_context TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_us IS NULL;
CREATE INDEX IF NOT EXISTS outbox_tenant ON outbox (tenant, seq);
CREATE TABLE IF NOT EXISTS categories (
    tenant       TEXT NOT NULL,
    code         TEXT NOT NULL,
    definition   TEXT NOT NULL,
    PRIMARY KEY (tenant, code)
);
CREATE TABLE IF NOT EXISTS attachments (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    uploader      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    content       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS intake_settings (
    tenant       TEXT PRIMARY KEY,
    definition   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS comments (
    event_id     TEXT NOT NULL REFERENCES events (id),
    seq          INTEGER NOT NULL,
    author       TEXT NOT NULL,
    text         TEXT NOT NULL,
    create_us    INTEGER NOT NULL,
    PRIMARY KEY (event_id, seq)
);
"""
# Columns added after the first schema, for files made by an older build.
_ADDED_COLUMNS = (
    "version INTEGER NOT NULL DEFAULT 1",
    "duplicate_of TEXT NOT NULL DEFAULT ''",
    "eval_score INTEGER",
    "eval_text TEXT",
    "eval_us INTEGER",
    *(f"{name} {definition}" for name, definition in ADDED_COLUMNS),
)


def _add_timeline(conn: sqlite3.Connection, event_id: str, entry: TimelineEntry) -> None:
    conn.execute(
        "INSERT INTO timeline VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM timeline "
        "WHERE event_id = ?), ?, ?, ?, ?, ?)",
        (
            event_id,
            event_id,
            entry.actor,
            us(entry.time),
            entry.from_state.value if entry.from_state else None,
            entry.to_state.value,
            entry.note,
        ),
    )


class SqliteEventStore:
    """Events, their history and the outbox of domain events, in one SQLite file.

    `serialize` turns an event into the bytes published on the bus; the store keeps
    them in the outbox in the same transaction as the change (a transactional outbox).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        serialize: Callable[[Event], bytes],
        synchronous: str = "FULL",
        contacts: ReporterContacts | None = None,
    ) -> None:
        self.serialize = serialize
        self.contacts = contacts or ReporterContacts()
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(self._migrate)

    def _append_outbox(self, conn: sqlite3.Connection, kind: str, event: Event) -> None:
        conn.execute(
            APPEND_OUTBOX,
            (
                event.tenant,
                kind,
                event.id,
                self.serialize(event),
                us(event.update_time),
                event.trace_context or tracing.current_traceparent(),
            ),
        )

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        existing = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if existing:
            for column in _ADDED_COLUMNS:
                if column.split()[0] not in existing:
                    conn.execute(f"ALTER TABLE events ADD COLUMN {column}")
        outbox = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
        if outbox and "trace_context" not in outbox:  # a file from before traces
            conn.execute("ALTER TABLE outbox ADD COLUMN trace_context TEXT NOT NULL DEFAULT ''")
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    async def find_by_requests(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[Event, str]]:
        """Earlier creates under these keys, with their fingerprints, in one query."""

        def query(conn: sqlite3.Connection) -> dict[tuple[str, str, str], tuple[Event, str]]:
            found: dict[tuple[str, str, str], tuple[Event, str]] = {}
            for start in range(0, len(keys), 300):
                chunk = keys[start : start + 300]
                values = ", ".join(["(?, ?, ?)"] * len(chunk))
                # A join from the wanted keys, so every lookup uses the primary key
                # (a row-value IN would scan the whole table).
                rows = conn.execute(
                    f"WITH wanted (p, r, q) AS (VALUES {values}) "
                    f"SELECT k.parent AS k_parent, k.reporter AS k_reporter, "
                    f"k.request_id AS k_request_id, k.fingerprint AS fingerprint, {E_COLUMNS} "
                    "FROM wanted w JOIN idempotency_keys k ON k.parent = w.p "
                    "AND k.reporter = w.r AND k.request_id = w.q "
                    "JOIN events e ON e.id = k.event_id",
                    [part for key in chunk for part in key],
                ).fetchall()
                for row in rows:
                    key = (row["k_parent"], row["k_reporter"], row["k_request_id"])
                    found[key] = (row_to_event(row, self.contacts), row["fingerprint"])
            return found

        return await self.db.run(query)

    async def create_many(
        self,
        items: list[tuple[NewReport, Event]],
        find_original: OriginalFinder,
        check_taken: TakenKeyCheck,
    ) -> list[tuple[Event, bool]]:
        def write(conn: sqlite3.Connection) -> list[tuple[Event, bool]]:
            return [
                self._insert(conn, report, event, find_original, check_taken)
                for report, event in items
            ]

        return await self.db.run(lambda conn: transaction(conn, write))

    def _insert(
        self,
        conn: sqlite3.Connection,
        report: NewReport,
        event: Event,
        find_original: OriginalFinder,
        check_taken: TakenKeyCheck,
    ) -> tuple[Event, bool]:
        taken = conn.execute(
            "SELECT fingerprint, event_id FROM idempotency_keys "
            "WHERE parent = ? AND reporter = ? AND request_id = ?",
            (report.parent, report.reporter, report.request_id),
        ).fetchone()
        if taken:
            check_taken(report, taken[0], taken[1])  # raising rolls the batch back
            return event, False
        stored = find_original(lambda *args: self._open_near(conn, *args), event)
        conn.execute(
            SQLITE.render(INSERT_EVENT),
            event_values(stored, self.contacts),
        )
        for entry in stored.timeline:
            _add_timeline(conn, stored.id, entry)
        conn.execute(
            "INSERT INTO idempotency_keys VALUES (?,?,?,?,?,?)",
            (
                report.parent,
                report.reporter,
                report.request_id,
                report.fingerprint(),
                stored.id,
                us(stored.create_time),
            ),
        )
        self._append_outbox(conn, REPORTED, stored)
        return stored, True

    def _open_near(
        self,
        conn: sqlite3.Connection,
        category: str,
        box: tuple[float, float, float, float],
        since: datetime,
        states: frozenset[State],
    ) -> list[Event]:
        marks = ", ".join("?" * len(states))
        rows = conn.execute(
            f"{NEARBY} AND state IN ({marks})",
            (
                category,
                box[1],
                box[3],
                box[0],
                box[2],
                us(since),
                *sorted(s.value for s in states),
            ),
        ).fetchall()
        return [row_to_event(r, self.contacts) for r in rows]

    async def get(self, event_id: str) -> Event | None:
        def query(conn: sqlite3.Connection) -> Event | None:
            row = conn.execute(GET_EVENT, (event_id,)).fetchone()
            return self._with_history(conn, row_to_event(row, self.contacts)) if row else None

        return await self.db.run(query)

    async def get_many(self, event_ids: list[str]) -> dict[str, Event]:
        """Three queries for any number of events (a gateway's batch of reads), not
        three for each."""

        def query(conn: sqlite3.Connection) -> dict[str, Event]:
            found: dict[str, Event] = {}
            wanted = list(dict.fromkeys(event_ids))
            for start in range(0, len(wanted), 300):
                chunk = wanted[start : start + 300]
                marks = ", ".join("?" * len(chunk))
                events = {
                    row["id"]: row_to_event(row, self.contacts)
                    for row in conn.execute(
                        f"SELECT {COLUMNS} FROM events WHERE id IN ({marks})", chunk
                    )
                }
                if not events:
                    continue
                ids = list(events)
                marks = ", ".join("?" * len(ids))
                timelines: dict[str, list[TimelineEntry]] = {i: [] for i in ids}
                for row in conn.execute(f"{TIMELINES} ({marks}) ORDER BY event_id, seq", ids):
                    timelines[row["event_id"]].append(timeline_entry(row))
                notes: dict[str, list[Comment]] = {i: [] for i in ids}
                for row in conn.execute(f"{COMMENTS_OF} ({marks}) ORDER BY event_id, seq", ids):
                    notes[row["event_id"]].append(comment(row))
                for i, event in events.items():
                    found[i] = replace(
                        event, timeline=tuple(timelines[i]), comments=tuple(notes[i])
                    )
            return found

        return await self.db.run(query)

    @staticmethod
    def _with_history(conn: sqlite3.Connection, event: Event) -> Event:
        timeline = tuple(timeline_entry(r) for r in conn.execute(TIMELINE, (event.id,)))
        comments = tuple(comment(r) for r in conn.execute(COMMENTS, (event.id,)))
        return replace(event, timeline=timeline, comments=comments)

    async def update(self, event_id: str, change: Change, fact: str) -> Event:
        """Apply `change` to the current event atomically; the change does the checks."""

        def write(conn: sqlite3.Connection) -> Event:
            row = conn.execute(GET_EVENT, (event_id,)).fetchone()
            if row is None:
                raise NotFound(f"event {event_id!r} not found")
            current = self._with_history(conn, row_to_event(row, self.contacts))
            changed, entry, comment = change(current)
            changed = replace(changed, version=current.version + 1)
            conn.execute(
                SQLITE.render(UPDATE_EVENT),
                (*update_values(changed, self.contacts), event_id, current.version),
            )
            if entry is not None:
                _add_timeline(conn, event_id, entry)
            if comment is not None:
                conn.execute(
                    "INSERT INTO comments VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM "
                    "comments WHERE event_id = ?), ?, ?, ?)",
                    (event_id, event_id, comment.author, comment.text, us(comment.create_time)),
                )
            result = self._with_history(conn, changed)
            self._append_outbox(conn, fact, result)
            return result

        return await self.db.run(lambda conn: transaction(conn, write))

    async def unpublished(self, limit: int) -> list[OutboxEntry]:
        """Outbox entries not yet on the bus, oldest first."""

        def query(conn: sqlite3.Connection) -> list[OutboxEntry]:
            rows = conn.execute(UNPUBLISHED, (limit,)).fetchall()
            return [outbox_entry(row) for row in rows]

        return await self.db.run(query)

    async def mark_published(self, seqs: list[int]) -> None:
        now = us(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET published_us = ? WHERE seq = ?", [(now, s) for s in seqs]
            )

        # Not worth an fsync of its own: a mark lost to a power cut means a repeat on
        # the bus, which consumers drop by key; every create stays durable before it
        # is answered.
        await self.db.run(lambda conn: transaction(conn, write, durable=False))

    async def save_category(self, tenant: str, category: Category) -> None:
        definition = json.dumps(dataclasses.asdict(category))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO categories VALUES (?, ?, ?) ON CONFLICT (tenant, code) "
                "DO UPDATE SET definition = excluded.definition",
                (tenant, category.code, definition),
            )

        await self.db.run(lambda conn: transaction(conn, write))

    async def list_categories(self) -> list[tuple[str, Category]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, Category]]:
            return [
                (row["tenant"], Category(**json.loads(row["definition"])))
                for row in conn.execute("SELECT tenant, definition FROM categories")
            ]

        return await self.db.run(query)

    async def save_attachment(self, attachment: Attachment, content: bytes) -> None:
        values = attachment_values(attachment, content)
        await self.db.run(
            lambda conn: transaction(conn, lambda c: c.execute(INSERT_ATTACHMENT, values))
        )

    async def get_attachment(
        self, attachment_id: str, *, content: bool
    ) -> tuple[Attachment, bytes] | None:
        columns = ATTACHMENT_COLUMNS + (", content" if content else "")

        def query(conn: sqlite3.Connection) -> tuple[Attachment, bytes] | None:
            row = conn.execute(
                f"SELECT {columns} FROM attachments WHERE id = ?", (attachment_id,)
            ).fetchone()
            if row is None:
                return None
            return row_to_attachment(row), bytes(row["content"]) if content else b""

        return await self.db.run(query)

    async def save_intake_settings(self, tenant: str, settings: IntakeSettings) -> None:
        definition = json.dumps(dataclasses.asdict(settings))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO intake_settings VALUES (?, ?) ON CONFLICT (tenant) "
                "DO UPDATE SET definition = excluded.definition",
                (tenant, definition),
            )

        await self.db.run(lambda conn: transaction(conn, write))

    async def intake_settings(self, tenants: list[str]) -> dict[str, IntakeSettings]:
        def query(conn: sqlite3.Connection) -> dict[str, IntakeSettings]:
            marks = ", ".join("?" for _ in tenants)
            rows = conn.execute(
                f"SELECT tenant, definition FROM intake_settings WHERE tenant IN ({marks})",
                tenants,
            )
            return {r["tenant"]: IntakeSettings(**json.loads(r["definition"])) for r in rows}

        return await self.db.run(query)

    async def count_reports(self, tenant: str, reporter_prefix: str, since: datetime) -> int:
        def query(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    COUNT_REPORTS, (tenant, *prefix_range(reporter_prefix), us(since))
                ).fetchone()[0]
            )

        return await self.db.run(query)

    async def latest_offset(self) -> int:
        def query(conn: sqlite3.Connection) -> int:
            return int(conn.execute(LATEST_OFFSET).fetchone()[0])

        return await self.db.run(query)

    async def changes(self, subtree: str, after: int, limit: int) -> list[OutboxEntry]:
        """Domain events of a tenant subtree after an offset, for watchers."""

        def query(conn: sqlite3.Connection) -> list[OutboxEntry]:
            rows = conn.execute(CHANGES, (after, *subtree_params(subtree), limit)).fetchall()
            return [outbox_entry(row) for row in rows]

        return await self.db.run(query)

    async def statistics_rows(
        self, subtree: str, filters: Mapping[str, object]
    ) -> list[StatisticsRow]:
        """Per event: what the dashboards count, with when it was first resolved."""
        condition, args = where(subtree, filters)
        sql = SQLITE.render(STATISTICS.format(where=condition))

        def query(conn: sqlite3.Connection) -> list[StatisticsRow]:
            return [statistics_row(r) for r in conn.execute(sql, args)]

        return await self.db.run(query)

    async def list(
        self,
        subtree: str,
        filters: Mapping[str, object],
        limit: int,
        cursor: Mapping[str, object] | None,
    ) -> tuple[list[Event], dict[str, object] | None]:
        sql, args = list_query(subtree, filters, limit, cursor)

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(SQLITE.render(sql), args).fetchall()

        rows = await self.db.run(query)
        return [row_to_event(r, self.contacts) for r in rows[:limit]], next_cursor(rows, limit)

    def close(self) -> None:
        self.db.close()

"""The embedded event store: one SQLite file in WAL mode.

An event and its idempotency key are written in one transaction, so a create that
returned success is on disk (synchronous=FULL) and a retry can never make a second.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from services.events.domain.model import Event, GridPlace, NewReport, Point, Source, State
from services.kit.sqlite import SqliteDatabase, transaction

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
    update_us     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_grid_time ON events (grid_cell, create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_time ON events (create_us DESC, id DESC);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    parent       TEXT NOT NULL,
    reporter     TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    event_id     TEXT NOT NULL REFERENCES events (id),
    create_us    INTEGER NOT NULL,
    PRIMARY KEY (parent, reporter, request_id)
);
"""

_COLUMNS = (
    "id, tenant, category, description, longitude, latitude, reported_crs, source, state, "
    "grid_cell, grid_worker, reporter, create_us, update_us"
)
_E_COLUMNS = ", ".join("e." + c.strip() for c in _COLUMNS.split(","))
_FILTER_COLUMNS = {
    "grid_cell": "grid_cell",
    "village": "tenant",
    "category": "category",
    "state": "state",
}


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _row_to_event(row: sqlite3.Row) -> Event:
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
        create_time=_from_us(row["create_us"]),
        update_time=_from_us(row["update_us"]),
    )


def subtree_clause(column: str, scope: str) -> tuple[str, list[str]]:
    """SQL for "column is scope or below it", usable by an index range scan.

    '/' sorts just before '0', so every descendant path lies in [scope + '/', scope + '0').
    """
    return (
        f"({column} = ? OR ({column} >= ? AND {column} < ?))",
        [scope, scope + "/", scope + "0"],
    )


class SqliteEventStore:
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(lambda conn: conn.executescript(SCHEMA))

    async def find_by_request(
        self, parent: str, reporter: str, request_id: str
    ) -> tuple[Event, str] | None:
        def query(conn: sqlite3.Connection) -> tuple[Event, str] | None:
            row = conn.execute(
                f"SELECT k.fingerprint AS fingerprint, {_E_COLUMNS} "
                "FROM idempotency_keys k JOIN events e ON e.id = k.event_id "
                "WHERE k.parent = ? AND k.reporter = ? AND k.request_id = ?",
                (parent, reporter, request_id),
            ).fetchone()
            return (_row_to_event(row), row["fingerprint"]) if row else None

        return await self.db.run(query)

    async def create(self, report: NewReport, event: Event) -> tuple[Event, bool]:
        def write(conn: sqlite3.Connection) -> bool:
            taken = conn.execute(
                "SELECT 1 FROM idempotency_keys "
                "WHERE parent = ? AND reporter = ? AND request_id = ?",
                (report.parent, report.reporter, report.request_id),
            ).fetchone()
            if taken:
                return False
            conn.execute(
                f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
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
                    _us(event.create_time),
                    _us(event.update_time),
                ),
            )
            conn.execute(
                "INSERT INTO idempotency_keys VALUES (?,?,?,?,?,?)",
                (
                    report.parent,
                    report.reporter,
                    report.request_id,
                    report.fingerprint(),
                    event.id,
                    _us(event.create_time),
                ),
            )
            return True

        created = await self.db.run(lambda conn: transaction(conn, write))
        return event, created

    async def get(self, event_id: str) -> Event | None:
        def query(conn: sqlite3.Connection) -> Event | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)
            ).fetchone()
            return _row_to_event(row) if row else None

        return await self.db.run(query)

    async def list(
        self,
        scope: str,
        filters: Mapping[str, str],
        limit: int,
        cursor: Mapping[str, object] | None,
    ) -> tuple[list[Event], dict[str, object] | None]:
        clause, params = subtree_clause("tenant", scope)
        where: list[str] = [clause]
        args: list[object] = list(params)
        for name, value in filters.items():
            where.append(f"{_FILTER_COLUMNS[name]} = ?")
            args.append(value)
        if cursor:
            where.append("(create_us < ? OR (create_us = ? AND id < ?))")
            args.extend([cursor["t"], cursor["t"], cursor["id"]])
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY create_us DESC, id DESC LIMIT ?"
        )
        args.append(limit + 1)

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, args).fetchall()

        rows = await self.db.run(query)
        events = [_row_to_event(r) for r in rows[:limit]]
        next_cursor: dict[str, object] | None = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = {"t": last["create_us"], "id": last["id"]}
        return events, next_cursor

    def close(self) -> None:
        self.db.close()

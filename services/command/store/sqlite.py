"""The embedded command store: one SQLite file in WAL mode.

Every change runs on the database's single thread inside one transaction, with the
facts it publishes (outbox) and the timers it starts or stops, so a crash leaves
either all of it or none. `tasks.event` is unique: a replayed `event.reported` finds
the task the first delivery made instead of making a second.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.command.domain.model import HandlerProfile, RoutingRule, Task, TaskState
from services.command.domain.ports import BoardCounts, Fact, NewTask, OutboxEntry
from services.command.domain.task_order import NEWEST_FIRST, TaskOrder
from services.command.domain.timers import Timer
from services.command.store.rows import (
    APPEND_OUTBOX,
    AT_RISK_SQL,
    CANCEL_TIMERS,
    FINISH_TIMERS,
    GET_TIMER,
    HANDLER_COLUMNS,
    INSERT_HANDLER,
    INSERT_RULE,
    INSERT_TASK,
    INSERT_TIMER,
    NEXT_DUE,
    OPEN_SQL,
    OVERDUE_SQL,
    RULE_COLUMNS,
    TASK_COLUMNS,
    TIMER_COLUMNS,
    TOUCH_HANDLER,
    UPDATE_HANDLER,
    UPDATE_TASK,
    from_us,
    handler_holds_tasks,
    handler_values,
    handler_where,
    row_to_handler,
    row_to_rule,
    row_to_task,
    row_to_timer,
    rule_values,
    scope_where,
    task_order,
    task_values,
    task_where,
    timer_values,
    update_handler_values,
    update_task_values,
    us,
)
from services.kit import tracing
from services.kit.errors import Aborted, AlreadyExists, NotFound
from services.kit.sqlite import SqliteDatabase, transaction
from services.kit.tenancy import ALL_TENANTS

SCHEMA = """
CREATE TABLE IF NOT EXISTS timers (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    due_us      INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    fired_us    INTEGER,
    cancelled   INTEGER NOT NULL DEFAULT 0,
    owner       TEXT NOT NULL DEFAULT '',
    lease_us    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_us) WHERE fired_us IS NULL AND cancelled = 0;
CREATE TABLE IF NOT EXISTS handlers (
    tenant           TEXT NOT NULL,
    id               TEXT NOT NULL,
    user_subject     TEXT NOT NULL,
    roles            TEXT NOT NULL,
    teams            TEXT NOT NULL,
    on_duty          INTEGER NOT NULL,
    capacity         INTEGER NOT NULL,
    longitude        REAL,
    latitude         REAL,
    last_assigned_us INTEGER,
    supervisor       INTEGER NOT NULL DEFAULT 0,
    create_us        INTEGER,
    body             TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS handlers_user ON handlers (user_subject);
CREATE TABLE IF NOT EXISTS routing_rules (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    create_us   INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS tasks (
    tenant             TEXT NOT NULL,
    id                 TEXT NOT NULL,
    event              TEXT NOT NULL UNIQUE,
    state              TEXT NOT NULL,
    handler            TEXT NOT NULL,
    team               TEXT NOT NULL,
    grid_cell          TEXT NOT NULL,
    village            TEXT NOT NULL,
    category           TEXT NOT NULL,
    create_us          INTEGER NOT NULL,
    update_us          INTEGER NOT NULL,
    response_due_us    INTEGER,
    resolution_due_us  INTEGER,
    offer_us           INTEGER,
    accept_us          INTEGER,
    resolve_us         INTEGER,
    escalation_level   INTEGER NOT NULL,
    version            INTEGER NOT NULL,
    body               TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS tasks_tenant_time ON tasks (tenant, create_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS tasks_handler_state ON tasks (handler, state);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, tenant);
CREATE TABLE IF NOT EXISTS outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    type          TEXT NOT NULL,
    key           TEXT NOT NULL,
    payload       BLOB NOT NULL,
    create_us     INTEGER NOT NULL,
    published_us  INTEGER,
    trace_context TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_us IS NULL;
"""
_HELD = "('offered', 'accepted', 'in_progress')"
_HANDLER_SELECT = (
    f"SELECT {HANDLER_COLUMNS}, (SELECT count(*) FROM tasks t WHERE t.handler = h.user_subject "
    f"AND t.state IN {_HELD}) AS open_tasks FROM handlers h"
)


def _marks(count: int) -> str:
    return "(" + ", ".join("?" * count) + ")"


def _create_schema(conn: sqlite3.Connection) -> None:
    outbox = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    if outbox and "trace_context" not in outbox:  # a file from before traces
        conn.execute("ALTER TABLE outbox ADD COLUMN trace_context TEXT NOT NULL DEFAULT ''")
    conn.executescript(SCHEMA)


def _write(conn: sqlite3.Connection, facts: Sequence[Fact], now_us: int) -> None:
    for fact in facts:
        conn.execute(
            APPEND_OUTBOX,
            (fact.tenant, fact.type, fact.key, fact.payload, now_us, tracing.current_traceparent()),
        )


def _schedule(conn: sqlite3.Connection, timers: Sequence[Timer]) -> int:
    added = 0
    for timer in timers:
        added += conn.execute(INSERT_TIMER, timer_values(timer)).rowcount
    return added


def _touch(conn: sqlite3.Connection, task: Task) -> None:
    """The offer time on the offered handler: who was given work longest ago goes first."""
    if task.state is TaskState.OFFERED and task.handler and task.offer_time is not None:
        conn.execute(TOUCH_HANDLER, (us(task.offer_time), task.handler))


def _cancel(conn: sqlite3.Connection, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    return conn.execute(f"{CANCEL_TIMERS} {_marks(len(ids))}", list(ids)).rowcount


class SqliteCommandStore:
    """Handlers, rules, tasks, their outbox and the durable timers in one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(_create_schema)

    async def close(self) -> None:
        self.db.close()

    # ---- timers ------------------------------------------------------------------------

    async def schedule_timers(self, timers: Sequence[Timer]) -> int:
        return await self.db.run(lambda c: transaction(c, lambda c: _schedule(c, timers)))

    async def cancel_timers(self, ids: Sequence[str]) -> int:
        return await self.db.run(lambda c: transaction(c, lambda c: _cancel(c, ids)))

    async def claim_due_timers(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Timer]:
        now_us, lease_us = us(now), us(lease_until)

        def claim(conn: sqlite3.Connection) -> list[Timer]:
            found = conn.execute(
                f"UPDATE timers SET owner = ?, lease_us = ?, attempts = attempts + 1 "
                f"WHERE id IN (SELECT id FROM timers WHERE fired_us IS NULL AND cancelled = 0 "
                f"AND due_us <= ? AND lease_us < ? ORDER BY due_us LIMIT ?) "
                f"RETURNING {TIMER_COLUMNS}",
                (owner, lease_us, now_us, now_us, limit),
            ).fetchall()
            return sorted((row_to_timer(r) for r in found), key=lambda t: t.due)

        return await self.db.run(lambda c: transaction(c, claim))

    async def finish_timers(self, ids: Sequence[str], owner: str, fired: datetime) -> int:
        def finish(conn: sqlite3.Connection) -> int:
            total = 0
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                total += conn.execute(
                    f"{FINISH_TIMERS} {_marks(len(chunk))}", [us(fired), owner, *chunk]
                ).rowcount
            return total

        return await self.db.run(lambda c: transaction(c, finish))

    async def get_timer(self, timer_id: str) -> Timer | None:
        row = await self.db.run(lambda c: c.execute(GET_TIMER, (timer_id,)).fetchone())
        return row_to_timer(row) if row else None

    async def next_due(self) -> datetime | None:
        value = await self.db.run(lambda c: c.execute(NEXT_DUE).fetchone()[0])
        return from_us(value) if value is not None else None

    # ---- handler profiles --------------------------------------------------------------

    async def create_handler(self, profile: HandlerProfile) -> HandlerProfile:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(INSERT_HANDLER, handler_values(profile))
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"handler {profile.id!r} or a profile of user {profile.user!r} exists",
                    reason="HANDLER_EXISTS",
                ) from None

        await self.db.run(lambda c: transaction(c, insert))
        return profile

    async def get_handler(self, subtree: str, tenant: str, handler_id: str) -> HandlerProfile:
        where, args = scope_where(subtree)
        rows_found = await self.db.run(
            lambda c: c.execute(
                f"{_HANDLER_SELECT} WHERE {' AND '.join(where)} AND tenant = ? AND id = ?",
                (*args, tenant, handler_id),
            ).fetchall()
        )
        if not rows_found:
            raise NotFound(f"handler {handler_id!r} not found")
        return row_to_handler(rows_found[0], rows_found[0]["open_tasks"])

    async def find_handler(self, subtree: str, user: str) -> HandlerProfile | None:
        where, args = scope_where(subtree)
        found = await self.db.run(
            lambda c: c.execute(
                f"{_HANDLER_SELECT} WHERE {' AND '.join(where)} AND user_subject = ?",
                (*args, user),
            ).fetchone()
        )
        return row_to_handler(found, found["open_tasks"]) if found else None

    async def update_handler(self, profile: HandlerProfile) -> HandlerProfile:
        def update(conn: sqlite3.Connection) -> None:
            if not conn.execute(UPDATE_HANDLER, update_handler_values(profile)).rowcount:
                raise NotFound(f"handler {profile.id!r} not found")

        await self.db.run(lambda c: transaction(c, update))
        return profile

    async def delete_handler(self, subtree: str, tenant: str, handler_id: str) -> None:
        profile = await self.get_handler(subtree, tenant, handler_id)

        def delete(conn: sqlite3.Connection) -> None:
            held = conn.execute(
                f"SELECT count(*) FROM tasks WHERE handler = ? AND state IN {_HELD}",
                (profile.user,),
            ).fetchone()[0]
            if held:
                raise handler_holds_tasks(profile.id, held)
            if not conn.execute(
                "DELETE FROM handlers WHERE tenant = ? AND id = ?", (tenant, handler_id)
            ).rowcount:
                raise NotFound(f"handler {handler_id!r} not found")

        await self.db.run(lambda c: transaction(c, delete))

    async def list_handlers(
        self, subtree: str, filters: Mapping[str, str], limit: int, offset: int
    ) -> list[HandlerProfile]:
        where, args = handler_where(subtree, filters)
        found = await self.db.run(
            lambda c: c.execute(
                f"{_HANDLER_SELECT} WHERE {where} ORDER BY tenant, id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        )
        return [row_to_handler(r, r["open_tasks"]) for r in found]

    async def candidates(
        self, tenants: Sequence[str], role: str, team: str
    ) -> list[HandlerProfile]:
        filters = {k: v for k, v in (("role", role), ("team", team)) if v}
        where, args = handler_where(ALL_TENANTS, filters, tenants)
        found = await self.db.run(
            lambda c: c.execute(f"{_HANDLER_SELECT} WHERE {where}", args).fetchall()
        )
        return [row_to_handler(r, r["open_tasks"]) for r in found]

    async def supervisors(self, tenant: str) -> list[HandlerProfile]:
        found = await self.db.run(
            lambda c: c.execute(
                f"{_HANDLER_SELECT} WHERE tenant = ? AND supervisor = 1 ORDER BY id", (tenant,)
            ).fetchall()
        )
        return [row_to_handler(r, r["open_tasks"]) for r in found]

    # ---- routing rules -----------------------------------------------------------------

    async def create_rule(self, rule: RoutingRule) -> RoutingRule:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(INSERT_RULE, rule_values(rule))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"routing rule {rule.id!r} exists") from None

        await self.db.run(lambda c: transaction(c, insert))
        return rule

    async def get_rule(self, subtree: str, tenant: str, rule_id: str) -> RoutingRule:
        where, args = scope_where(subtree)
        found = await self.db.run(
            lambda c: c.execute(
                f"SELECT {RULE_COLUMNS} FROM routing_rules WHERE {' AND '.join(where)} "
                "AND tenant = ? AND id = ?",
                (*args, tenant, rule_id),
            ).fetchone()
        )
        if found is None:
            raise NotFound(f"routing rule {rule_id!r} not found")
        return row_to_rule(found)

    async def delete_rule(self, subtree: str, tenant: str, rule_id: str) -> None:
        await self.get_rule(subtree, tenant, rule_id)
        await self.db.run(
            lambda c: transaction(
                c,
                lambda c: c.execute(
                    "DELETE FROM routing_rules WHERE tenant = ? AND id = ?", (tenant, rule_id)
                ),
            )
        )

    async def rules_of(self, tenants: Sequence[str]) -> list[RoutingRule]:
        if not tenants:
            return []
        found = await self.db.run(
            lambda c: c.execute(
                f"SELECT {RULE_COLUMNS} FROM routing_rules WHERE tenant IN {_marks(len(tenants))}",
                list(tenants),
            ).fetchall()
        )
        return [row_to_rule(r) for r in found]

    # ---- tasks -------------------------------------------------------------------------

    async def create_tasks(self, new: Sequence[NewTask]) -> list[tuple[Task, bool]]:
        def insert(conn: sqlite3.Connection) -> list[tuple[Task, bool]]:
            written: list[tuple[Task, bool]] = []
            for one in new:
                task = one.task
                existing = conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE event = ?", (task.origin,)
                ).fetchone()
                if existing is not None:
                    written.append((row_to_task(existing), False))
                    continue
                conn.execute(INSERT_TASK, task_values(task))
                _write(conn, one.facts, us(task.update_time))
                _schedule(conn, one.timers)
                _touch(conn, task)
                written.append((task, True))
            return written

        return await self.db.run(lambda c: transaction(c, insert))

    async def update_task(
        self,
        task: Task,
        expected_version: int,
        facts: Sequence[Fact],
        schedule: Sequence[Timer] = (),
        cancel: Sequence[str] = (),
    ) -> Task:
        def update(conn: sqlite3.Connection) -> Task:
            if not conn.execute(UPDATE_TASK, update_task_values(task, expected_version)).rowcount:
                raise Aborted(f"task {task.id!r} changed meanwhile")
            _write(conn, facts, us(task.update_time))
            _cancel(conn, cancel)
            _schedule(conn, schedule)
            if any(f.type == "task.offered" for f in facts):
                _touch(conn, task)
            return task

        return await self.db.run(lambda c: transaction(c, update))

    async def get_task(self, subtree: str, tenant: str, task_id: str) -> Task:
        where, args = scope_where(subtree)
        found = await self.db.run(
            lambda c: c.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
                "AND tenant = ? AND id = ?",
                (*args, tenant, task_id),
            ).fetchone()
        )
        if found is None:
            raise NotFound(f"task {task_id!r} not found")
        return row_to_task(found)

    async def tasks_of_events(self, events: Sequence[str]) -> dict[str, Task]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for first in range(0, len(events), 500):
                part = events[first : first + 500]
                rows += conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE event IN {_marks(len(part))}", part
                ).fetchall()
            return rows

        found = await self.db.run(read)
        return {row["event"]: row_to_task(row) for row in found}

    async def list_tasks(
        self,
        subtree: str,
        filters: Mapping[str, object],
        limit: int,
        offset: int,
        order: TaskOrder = NEWEST_FIRST,
    ) -> list[Task]:
        now = filters.get("now")
        where, args = task_where(subtree, filters, now if isinstance(now, datetime) else _now())
        found = await self.db.run(
            lambda c: c.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE {where}{task_order(order)} "
                "LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        )
        return [row_to_task(r) for r in found]

    async def waiting_tasks(self, subtree: str, limit: int) -> list[Task]:
        return await self.list_tasks(subtree, {"state": "waiting"}, limit, 0)

    async def board(self, subtree: str, now: datetime) -> BoardCounts:
        where, args = scope_where(subtree)
        base = " AND ".join(where)
        now_us = us(now)

        def read(conn: sqlite3.Connection) -> BoardCounts:
            def grouped(column: str) -> dict[str, int]:
                return {
                    r[0]: r[1]
                    for r in conn.execute(
                        f"SELECT {column}, count(*) FROM tasks WHERE {base} AND {OPEN_SQL} "
                        f"GROUP BY {column}",
                        args,
                    )
                }

            def count(condition: str, params: list[object]) -> int:
                return int(
                    conn.execute(
                        f"SELECT count(*) FROM tasks WHERE {base} AND {condition}",
                        [*args, *params],
                    ).fetchone()[0]
                )

            means = conn.execute(
                f"SELECT avg(accept_us - offer_us), avg(resolve_us - create_us) FROM tasks "
                f"WHERE {base}",
                args,
            ).fetchone()
            return BoardCounts(
                by_state=grouped("state"),
                by_grid_cell=grouped("grid_cell"),
                by_handler=grouped("handler"),
                by_team=grouped("team"),
                at_risk=count(AT_RISK_SQL, [now_us] * 4),
                overdue=count(OVERDUE_SQL, [now_us] * 2),
                escalated=count(f"{OPEN_SQL} AND escalation_level > 0", []),
                mean_accept_seconds=means[0] / 1e6 if means[0] is not None else None,
                mean_resolve_seconds=means[1] / 1e6 if means[1] is not None else None,
            )

        return await self.db.run(read)

    # ---- outbox ------------------------------------------------------------------------

    async def unpublished(self, limit: int) -> list[OutboxEntry]:
        found = await self.db.run(
            lambda c: c.execute(
                "SELECT seq, tenant, type, key, payload, trace_context FROM outbox "
                "WHERE published_us IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [OutboxEntry(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in found]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        now_us = us(_now())
        await self.db.run(
            lambda c: transaction(
                c,
                lambda c: c.execute(
                    f"UPDATE outbox SET published_us = ? WHERE seq IN {_marks(len(seqs))}",
                    [now_us, *seqs],
                ),
            )
        )


def _now() -> datetime:
    return datetime.now(UTC)

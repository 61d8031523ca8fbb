"""Plans in the embedded SQLite file: every decision, its log entries and its facts in
one transaction on the database's single thread, so they cannot interleave."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from services.command.domain.command_log import LogEntry
from services.command.domain.emergency import EmergencyPlan
from services.command.domain.plan_facts import Fact
from services.command.domain.plans_ports import OrderDecision, PlanDecision, ServicePlanDecision
from services.command.domain.service_orders import (
    NOT_STARTED,
    Place,
    ServiceOrder,
    ServicePlan,
)
from services.command.store.plans_rows import (
    FIND_KEY,
    FORGET_KEYS,
    INSERT_KEY,
    INSERT_LOG,
    INSERT_ORDER,
    INSERT_OUTBOX,
    INSERT_PLAN,
    INSERT_SERVICE_PLAN,
    LOG_COLUMNS,
    ORDER_COLUMNS,
    PLAN_COLUMNS,
    SERVICE_PLAN_COLUMNS,
    UPDATE_ORDER,
    UPDATE_PLAN,
    UPDATE_SERVICE_PLAN,
    log_values,
    order_update_values,
    order_values,
    plan_update_values,
    plan_values,
    row_to_log,
    row_to_order,
    row_to_plan,
    row_to_service_plan,
    service_plan_update_values,
    service_plan_values,
    us,
)
from services.command.store.plans_schema import (
    ADDED_COLUMNS,
    LIVE,
    TABLES,
    in_subtree,
    order_filters,
)
from services.kit.errors import NotFound
from services.kit.sqldialect import SQLITE
from services.kit.sqlite import SqliteDatabase, transaction
from services.kit.tenancy import ALL_TENANTS

_SCHEMA = "\n".join(
    statement.format(text="TEXT", seq="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB") + ";"
    for statement in TABLES
)


def _r(statement: str) -> str:
    return SQLITE.render(statement)


def _make_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
    for table, column, kind in ADDED_COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _scoped(subtree: str, column: str = "tenant") -> tuple[str, list[object]]:
    if subtree == ALL_TENANTS:
        return "1 = 1", []
    clause, params = in_subtree(column, subtree)
    return _r(clause), list(params)


class SqlitePlansStore:
    """Emergency plans, service plans and orders, the command log and the plans outbox."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(_make_schema)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _log(conn: sqlite3.Connection, entries: Sequence[LogEntry]) -> None:
        conn.executemany(_r(INSERT_LOG), [log_values(e) for e in entries])

    @staticmethod
    def _outbox(conn: sqlite3.Connection, facts: Sequence[Fact], now_us: int) -> None:
        conn.executemany(
            _r(INSERT_OUTBOX), [(f.tenant, f.type, f.key, f.payload, now_us) for f in facts]
        )

    @staticmethod
    def _claim(
        conn: sqlite3.Connection, tenant: str, key: tuple[str, str, str] | None, rid: str, at: int
    ) -> bool:
        if key is None:
            return True
        actor, request_id, fingerprint = key
        cur = conn.execute(_r(INSERT_KEY), (tenant, actor, request_id, rid, fingerprint, at))
        return cur.rowcount == 1

    async def find_key(self, tenant: str, actor: str, request_id: str) -> tuple[str, str] | None:
        def read(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(_r(FIND_KEY), (tenant, actor, request_id)).fetchone()
            return None if row is None else (row["resource_id"], row["fingerprint"])

        return await self.db.run(read)

    async def create_emergency_plan(
        self, plan: EmergencyPlan, log: LogEntry, key: tuple[str, str, str] | None
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if not self._claim(conn, plan.tenant, key, plan.id, us(plan.create_time)):
                return False
            conn.execute(_r(INSERT_PLAN), plan_values(plan))
            self._log(conn, [log])
            return True

        return await self.db.run(lambda conn: transaction(conn, write))

    async def get_emergency_plan(self, plan_id: str) -> EmergencyPlan | None:
        def read(conn: sqlite3.Connection) -> EmergencyPlan | None:
            row = conn.execute(
                f"SELECT {PLAN_COLUMNS} FROM emergency_plans WHERE id = ?", (plan_id,)
            ).fetchone()
            return None if row is None else row_to_plan(row)

        return await self.db.run(read)

    async def list_emergency_plans(
        self, subtree: str, limit: int, after_id: str
    ) -> list[EmergencyPlan]:
        where, args = _scoped(subtree)

        def read(conn: sqlite3.Connection) -> list[EmergencyPlan]:
            rows = conn.execute(
                f"SELECT {PLAN_COLUMNS} FROM emergency_plans WHERE {where} AND {LIVE} AND id > ? "
                "ORDER BY id LIMIT ?",
                (*args, after_id, limit),
            ).fetchall()
            return [row_to_plan(r) for r in rows]

        return await self.db.run(read)

    async def plans_following(self, signal: str) -> list[EmergencyPlan]:
        def read(conn: sqlite3.Connection) -> list[EmergencyPlan]:
            rows = conn.execute(
                f"SELECT {PLAN_COLUMNS} FROM emergency_plans WHERE signal = ? AND {LIVE} "
                "ORDER BY id",
                (signal,),
            ).fetchall()
            return [row_to_plan(r) for r in rows]

        return await self.db.run(read)

    async def decide_plan(self, plan_id: str, decision: PlanDecision) -> EmergencyPlan | None:
        def write(conn: sqlite3.Connection) -> EmergencyPlan | None:
            row = conn.execute(
                f"SELECT {PLAN_COLUMNS} FROM emergency_plans WHERE id = ? AND {LIVE}", (plan_id,)
            ).fetchone()
            if row is None:
                return None
            current = row_to_plan(row)
            outcome = decision(current)
            if outcome is None:
                return current
            plan, logs, facts = outcome
            conn.execute(_r(UPDATE_PLAN), plan_update_values(plan))
            if plan.delete_time is not None:
                conn.execute(_r(FORGET_KEYS), (plan.id,))
            self._log(conn, logs)
            self._outbox(conn, facts, us(plan.level_change_time or plan.create_time))
            return plan

        return await self.db.run(lambda conn: transaction(conn, write))

    async def append_log(self, entries: Sequence[LogEntry]) -> None:
        await self.db.run(lambda conn: transaction(conn, lambda c: self._log(c, entries)))

    async def list_log(
        self, subtree: str, resource: str, limit: int, before_seq: int
    ) -> list[LogEntry]:
        where, args = _scoped(subtree)
        if resource:
            where += " AND resource = ?"
            args.append(resource)
        if before_seq:
            where += " AND seq < ?"
            args.append(before_seq)

        def read(conn: sqlite3.Connection) -> list[LogEntry]:
            rows = conn.execute(
                f"SELECT {LOG_COLUMNS} FROM command_log WHERE {where} ORDER BY seq DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [row_to_log(r) for r in rows]

        return await self.db.run(read)

    async def create_service_plan(
        self, plan: ServicePlan, log: LogEntry, key: tuple[str, str, str] | None
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if not self._claim(conn, plan.tenant, key, plan.id, us(plan.create_time)):
                return False
            conn.execute(_r(INSERT_SERVICE_PLAN), service_plan_values(plan))
            self._log(conn, [log])
            return True

        return await self.db.run(lambda conn: transaction(conn, write))

    async def get_service_plan(self, plan_id: str) -> ServicePlan | None:
        def read(conn: sqlite3.Connection) -> ServicePlan | None:
            row = conn.execute(
                f"SELECT {SERVICE_PLAN_COLUMNS} FROM service_plans WHERE id = ?", (plan_id,)
            ).fetchone()
            return None if row is None else row_to_service_plan(row)

        return await self.db.run(read)

    async def list_service_plans(
        self, subtree: str, limit: int, after_id: str
    ) -> list[ServicePlan]:
        where, args = _scoped(subtree)

        def read(conn: sqlite3.Connection) -> list[ServicePlan]:
            rows = conn.execute(
                f"SELECT {SERVICE_PLAN_COLUMNS} FROM service_plans WHERE {where} AND {LIVE} "
                "AND id > ? "
                "ORDER BY id LIMIT ?",
                (*args, after_id, limit),
            ).fetchall()
            return [row_to_service_plan(r) for r in rows]

        return await self.db.run(read)

    async def due_service_plans(self, until: datetime, limit: int) -> list[ServicePlan]:
        def read(conn: sqlite3.Connection) -> list[ServicePlan]:
            rows = conn.execute(
                f"SELECT {SERVICE_PLAN_COLUMNS} FROM service_plans WHERE next_us <= ? AND {LIVE} "
                "ORDER BY next_us LIMIT ?",
                (us(until), limit),
            ).fetchall()
            return [row_to_service_plan(r) for r in rows]

        return await self.db.run(read)

    async def decide_service_plan(
        self, plan_id: str, decision: ServicePlanDecision
    ) -> ServicePlan | None:
        states = tuple(s.value for s in NOT_STARTED)

        def write(conn: sqlite3.Connection) -> ServicePlan | None:
            row = conn.execute(
                f"SELECT {SERVICE_PLAN_COLUMNS} FROM service_plans WHERE id = ? AND {LIVE}",
                (plan_id,),
            ).fetchone()
            if row is None:
                return None
            waiting = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE plan_id = ? "
                f"AND state IN ({SQLITE.marks(len(states))}) ORDER BY scheduled_us, id",
                (plan_id, *states),
            ).fetchall()
            plan, orders, logs = decision(
                row_to_service_plan(row), [row_to_order(r) for r in waiting]
            )
            conn.execute(_r(UPDATE_SERVICE_PLAN), service_plan_update_values(plan))
            conn.executemany(_r(UPDATE_ORDER), [order_update_values(o) for o in orders])
            if plan.delete_time is not None:
                conn.execute(_r(FORGET_KEYS), (plan.id,))
            self._log(conn, logs)
            return plan

        return await self.db.run(lambda conn: transaction(conn, write))

    async def record_occurrence(
        self,
        plan: ServicePlan,
        orders: Sequence[ServiceOrder],
        next_occurrence: datetime | None,
        logs: Sequence[LogEntry],
    ) -> bool:
        expected = None if plan.next_occurrence is None else us(plan.next_occurrence)

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE service_plans SET next_us = ?, version = version + 1 "
                f"WHERE id = ? AND next_us = ? AND {LIVE}",
                (None if next_occurrence is None else us(next_occurrence), plan.id, expected),
            )
            if cur.rowcount != 1:
                return False
            conn.executemany(_r(INSERT_ORDER), [order_values(o) for o in orders])
            self._log(conn, logs)
            return True

        return await self.db.run(lambda conn: transaction(conn, write))

    async def open_orders_by_handler(self, handlers: Sequence[str]) -> dict[str, int]:
        marks = SQLITE.marks(len(handlers)) or "NULL"

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                f"SELECT handler, count(*) AS n FROM service_orders WHERE handler IN ({marks}) "
                "AND state IN ('assigned', 'checked_in') GROUP BY handler",
                tuple(handlers),
            ).fetchall()
            return {r["handler"]: r["n"] for r in rows}

        return await self.db.run(read)

    async def last_positions(self, handlers: Sequence[str]) -> dict[str, Place]:
        marks = SQLITE.marks(len(handlers)) or "NULL"

        def read(conn: sqlite3.Connection) -> dict[str, Place]:
            rows = conn.execute(
                f"SELECT handler, last_lon, last_lat FROM service_orders "
                f"WHERE handler IN ({marks}) AND last_us IS NOT NULL "
                "ORDER BY last_us",
                tuple(handlers),
            ).fetchall()
            return {r["handler"]: Place(r["last_lon"], r["last_lat"]) for r in rows}

        return await self.db.run(read)

    async def get_order(self, order_id: str) -> ServiceOrder | None:
        def read(conn: sqlite3.Connection) -> ServiceOrder | None:
            row = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE id = ?", (order_id,)
            ).fetchone()
            return None if row is None else row_to_order(row)

        return await self.db.run(read)

    async def list_orders(
        self,
        subtree: str,
        filters: Mapping[str, str],
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[ServiceOrder]:
        where, args = _scoped(subtree)
        terms, values = order_filters(filters, after)
        clause = " AND ".join([where, *terms])

        def read(conn: sqlite3.Connection) -> list[ServiceOrder]:
            rows = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE {clause} "
                "ORDER BY scheduled_us, id LIMIT ?",
                (*args, *values, limit),
            ).fetchall()
            return [row_to_order(r) for r in rows]

        return await self.db.run(read)

    async def decide_order(self, order_id: str, decision: OrderDecision) -> ServiceOrder:
        def write(conn: sqlite3.Connection) -> ServiceOrder:
            row = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE id = ?", (order_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"service order {order_id!r} not found")
            order, logs = decision(row_to_order(row))
            conn.execute(_r(UPDATE_ORDER), order_update_values(order))
            self._log(conn, logs)
            return order

        return await self.db.run(lambda conn: transaction(conn, write))

    async def unpublished(self, limit: int) -> list[tuple[int, Fact]]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, Fact]]:
            rows = conn.execute(
                "SELECT seq, tenant, type, key, payload FROM plans_outbox "
                "WHERE published_us IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            return [
                (r["seq"], Fact(r["tenant"], r["type"], r["key"], bytes(r["payload"])))
                for r in rows
            ]

        return await self.db.run(read)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        marks = SQLITE.marks(len(seqs)) or "NULL"
        now = us(datetime.now().astimezone())

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"UPDATE plans_outbox SET published_us = ? WHERE seq IN ({marks})", (now, *seqs)
            )

        await self.db.run(write)

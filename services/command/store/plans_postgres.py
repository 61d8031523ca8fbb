"""Plans in PostgreSQL, for deployments with more than one command replica.

A drop-in for the SQLite store (tests/unit/command_plans runs every test on both).
What SQLite's single writer gives for free is explicit here: a decision locks its row
(`SELECT ... FOR UPDATE`), an occurrence moves its plan on only from the occurrence it
read (`WHERE next_us = ...`), so two replicas never make one occurrence twice.

Row-level security (services/kit/rls.py) is the second wall under the tenant filters:
every table carries `tenant` with a forced subtree policy, the command log is
append-only for the app role, and each unit of work is scoped: a list to its subtree,
a create to its parent, a decision to the row's own tenant once the row is read, and
the service's own loops (relay, scheduler, signals) and reads by id to every tenant
(`ALL_TENANTS`), since they are not done for one subtree (the desk checks the caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

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
    APPEND_ONLY,
    LIVE,
    TABLES,
    TENANT_TABLES,
    order_filters,
)
from services.command.store.plans_schema import in_subtree as subtree_clause
from services.kit import rls
from services.kit.errors import NotFound
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x434D_504C  # "CMPL": schema set-up from several replicas at once
_SCHEMA = tuple(
    statement.format(text='text COLLATE "C"', seq="bigserial PRIMARY KEY", blob="bytea")
    for statement in TABLES
) + tuple(
    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}"
    for table, column, kind in ADDED_COLUMNS
)
_SET_SCOPE = "SELECT set_config(%s, %s, true)"
_GRANT_SEQUENCES = f"""DO $$ BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {rls.APP_ROLE}', current_schema());
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('command_log', 'seq'));
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('plans_outbox', 'seq'));
END $$"""

Row = dict[str, Any]


def _r(statement: str) -> str:
    return POSTGRES.render(statement)


def _scoped(subtree: str) -> tuple[str, list[object]]:
    if subtree == ALL_TENANTS:
        return "TRUE", []
    clause, params = subtree_clause("tenant", subtree)
    return _r(clause), list(params)


async def _fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Sequence[object]
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


class PostgresPlansStore:
    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 5) -> None:
        self.dsn = dsn
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-command-plans",
        )
        self._opened = False
        self._open_lock = asyncio.Lock()

    @classmethod
    async def open(cls, dsn: str) -> PostgresPlansStore:
        """A store with its schema in place and its pool connected (fails fast on a bad DSN)."""
        store = cls(dsn)
        await store._ensure_open()
        return store

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            connect = psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            async with await connect as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, ALL_TENANTS))
                for statement in _SCHEMA:
                    await conn.execute(statement)  # type: ignore[arg-type]
                await rls.install(conn, TENANT_TABLES, append_only=APPEND_ONLY)
                await conn.execute(_GRANT_SEQUENCES)  # type: ignore[arg-type]
            await self._pool.open(wait=True)
            self._opened = True

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _transaction(self, subtree: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        await self._ensure_open()
        async with rls.scoped_transaction(self._pool, subtree) as conn:
            yield conn

    @staticmethod
    async def _log(conn: psycopg.AsyncConnection[Any], entries: Sequence[LogEntry]) -> None:
        if entries:
            async with conn.cursor() as cur:
                await cur.executemany(_r(INSERT_LOG), [log_values(e) for e in entries])

    @staticmethod
    async def _claim(
        conn: psycopg.AsyncConnection[Any],
        tenant: str,
        key: tuple[str, str, str] | None,
        resource_id: str,
        at: int,
    ) -> bool:
        if key is None:
            return True
        actor, request_id, fingerprint = key
        cur = await conn.execute(
            _r(INSERT_KEY), (tenant, actor, request_id, resource_id, fingerprint, at)
        )
        return cur.rowcount == 1

    async def find_key(self, tenant: str, actor: str, request_id: str) -> tuple[str, str] | None:
        async with self._transaction(tenant) as conn:
            rows = await _fetch(conn, _r(FIND_KEY), (tenant, actor, request_id))
        return (rows[0]["resource_id"], rows[0]["fingerprint"]) if rows else None

    async def create_emergency_plan(
        self, plan: EmergencyPlan, log: LogEntry, key: tuple[str, str, str] | None
    ) -> bool:
        async with self._transaction(plan.tenant) as conn:
            if not await self._claim(conn, plan.tenant, key, plan.id, us(plan.create_time)):
                return False
            await conn.execute(_r(INSERT_PLAN), plan_values(plan))
            await self._log(conn, [log])
        return True

    async def _plans(
        self, subtree: str, where: str, params: Sequence[object]
    ) -> list[EmergencyPlan]:
        async with self._transaction(subtree) as conn:
            rows = await _fetch(
                conn, f"SELECT {PLAN_COLUMNS} FROM emergency_plans WHERE {where}", params
            )
        return [row_to_plan(r) for r in rows]

    async def get_emergency_plan(self, plan_id: str) -> EmergencyPlan | None:
        found = await self._plans(ALL_TENANTS, "id = %s", (plan_id,))
        return found[0] if found else None

    async def list_emergency_plans(
        self, subtree: str, limit: int, after_id: str
    ) -> list[EmergencyPlan]:
        where, args = _scoped(subtree)
        return await self._plans(
            subtree,
            f"{where} AND {LIVE} AND id > %s ORDER BY id LIMIT %s",
            (*args, after_id, limit),
        )

    async def plans_following(self, signal: str) -> list[EmergencyPlan]:
        return await self._plans(ALL_TENANTS, f"signal = %s AND {LIVE} ORDER BY id", (signal,))

    async def decide_plan(self, plan_id: str, decision: PlanDecision) -> EmergencyPlan | None:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {PLAN_COLUMNS} FROM emergency_plans WHERE id = %s AND {LIVE} FOR UPDATE",
                (plan_id,),
            )
            if not rows:
                return None
            current = row_to_plan(rows[0])
            outcome = decision(current)
            if outcome is None:
                return current
            plan, logs, facts = outcome
            # Everything written from here on is the plan's own tenant's.
            await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, plan.tenant))
            await conn.execute(_r(UPDATE_PLAN), plan_update_values(plan))
            if plan.delete_time is not None:
                await conn.execute(_r(FORGET_KEYS), (plan.id,))
            await self._log(conn, logs)
            await self._outbox(conn, facts, us(plan.level_change_time or plan.create_time))
        return plan

    @staticmethod
    async def _outbox(conn: psycopg.AsyncConnection[Any], facts: Sequence[Fact], at: int) -> None:
        if facts:
            async with conn.cursor() as cur:
                await cur.executemany(
                    _r(INSERT_OUTBOX), [(f.tenant, f.type, f.key, f.payload, at) for f in facts]
                )

    async def append_log(self, entries: Sequence[LogEntry]) -> None:
        for tenant in {e.tenant for e in entries}:
            async with self._transaction(tenant) as conn:
                await self._log(conn, [e for e in entries if e.tenant == tenant])

    async def list_log(
        self, subtree: str, resource: str, limit: int, before_seq: int
    ) -> list[LogEntry]:
        where, args = _scoped(subtree)
        if resource:
            where += " AND resource = %s"
            args.append(resource)
        if before_seq:
            where += " AND seq < %s"
            args.append(before_seq)
        async with self._transaction(subtree) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {LOG_COLUMNS} FROM command_log WHERE {where} ORDER BY seq DESC LIMIT %s",
                (*args, limit),
            )
        return [row_to_log(r) for r in rows]

    async def create_service_plan(
        self, plan: ServicePlan, log: LogEntry, key: tuple[str, str, str] | None
    ) -> bool:
        async with self._transaction(plan.tenant) as conn:
            if not await self._claim(conn, plan.tenant, key, plan.id, us(plan.create_time)):
                return False
            await conn.execute(_r(INSERT_SERVICE_PLAN), service_plan_values(plan))
            await self._log(conn, [log])
        return True

    async def _service_plans(
        self, subtree: str, where: str, params: Sequence[object]
    ) -> list[ServicePlan]:
        async with self._transaction(subtree) as conn:
            rows = await _fetch(
                conn, f"SELECT {SERVICE_PLAN_COLUMNS} FROM service_plans WHERE {where}", params
            )
        return [row_to_service_plan(r) for r in rows]

    async def get_service_plan(self, plan_id: str) -> ServicePlan | None:
        found = await self._service_plans(ALL_TENANTS, "id = %s", (plan_id,))
        return found[0] if found else None

    async def list_service_plans(
        self, subtree: str, limit: int, after_id: str
    ) -> list[ServicePlan]:
        where, args = _scoped(subtree)
        return await self._service_plans(
            subtree,
            f"{where} AND {LIVE} AND id > %s ORDER BY id LIMIT %s",
            (*args, after_id, limit),
        )

    async def due_service_plans(self, until: datetime, limit: int) -> list[ServicePlan]:
        return await self._service_plans(
            ALL_TENANTS, f"next_us <= %s AND {LIVE} ORDER BY next_us LIMIT %s", (us(until), limit)
        )

    async def decide_service_plan(
        self, plan_id: str, decision: ServicePlanDecision
    ) -> ServicePlan | None:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {SERVICE_PLAN_COLUMNS} FROM service_plans WHERE id = %s AND {LIVE} "
                "FOR UPDATE",
                (plan_id,),
            )
            if not rows:
                return None
            waiting = await _fetch(
                conn,
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE plan_id = %s "
                "AND state = ANY(%s) ORDER BY scheduled_us, id FOR UPDATE",
                (plan_id, [s.value for s in NOT_STARTED]),
            )
            plan, orders, logs = decision(
                row_to_service_plan(rows[0]), [row_to_order(r) for r in waiting]
            )
            # Everything written from here on is the plan's own tenant's.
            await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, plan.tenant))
            await conn.execute(_r(UPDATE_SERVICE_PLAN), service_plan_update_values(plan))
            if orders:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        _r(UPDATE_ORDER), [order_update_values(o) for o in orders]
                    )
            if plan.delete_time is not None:
                await conn.execute(_r(FORGET_KEYS), (plan.id,))
            await self._log(conn, logs)
        return plan

    async def record_occurrence(
        self,
        plan: ServicePlan,
        orders: Sequence[ServiceOrder],
        next_occurrence: datetime | None,
        logs: Sequence[LogEntry],
    ) -> bool:
        expected = None if plan.next_occurrence is None else us(plan.next_occurrence)
        following = None if next_occurrence is None else us(next_occurrence)
        async with self._transaction(plan.tenant) as conn:
            cur = await conn.execute(
                "UPDATE service_plans SET next_us = %s, version = version + 1 "
                f"WHERE id = %s AND next_us = %s AND {LIVE}",
                (following, plan.id, expected),
            )
            if cur.rowcount != 1:
                return False
            if orders:
                async with conn.cursor() as c:
                    await c.executemany(_r(INSERT_ORDER), [order_values(o) for o in orders])
            await self._log(conn, logs)
        return True

    async def open_orders_by_handler(self, handlers: Sequence[str]) -> dict[str, int]:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                "SELECT handler, count(*) AS n FROM service_orders WHERE handler = ANY(%s) "
                "AND state IN ('assigned', 'checked_in') GROUP BY handler",
                (list(handlers),),
            )
        return {r["handler"]: r["n"] for r in rows}

    async def last_positions(self, handlers: Sequence[str]) -> dict[str, Place]:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                "SELECT DISTINCT ON (handler) handler, last_lon, last_lat FROM service_orders "
                "WHERE handler = ANY(%s) AND last_us IS NOT NULL ORDER BY handler, last_us DESC",
                (list(handlers),),
            )
        return {r["handler"]: Place(r["last_lon"], r["last_lat"]) for r in rows}

    async def get_order(self, order_id: str) -> ServiceOrder | None:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn, f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE id = %s", (order_id,)
            )
        return row_to_order(rows[0]) if rows else None

    async def list_orders(
        self,
        subtree: str,
        filters: Mapping[str, str],
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[ServiceOrder]:
        where, args = _scoped(subtree)
        terms, values = order_filters(filters, after)
        clause = " AND ".join([where, *(_r(t) for t in terms)])
        async with self._transaction(subtree) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE {clause} "
                "ORDER BY scheduled_us, id LIMIT %s",
                (*args, *values, limit),
            )
        return [row_to_order(r) for r in rows]

    async def decide_order(self, order_id: str, decision: OrderDecision) -> ServiceOrder:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                f"SELECT {ORDER_COLUMNS} FROM service_orders WHERE id = %s FOR UPDATE",
                (order_id,),
            )
            if not rows:
                raise NotFound(f"service order {order_id!r} not found")
            order, logs = decision(row_to_order(rows[0]))
            await conn.execute(_SET_SCOPE, (rls.SCOPE_SETTING, order.tenant))
            await conn.execute(_r(UPDATE_ORDER), order_update_values(order))
            await self._log(conn, logs)
        return order

    async def unpublished(self, limit: int) -> list[tuple[int, Fact]]:
        async with self._transaction(ALL_TENANTS) as conn:
            rows = await _fetch(
                conn,
                "SELECT seq, tenant, type, key, payload FROM plans_outbox "
                "WHERE published_us IS NULL ORDER BY seq LIMIT %s",
                (limit,),
            )
        return [
            (r["seq"], Fact(r["tenant"], r["type"], r["key"], bytes(r["payload"]))) for r in rows
        ]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        async with self._transaction(ALL_TENANTS) as conn:
            await conn.execute(
                "UPDATE plans_outbox SET published_us = %s WHERE seq = ANY(%s)",
                (us(datetime.now(UTC)), list(seqs)),
            )

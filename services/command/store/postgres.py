"""The command store in PostgreSQL, for deployments with more than one command replica.

Same tables and columns as the SQLite store (tests/unit/command runs every test on
both), statements shared through `rows` and rendered for `%s`. What SQLite's single
writer gives for free is explicit here:

* timers are claimed with `FOR UPDATE SKIP LOCKED`, so two replicas never lease the
  same row, and a lease that ran out is taken over;
* a task update checks its version in the WHERE clause (optimistic), so a stale change
  cannot win; one task per event is the unique index on `tasks.event`;
* row-level security (services/kit/rls.py) polices every table by `tenant`: reads for
  a caller run scoped to the caller's subtree; the dispatcher, scheduler and relay
  (the service's own work) run in the `ALL_TENANTS` subtree.
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
from services.kit import rls, tracing
from services.kit.errors import Aborted, AlreadyExists, NotFound
from services.kit.sqldialect import POSTGRES
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x434D_5343  # "CMSC": concurrent schema set-up from several replicas
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS timers (
        id          text COLLATE "C" PRIMARY KEY,
        tenant      text COLLATE "C" NOT NULL,
        kind        text NOT NULL,
        due_us      bigint NOT NULL,
        payload     text NOT NULL,
        attempts    integer NOT NULL DEFAULT 0,
        fired_us    bigint,
        cancelled   integer NOT NULL DEFAULT 0,
        owner       text NOT NULL DEFAULT '',
        lease_us    bigint NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS timers_due ON timers (due_us) "
    "WHERE fired_us IS NULL AND cancelled = 0",
    """CREATE TABLE IF NOT EXISTS handlers (
        tenant           text COLLATE "C" NOT NULL,
        id               text COLLATE "C" NOT NULL,
        user_subject     text NOT NULL,
        roles            text NOT NULL,
        teams            text NOT NULL,
        on_duty          integer NOT NULL,
        capacity         integer NOT NULL,
        longitude        double precision,
        latitude         double precision,
        last_assigned_us bigint,
        supervisor       integer NOT NULL DEFAULT 0,
        create_us        bigint,
        body             text NOT NULL,
        PRIMARY KEY (tenant, id))""",
    "CREATE UNIQUE INDEX IF NOT EXISTS handlers_user ON handlers (user_subject)",
    """CREATE TABLE IF NOT EXISTS routing_rules (
        tenant      text COLLATE "C" NOT NULL,
        id          text COLLATE "C" NOT NULL,
        priority    integer NOT NULL,
        create_us   bigint NOT NULL,
        body        text NOT NULL,
        PRIMARY KEY (tenant, id))""",
    """CREATE TABLE IF NOT EXISTS tasks (
        tenant             text COLLATE "C" NOT NULL,
        id                 text COLLATE "C" NOT NULL,
        event              text COLLATE "C" NOT NULL UNIQUE,
        state              text NOT NULL,
        handler            text NOT NULL,
        team               text NOT NULL,
        grid_cell          text COLLATE "C" NOT NULL,
        village            text COLLATE "C" NOT NULL,
        category           text NOT NULL,
        create_us          bigint NOT NULL,
        update_us          bigint NOT NULL,
        response_due_us    bigint,
        resolution_due_us  bigint,
        offer_us           bigint,
        accept_us          bigint,
        resolve_us         bigint,
        escalation_level   integer NOT NULL,
        version            integer NOT NULL,
        body               text NOT NULL,
        PRIMARY KEY (tenant, id))""",
    "CREATE INDEX IF NOT EXISTS tasks_tenant_time ON tasks (tenant, create_us DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS tasks_handler_state ON tasks (handler, state)",
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, tenant)",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq           bigserial PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        type          text NOT NULL,
        key           text NOT NULL,
        payload       bytea NOT NULL,
        create_us     bigint NOT NULL,
        published_us  bigint)""",
    # Older schemas gain the column in place; a constant default rewrites no rows.
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS trace_context text NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_us IS NULL",
)
_TENANT_TABLES = ("timers", "handlers", "routing_rules", "tasks", "outbox")
_GRANT_SEQUENCE = f"""DO $$ BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {rls.APP_ROLE}', current_schema());
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {rls.APP_ROLE}',
                 pg_get_serial_sequence('outbox', 'seq'));
END $$"""
_SET_SCOPE = "SELECT set_config(%s, %s, true)"
_HELD = "('offered', 'accepted', 'in_progress')"
_HANDLER_SELECT = (
    f"SELECT {HANDLER_COLUMNS}, (SELECT count(*) FROM tasks t WHERE t.handler = h.user_subject "
    f"AND t.state IN {_HELD}) AS open_tasks FROM handlers h"
)
_CLAIM = (
    "UPDATE timers SET owner = %s, lease_us = %s, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM timers WHERE fired_us IS NULL AND cancelled = 0 "
    "AND due_us <= %s AND lease_us < %s ORDER BY due_us LIMIT %s FOR UPDATE SKIP LOCKED) "
    f"RETURNING {TIMER_COLUMNS}"
)
_R = POSTGRES.render
Row = dict[str, Any]


def _any(statement: str) -> str:
    """`... id IN` of the shared text, as `= ANY(%s)` with one array parameter."""
    return _R(statement.removesuffix(" IN")) + " = ANY(%s)"


class PostgresCommandStore:
    """The command store on PostgreSQL with row-level security (see the module docstring)."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        self.dsn = dsn
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-command",
        )
        self._opened = False
        self._open_lock = asyncio.Lock()

    @classmethod
    async def open(cls, dsn: str, **kwargs: int) -> PostgresCommandStore:
        """A store with its schema in place and its pool connected (fails fast on a bad DSN)."""
        store = cls(dsn, **kwargs)
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
                    await conn.execute(statement)
                await rls.install(conn, _TENANT_TABLES)
                await conn.execute(_GRANT_SEQUENCE)
            await self._pool.open(wait=True)
            self._opened = True

    @property
    def pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        return self._pool

    @asynccontextmanager
    async def _transaction(self, subtree: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        await self._ensure_open()
        async with rls.scoped_transaction(self._pool, subtree) as conn:
            yield conn

    async def _fetch(self, subtree: str, query: str, params: Sequence[object]) -> list[Row]:
        async with self._transaction(subtree) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool (a task inside a loop, like the events store)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return loop.create_task(self._pool.close())

    # ---- timers ------------------------------------------------------------------------

    async def schedule_timers(self, timers: Sequence[Timer]) -> int:
        async with self._transaction(ALL_TENANTS) as conn:
            return await _schedule(conn, timers)

    async def cancel_timers(self, ids: Sequence[str]) -> int:
        async with self._transaction(ALL_TENANTS) as conn:
            return await _cancel(conn, ids)

    async def claim_due_timers(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Timer]:
        found = await self._fetch(
            ALL_TENANTS, _CLAIM, (owner, us(lease_until), us(now), us(now), limit)
        )
        return sorted((row_to_timer(r) for r in found), key=lambda t: t.due)

    async def finish_timers(self, ids: Sequence[str], owner: str, fired: datetime) -> int:
        async with self._transaction(ALL_TENANTS) as conn:
            cur = await conn.execute(_any(FINISH_TIMERS), (us(fired), owner, list(ids)))
            return cur.rowcount

    async def get_timer(self, timer_id: str) -> Timer | None:
        found = await self._fetch(ALL_TENANTS, _R(GET_TIMER), (timer_id,))
        return row_to_timer(found[0]) if found else None

    async def next_due(self) -> datetime | None:
        found = await self._fetch(ALL_TENANTS, NEXT_DUE, ())
        value = found[0]["due"] if found else None
        return from_us(value) if value is not None else None

    # ---- handler profiles --------------------------------------------------------------

    async def create_handler(self, profile: HandlerProfile) -> HandlerProfile:
        try:
            async with self._transaction(profile.tenant) as conn:
                await conn.execute(_R(INSERT_HANDLER), handler_values(profile))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(
                f"handler {profile.id!r} or a profile of user {profile.user!r} exists",
                reason="HANDLER_EXISTS",
            ) from None
        return profile

    async def get_handler(self, subtree: str, tenant: str, handler_id: str) -> HandlerProfile:
        where, args = scope_where(subtree)
        found = await self._fetch(
            subtree,
            _R(f"{_HANDLER_SELECT} WHERE {' AND '.join(where)} AND tenant = ? AND id = ?"),
            (*args, tenant, handler_id),
        )
        if not found:
            raise NotFound(f"handler {handler_id!r} not found")
        return row_to_handler(found[0], found[0]["open_tasks"])

    async def find_handler(self, subtree: str, user: str) -> HandlerProfile | None:
        where, args = scope_where(subtree)
        found = await self._fetch(
            subtree,
            _R(f"{_HANDLER_SELECT} WHERE {' AND '.join(where)} AND user_subject = ?"),
            (*args, user),
        )
        return row_to_handler(found[0], found[0]["open_tasks"]) if found else None

    async def update_handler(self, profile: HandlerProfile) -> HandlerProfile:
        async with self._transaction(profile.tenant) as conn:
            cur = await conn.execute(_R(UPDATE_HANDLER), update_handler_values(profile))
            if not cur.rowcount:
                raise NotFound(f"handler {profile.id!r} not found")
        return profile

    async def delete_handler(self, subtree: str, tenant: str, handler_id: str) -> None:
        profile = await self.get_handler(subtree, tenant, handler_id)
        async with self._transaction(tenant) as conn:
            # The row lock orders this with an offer, which writes the handler's offer time.
            locked = await conn.execute(
                "SELECT id FROM handlers WHERE tenant = %s AND id = %s FOR UPDATE",
                (tenant, handler_id),
            )
            if await locked.fetchone() is None:
                raise NotFound(f"handler {handler_id!r} not found")
            counted = await conn.execute(
                f"SELECT count(*) FROM tasks WHERE handler = %s AND state IN {_HELD}",
                (profile.user,),
            )
            row = await counted.fetchone()
            held = int(row[0]) if row else 0
            if held:
                raise handler_holds_tasks(profile.id, held)
            await conn.execute(
                "DELETE FROM handlers WHERE tenant = %s AND id = %s", (tenant, handler_id)
            )

    async def list_handlers(
        self, subtree: str, filters: Mapping[str, str], limit: int, offset: int
    ) -> list[HandlerProfile]:
        where, args = handler_where(subtree, filters)
        found = await self._fetch(
            subtree,
            _R(f"{_HANDLER_SELECT} WHERE {where} ORDER BY tenant, id LIMIT ? OFFSET ?"),
            (*args, limit, offset),
        )
        return [row_to_handler(r, r["open_tasks"]) for r in found]

    async def candidates(
        self, tenants: Sequence[str], role: str, team: str
    ) -> list[HandlerProfile]:
        filters = {k: v for k, v in (("role", role), ("team", team)) if v}
        where, args = handler_where(ALL_TENANTS, filters, tenants)
        found = await self._fetch(ALL_TENANTS, _R(f"{_HANDLER_SELECT} WHERE {where}"), args)
        return [row_to_handler(r, r["open_tasks"]) for r in found]

    async def supervisors(self, tenant: str) -> list[HandlerProfile]:
        found = await self._fetch(
            tenant,
            _R(f"{_HANDLER_SELECT} WHERE tenant = ? AND supervisor = 1 ORDER BY id"),
            (tenant,),
        )
        return [row_to_handler(r, r["open_tasks"]) for r in found]

    # ---- routing rules -----------------------------------------------------------------

    async def create_rule(self, rule: RoutingRule) -> RoutingRule:
        try:
            async with self._transaction(rule.tenant) as conn:
                await conn.execute(_R(INSERT_RULE), rule_values(rule))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"routing rule {rule.id!r} exists") from None
        return rule

    async def get_rule(self, subtree: str, tenant: str, rule_id: str) -> RoutingRule:
        where, args = scope_where(subtree)
        found = await self._fetch(
            subtree,
            _R(
                f"SELECT {RULE_COLUMNS} FROM routing_rules WHERE {' AND '.join(where)} "
                "AND tenant = ? AND id = ?"
            ),
            (*args, tenant, rule_id),
        )
        if not found:
            raise NotFound(f"routing rule {rule_id!r} not found")
        return row_to_rule(found[0])

    async def delete_rule(self, subtree: str, tenant: str, rule_id: str) -> None:
        await self.get_rule(subtree, tenant, rule_id)
        async with self._transaction(tenant) as conn:
            await conn.execute(
                "DELETE FROM routing_rules WHERE tenant = %s AND id = %s", (tenant, rule_id)
            )

    async def rules_of(self, tenants: Sequence[str]) -> list[RoutingRule]:
        if not tenants:
            return []
        found = await self._fetch(
            ALL_TENANTS,
            f"SELECT {RULE_COLUMNS} FROM routing_rules WHERE tenant = ANY(%s)",
            (list(tenants),),
        )
        return [row_to_rule(r) for r in found]

    # ---- tasks -------------------------------------------------------------------------

    async def create_tasks(self, new: Sequence[NewTask]) -> list[tuple[Task, bool]]:
        written: list[tuple[Task, bool]] = []
        async with self._transaction(ALL_TENANTS) as conn:
            for one in new:
                task = one.task
                cur = await conn.execute(
                    _R(INSERT_TASK) + " ON CONFLICT DO NOTHING", task_values(task)
                )
                if cur.rowcount:
                    await _write(conn, one.facts, us(task.update_time))
                    await _schedule(conn, one.timers)
                    await _touch(conn, task)
                    written.append((task, True))
                    continue
                async with conn.cursor(row_factory=dict_row) as read:
                    await read.execute(
                        f"SELECT {TASK_COLUMNS} FROM tasks WHERE event = %s", (task.origin,)
                    )
                    existing = await read.fetchone()
                if existing is None:  # the winner's row is not visible yet: the caller retries
                    raise Aborted(
                        f"a task for {task.origin!r} is being created", reason="TASK_RACE"
                    )
                written.append((row_to_task(existing), False))
        return written

    async def update_task(
        self,
        task: Task,
        expected_version: int,
        facts: Sequence[Fact],
        schedule: Sequence[Timer] = (),
        cancel: Sequence[str] = (),
    ) -> Task:
        async with self._transaction(ALL_TENANTS) as conn:
            cur = await conn.execute(_R(UPDATE_TASK), update_task_values(task, expected_version))
            if not cur.rowcount:
                raise Aborted(f"task {task.id!r} changed meanwhile")
            await _write(conn, facts, us(task.update_time))
            await _cancel(conn, cancel)
            await _schedule(conn, schedule)
            if any(f.type == "task.offered" for f in facts):
                await _touch(conn, task)
        return task

    async def get_task(self, subtree: str, tenant: str, task_id: str) -> Task:
        where, args = scope_where(subtree)
        found = await self._fetch(
            subtree,
            _R(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
                "AND tenant = ? AND id = ?"
            ),
            (*args, tenant, task_id),
        )
        if not found:
            raise NotFound(f"task {task_id!r} not found")
        return row_to_task(found[0])

    async def tasks_of_events(self, events: Sequence[str]) -> dict[str, Task]:
        found = await self._fetch(
            ALL_TENANTS, f"SELECT {TASK_COLUMNS} FROM tasks WHERE event = ANY(%s)", (list(events),)
        )
        return {task.origin: task for task in map(row_to_task, found)}

    async def list_tasks(
        self,
        subtree: str,
        filters: Mapping[str, object],
        limit: int,
        offset: int,
        order: TaskOrder = NEWEST_FIRST,
    ) -> list[Task]:
        now = filters.get("now")
        where, args = task_where(
            subtree, filters, now if isinstance(now, datetime) else datetime.now(UTC)
        )
        found = await self._fetch(
            subtree,
            _R(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE {where}{task_order(order)} "
                "LIMIT ? OFFSET ?"
            ),
            (*args, limit, offset),
        )
        return [row_to_task(r) for r in found]

    async def waiting_tasks(self, subtree: str, limit: int) -> list[Task]:
        return await self.list_tasks(subtree, {"state": "waiting"}, limit, 0)

    async def board(self, subtree: str, now: datetime) -> BoardCounts:
        where, args = scope_where(subtree)
        base = " AND ".join(where)
        now_us = us(now)
        async with self._transaction(subtree) as conn:

            async def grouped(column: str) -> dict[str, int]:
                cur = await conn.execute(
                    _R(
                        f"SELECT {column}, count(*) FROM tasks WHERE {base} AND {OPEN_SQL} "
                        f"GROUP BY {column}"
                    ),
                    args,
                )
                return {r[0]: r[1] for r in await cur.fetchall()}

            async def count(condition: str, params: list[object]) -> int:
                cur = await conn.execute(
                    _R(f"SELECT count(*) FROM tasks WHERE {base} AND {condition}"),
                    [*args, *params],
                )
                row = await cur.fetchone()
                return int(row[0]) if row else 0

            cur = await conn.execute(
                _R(
                    "SELECT avg(accept_us - offer_us)::float8, avg(resolve_us - create_us)::float8 "
                    f"FROM tasks WHERE {base}"
                ),
                args,
            )
            means = await cur.fetchone()
            return BoardCounts(
                by_state=await grouped("state"),
                by_grid_cell=await grouped("grid_cell"),
                by_handler=await grouped("handler"),
                by_team=await grouped("team"),
                at_risk=await count(AT_RISK_SQL, [now_us] * 4),
                overdue=await count(OVERDUE_SQL, [now_us] * 2),
                escalated=await count(f"{OPEN_SQL} AND escalation_level > 0", []),
                mean_accept_seconds=means[0] / 1e6 if means and means[0] is not None else None,
                mean_resolve_seconds=means[1] / 1e6 if means and means[1] is not None else None,
            )

    # ---- outbox ------------------------------------------------------------------------

    async def unpublished(self, limit: int) -> list[OutboxEntry]:
        found = await self._fetch(
            ALL_TENANTS,
            "SELECT seq, tenant, type, key, payload, trace_context FROM outbox "
            "WHERE published_us IS NULL ORDER BY seq LIMIT %s",
            (limit,),
        )
        return [
            OutboxEntry(
                r["seq"], r["tenant"], r["type"], r["key"], bytes(r["payload"]), r["trace_context"]
            )
            for r in found
        ]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        async with self._transaction(ALL_TENANTS) as conn:
            await conn.execute(
                "UPDATE outbox SET published_us = %s WHERE seq = ANY(%s)",
                (us(datetime.now(UTC)), list(seqs)),
            )


async def _write(conn: psycopg.AsyncConnection[Any], facts: Sequence[Fact], now_us: int) -> None:
    for fact in facts:
        await conn.execute(
            _R(APPEND_OUTBOX),
            (fact.tenant, fact.type, fact.key, fact.payload, now_us, tracing.current_traceparent()),
        )


async def _schedule(conn: psycopg.AsyncConnection[Any], timers: Sequence[Timer]) -> int:
    if not timers:
        return 0
    async with conn.cursor() as cur:
        await cur.executemany(_R(INSERT_TIMER), [timer_values(t) for t in timers])
        return max(cur.rowcount, 0)


async def _touch(conn: psycopg.AsyncConnection[Any], task: Task) -> None:
    """The offer time on the offered handler: who was given work longest ago goes first."""
    if task.state is TaskState.OFFERED and task.handler and task.offer_time is not None:
        await conn.execute(_R(TOUCH_HANDLER), (us(task.offer_time), task.handler))


async def _cancel(conn: psycopg.AsyncConnection[Any], ids: Sequence[str]) -> int:
    if not ids:
        return 0
    cur = await conn.execute(_any(CANCEL_TIMERS), (list(ids),))
    return cur.rowcount

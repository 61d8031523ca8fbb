"""Forms, records, report templates and runs in PostgreSQL, under row-level security.

A drop-in for the SQLite store (tests/unit/empower/forms runs every test on both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.empower.domain.forms_model import Form, FormRecord, ReportRun, ReportTemplate
from services.empower.domain.people_model import from_us
from services.empower.store import forms_rows as rows
from services.kit import rls
from services.kit.sqldialect import POSTGRES, in_subtree
from services.kit.tenancy import ALL_TENANTS

_SCHEMA_LOCK = 0x454D_464F  # "EMFO"
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS forms (
        id            text COLLATE "C" NOT NULL,
        tenant        text COLLATE "C" NOT NULL,
        display_name  text NOT NULL,
        fields_json   text NOT NULL,
        create_us     bigint NOT NULL,
        PRIMARY KEY (tenant, id))""",
    """CREATE TABLE IF NOT EXISTS form_records (
        id            text COLLATE "C" PRIMARY KEY,
        tenant        text COLLATE "C" NOT NULL,
        form          text COLLATE "C" NOT NULL,
        form_id       text NOT NULL,
        values_json   text NOT NULL,
        grid_cell     text NOT NULL,
        author        text NOT NULL,
        request_id    text NOT NULL,
        create_us     bigint NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS form_records_request ON form_records (tenant, request_id)",
    "CREATE INDEX IF NOT EXISTS form_records_form ON form_records (form, id)",
    """CREATE TABLE IF NOT EXISTS report_templates (
        id             text COLLATE "C" NOT NULL,
        tenant         text COLLATE "C" NOT NULL,
        display_name   text NOT NULL,
        department     text NOT NULL,
        form           text NOT NULL,
        group_by_json  text NOT NULL,
        columns_json   text NOT NULL,
        schedule       text NOT NULL,
        create_us      bigint NOT NULL,
        PRIMARY KEY (tenant, id))""",
    *(
        f"ALTER TABLE report_templates ADD COLUMN IF NOT EXISTS {column} {definition}"
        for column, definition in rows.TEMPLATE_ADDED_COLUMNS
    ),
    """CREATE TABLE IF NOT EXISTS report_runs (
        id             text COLLATE "C" PRIMARY KEY,
        tenant         text COLLATE "C" NOT NULL,
        template_id    text COLLATE "C" NOT NULL,
        headings_json  text NOT NULL,
        rows_json      text NOT NULL,
        record_count   bigint NOT NULL,
        scheduled      integer NOT NULL,
        create_us      bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS report_runs_template "
    "ON report_runs (tenant, template_id, create_us)",
)
_TABLES = ["forms", "form_records", "report_templates", "report_runs"]


def _q(statement: str) -> str:
    return POSTGRES.render(statement)


class PostgresFormsStore:
    """FormsStore on PostgreSQL; build it with `await PostgresFormsStore.open(dsn)`."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=rls.use_app_role,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-empower-forms",
        )
        self.dsn = dsn
        self._opened = False

    @classmethod
    async def open(
        cls, dsn: str, *, min_connections: int = 1, max_connections: int = 10
    ) -> PostgresFormsStore:
        store = cls(dsn, min_connections=min_connections, max_connections=max_connections)
        connect = psycopg.AsyncConnection.connect(dsn, autocommit=True)
        async with await connect as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                await conn.execute(statement)
            await rls.install(conn, tenant_tables=_TABLES)
        await store.pool.open(wait=True)
        store._opened = True
        return store

    async def _fetch(
        self, subtree: str, query: str, params: Sequence[object]
    ) -> list[dict[str, Any]]:
        async with (
            rls.scoped_transaction(self.pool, subtree) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(_q(query), params)
            return await cur.fetchall()

    async def insert_form(self, subtree: str, form: Form) -> None:
        try:
            async with rls.scoped_transaction(self.pool, subtree) as conn:
                await conn.execute(_q(rows.INSERT_FORM), rows.form_values(form))
        except psycopg.errors.UniqueViolation:
            raise rows.taken("form", form.id, form.tenant) from None

    async def forms_at(self, subtree: str, tenants: Sequence[str], form_id: str = "") -> list[Form]:
        if not tenants:
            return []
        where, args = in_subtree(subtree)
        query = rows.FORMS_AT.format(marks=", ".join("?" * len(tenants))) + f" AND {where}"
        params: list[object] = [*tenants, *args]
        if form_id:
            query += " AND id = ?"
            params.append(form_id)
        return [
            rows.row_to_form(r) for r in await self._fetch(subtree, query + " ORDER BY id", params)
        ]

    async def insert_record(self, subtree: str, record: FormRecord) -> FormRecord:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            await conn.execute(_q(rows.INSERT_RECORD), rows.record_values(record))
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(_q(rows.RECORD_BY_REQUEST), (record.tenant, record.request_id))
                row = await cur.fetchone()
        assert row is not None
        return rows.row_to_record(row)

    async def list_records(
        self,
        subtree: str,
        form: str,
        limit: int,
        after_id: str | None,
        equals: Mapping[str, str] | None = None,
    ) -> list[FormRecord]:
        where, args = in_subtree(subtree)
        query = rows.LIST_RECORDS + where
        params: list[object] = [form, *args]
        for key, value in (equals or {}).items():
            query += " AND " + rows.value_equals(key, "postgres")
            params.extend(rows.value_equals_args(key, value, "postgres"))
        if after_id is not None:
            query += " AND id > ?"
            params.append(after_id)
        found = await self._fetch(subtree, query + " ORDER BY id LIMIT ?", [*params, limit])
        return [rows.row_to_record(r) for r in found]

    async def insert_template(self, subtree: str, template: ReportTemplate) -> None:
        try:
            async with rls.scoped_transaction(self.pool, subtree) as conn:
                await conn.execute(_q(rows.INSERT_TEMPLATE), rows.template_values(template))
        except psycopg.errors.UniqueViolation:
            raise rows.taken("report template", template.id, template.tenant) from None

    async def templates_at(
        self, subtree: str, tenants: Sequence[str], template_id: str = ""
    ) -> list[ReportTemplate]:
        if not tenants:
            return []
        where, args = in_subtree(subtree)
        query = rows.TEMPLATES_AT.format(marks=", ".join("?" * len(tenants))) + f" AND {where}"
        params: list[object] = [*tenants, *args]
        if template_id:
            query += " AND id = ?"
            params.append(template_id)
        found = await self._fetch(subtree, query + " ORDER BY id", params)
        return [rows.row_to_template(r) for r in found]

    async def scheduled_templates(self) -> list[tuple[ReportTemplate, datetime | None]]:
        found = await self._fetch(ALL_TENANTS, rows.SCHEDULED, ())
        return [
            (rows.row_to_template(r), from_us(r["last_us"]) if r["last_us"] else None)
            for r in found
        ]

    async def insert_run(self, subtree: str, run: ReportRun) -> None:
        async with rls.scoped_transaction(self.pool, subtree) as conn:
            await conn.execute(_q(rows.INSERT_RUN), rows.run_values(run))

    async def get_run(
        self, subtree: str, tenant: str, template_id: str, run_id: str
    ) -> ReportRun | None:
        where, args = in_subtree(subtree)
        found = await self._fetch(
            subtree, f"{rows.GET_RUN} AND {where}", [tenant, template_id, run_id, *args]
        )
        return rows.row_to_run(found[0]) if found else None

    async def list_runs(
        self, subtree: str, tenant: str, template_id: str, limit: int
    ) -> list[ReportRun]:
        found = await self._fetch(subtree, rows.LIST_RUNS, [tenant, template_id, limit])
        return [rows.row_to_run(r) for r in found]

    def close(self) -> asyncio.Task[None] | None:
        """Close the pool; await the returned task inside the loop that used the store."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._opened:
                raise RuntimeError(
                    "close the PostgreSQL forms store inside its event loop"
                ) from None
            return None
        return loop.create_task(self.pool.close())

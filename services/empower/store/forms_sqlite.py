"""The embedded forms store: forms, records, report templates and runs in one SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from services.empower.domain.forms_model import Form, FormRecord, ReportRun, ReportTemplate
from services.empower.domain.people_model import from_us
from services.empower.store import forms_rows as rows
from services.kit.sqldialect import SQLITE, in_subtree
from services.kit.sqlite import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS forms (
    id            TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    fields_json   TEXT NOT NULL,
    create_us     INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS form_records (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    form          TEXT NOT NULL,
    form_id       TEXT NOT NULL,
    values_json   TEXT NOT NULL,
    grid_cell     TEXT NOT NULL,
    author        TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    create_us     INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS form_records_request ON form_records (tenant, request_id);
CREATE INDEX IF NOT EXISTS form_records_form ON form_records (form, id);
CREATE TABLE IF NOT EXISTS report_templates (
    id             TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    department     TEXT NOT NULL,
    form           TEXT NOT NULL,
    group_by_json  TEXT NOT NULL,
    columns_json   TEXT NOT NULL,
    schedule       TEXT NOT NULL,
    create_us      INTEGER NOT NULL,
    source         TEXT NOT NULL DEFAULT '',
    period_days    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS report_runs (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    template_id    TEXT NOT NULL,
    headings_json  TEXT NOT NULL,
    rows_json      TEXT NOT NULL,
    record_count   INTEGER NOT NULL,
    scheduled      INTEGER NOT NULL,
    create_us      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS report_runs_template ON report_runs (tenant, template_id, create_us);
"""


def _create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    present = {r[1] for r in conn.execute("PRAGMA table_info(report_templates)")}
    for column, definition in rows.TEMPLATE_ADDED_COLUMNS:
        if column not in present:  # a file from before the column existed
            conn.execute(f"ALTER TABLE report_templates ADD COLUMN {column} {definition}")


def _q(statement: str) -> str:
    return SQLITE.render(statement)


class SqliteFormsStore:
    """FormsStore on one SQLite file (WAL, one writer thread)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.db = SqliteDatabase(path, synchronous=synchronous)
        self.db.run_sync(_create)

    async def insert_form(self, subtree: str, form: Form) -> None:
        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_q(rows.INSERT_FORM), rows.form_values(form))
            except sqlite3.IntegrityError:
                raise rows.taken("form", form.id, form.tenant) from None

        await self.db.run(run)

    async def forms_at(self, subtree: str, tenants: Sequence[str], form_id: str = "") -> list[Form]:
        if not tenants:
            return []
        where, args = in_subtree(subtree)
        query = rows.FORMS_AT.format(marks=SQLITE.marks(len(tenants))) + f" AND {where}"
        params: list[object] = [*tenants, *args]
        if form_id:
            query += " AND id = ?"
            params.append(form_id)

        def run(conn: sqlite3.Connection) -> list[Form]:
            return [rows.row_to_form(r) for r in conn.execute(_q(query + " ORDER BY id"), params)]

        return await self.db.run(run)

    async def insert_record(self, subtree: str, record: FormRecord) -> FormRecord:
        def run(conn: sqlite3.Connection) -> FormRecord:
            conn.execute(_q(rows.INSERT_RECORD), rows.record_values(record))
            row = conn.execute(
                _q(rows.RECORD_BY_REQUEST), (record.tenant, record.request_id)
            ).fetchone()
            return rows.row_to_record(row)

        return await self.db.run(run)

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
            query += " AND " + rows.value_equals(key, "sqlite")
            params.extend(rows.value_equals_args(key, value, "sqlite"))
        if after_id is not None:
            query += " AND id > ?"
            params.append(after_id)
        query = _q(query + " ORDER BY id LIMIT ?")

        def run(conn: sqlite3.Connection) -> list[FormRecord]:
            return [rows.row_to_record(r) for r in conn.execute(query, (*params, limit))]

        return await self.db.run(run)

    async def insert_template(self, subtree: str, template: ReportTemplate) -> None:
        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_q(rows.INSERT_TEMPLATE), rows.template_values(template))
            except sqlite3.IntegrityError:
                raise rows.taken("report template", template.id, template.tenant) from None

        await self.db.run(run)

    async def templates_at(
        self, subtree: str, tenants: Sequence[str], template_id: str = ""
    ) -> list[ReportTemplate]:
        if not tenants:
            return []
        where, args = in_subtree(subtree)
        query = rows.TEMPLATES_AT.format(marks=SQLITE.marks(len(tenants))) + f" AND {where}"
        params: list[object] = [*tenants, *args]
        if template_id:
            query += " AND id = ?"
            params.append(template_id)

        def run(conn: sqlite3.Connection) -> list[ReportTemplate]:
            return [
                rows.row_to_template(r) for r in conn.execute(_q(query + " ORDER BY id"), params)
            ]

        return await self.db.run(run)

    async def scheduled_templates(self) -> list[tuple[ReportTemplate, datetime | None]]:
        def run(conn: sqlite3.Connection) -> list[tuple[ReportTemplate, datetime | None]]:
            return [
                (rows.row_to_template(r), from_us(r["last_us"]) if r["last_us"] else None)
                for r in conn.execute(_q(rows.SCHEDULED))
            ]

        return await self.db.run(run)

    async def insert_run(self, subtree: str, run: ReportRun) -> None:
        await self.db.run(lambda conn: conn.execute(_q(rows.INSERT_RUN), rows.run_values(run)))

    async def get_run(
        self, subtree: str, tenant: str, template_id: str, run_id: str
    ) -> ReportRun | None:
        where, args = in_subtree(subtree)
        query = _q(f"{rows.GET_RUN} AND {where}")

        def run(conn: sqlite3.Connection) -> ReportRun | None:
            row = conn.execute(query, (tenant, template_id, run_id, *args)).fetchone()
            return rows.row_to_run(row) if row else None

        return await self.db.run(run)

    async def list_runs(
        self, subtree: str, tenant: str, template_id: str, limit: int
    ) -> list[ReportRun]:
        def run(conn: sqlite3.Connection) -> list[ReportRun]:
            found = conn.execute(_q(rows.LIST_RUNS), (tenant, template_id, limit))
            return [rows.row_to_run(r) for r in found]

        return await self.db.run(run)

    def close(self) -> None:
        self.db.close()

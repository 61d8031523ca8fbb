"""The forms tables as both stores write them: columns, statements, row mapping.

Fields, values, columns and run rows are JSON; times are microseconds since the epoch.
Statements use `?` placeholders, rendered per backend by `services.kit.sqldialect`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from services.empower.domain.forms_model import (
    GRID_CELL_FILTER,
    Aggregate,
    FieldType,
    Form,
    FormField,
    FormRecord,
    ReportColumn,
    ReportRun,
    ReportTemplate,
    Schedule,
    Source,
)
from services.empower.domain.people_model import from_us, to_us
from services.kit import tenancy
from services.kit.errors import AlreadyExists

FORM_COLUMNS = "id, tenant, display_name, fields_json, create_us"
RECORD_COLUMNS = "id, tenant, form, form_id, values_json, grid_cell, author, request_id, create_us"
TEMPLATE_COLUMNS = (
    "id, tenant, display_name, department, form, group_by_json, columns_json, schedule, "
    "create_us, source, period_days"
)
# Added after the first release: stores add them to an existing table at open.
TEMPLATE_ADDED_COLUMNS = (
    ("source", "TEXT NOT NULL DEFAULT ''"),
    ("period_days", "INTEGER NOT NULL DEFAULT 0"),
)
RUN_COLUMNS = (
    "id, tenant, template_id, headings_json, rows_json, record_count, scheduled, create_us"
)

INSERT_FORM = f"INSERT INTO forms ({FORM_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
FORMS_AT = f"SELECT {FORM_COLUMNS} FROM forms WHERE tenant IN ({{marks}})"
INSERT_RECORD = (
    f"INSERT INTO form_records ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tenant, request_id) DO NOTHING"
)
RECORD_BY_REQUEST = f"SELECT {RECORD_COLUMNS} FROM form_records WHERE tenant = ? AND request_id = ?"
LIST_RECORDS = f"SELECT {RECORD_COLUMNS} FROM form_records WHERE form = ? AND "


def value_equals(key: str, dialect: str) -> str:
    """A condition (dialect notation) that a record's value for `key` equals a parameter;
    the record's own grid cell for GRID_CELL_FILTER."""
    if key == GRID_CELL_FILTER:
        return "grid_cell = ?"
    if dialect == "sqlite":
        return "json_extract(values_json, ?) = ?"
    return "(values_json::jsonb ->> ?) = ?"


def value_equals_args(key: str, value: str, dialect: str) -> list[object]:
    if key == GRID_CELL_FILTER:
        return [value]
    return [f'$."{key}"' if dialect == "sqlite" else key, value]


INSERT_TEMPLATE = (
    f"INSERT INTO report_templates ({TEMPLATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
TEMPLATES_AT = f"SELECT {TEMPLATE_COLUMNS} FROM report_templates WHERE tenant IN ({{marks}})"
SCHEDULED = (
    f"SELECT {', '.join('t.' + c.strip() for c in TEMPLATE_COLUMNS.split(','))}, "
    "(SELECT MAX(r.create_us) FROM report_runs r WHERE r.tenant = t.tenant "
    "AND r.template_id = t.id AND r.scheduled = 1) AS last_us "
    "FROM report_templates t WHERE t.schedule <> ''"
)
INSERT_RUN = f"INSERT INTO report_runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
GET_RUN = f"SELECT {RUN_COLUMNS} FROM report_runs WHERE tenant = ? AND template_id = ? AND id = ?"
LIST_RUNS = (
    f"SELECT {RUN_COLUMNS} FROM report_runs WHERE tenant = ? AND template_id = ? "
    "ORDER BY create_us DESC, id DESC LIMIT ?"
)

Row = Mapping[str, Any]


def form_values(form: Form) -> tuple[object, ...]:
    fields = [{**asdict(f), "type": f.type.value, "options": list(f.options)} for f in form.fields]
    return (
        form.id,
        form.tenant,
        form.display_name,
        json.dumps(fields, ensure_ascii=False),
        to_us(form.create_time),
    )


def row_to_form(row: Row) -> Form:
    fields = tuple(
        FormField(
            key=f["key"],
            label=f["label"],
            type=FieldType(f["type"]),
            required=f["required"],
            options=tuple(f["options"]),
            minimum=f["minimum"],
            maximum=f["maximum"],
            max_length=f["max_length"],
        )
        for f in json.loads(row["fields_json"])
    )
    return Form(
        id=row["id"],
        tenant=row["tenant"],
        display_name=row["display_name"],
        fields=fields,
        create_time=from_us(row["create_us"]),
    )


def record_values(record: FormRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.tenant,
        record.form,
        record.form_id,
        json.dumps(dict(record.values), ensure_ascii=False, sort_keys=True),
        record.grid_cell,
        record.author,
        record.request_id,
        to_us(record.create_time),
    )


def row_to_record(row: Row) -> FormRecord:
    return FormRecord(
        id=row["id"],
        tenant=row["tenant"],
        form=row["form"],
        form_id=row["form_id"],
        values=json.loads(row["values_json"]),
        grid_cell=row["grid_cell"],
        author=row["author"],
        request_id=row["request_id"],
        create_time=from_us(row["create_us"]),
    )


def template_values(template: ReportTemplate) -> tuple[object, ...]:
    columns = [{**asdict(c), "aggregate": c.aggregate.value} for c in template.columns]
    return (
        template.id,
        template.tenant,
        template.display_name,
        template.department,
        template.form,
        json.dumps(list(template.group_by)),
        json.dumps(columns, ensure_ascii=False),
        template.schedule.value,
        to_us(template.create_time),
        template.source.value,
        template.period_days,
    )


def row_to_template(row: Row) -> ReportTemplate:
    return ReportTemplate(
        id=row["id"],
        tenant=row["tenant"],
        display_name=row["display_name"],
        department=row["department"],
        form=row["form"],
        group_by=tuple(json.loads(row["group_by_json"])),
        columns=tuple(
            ReportColumn(
                c["label"],
                Aggregate(c["aggregate"]),
                c["field"],
                c["equals"],
                c.get("weight_field", ""),
                tuple((str(k), float(w)) for k, w in c.get("weights", ())),
            )
            for c in json.loads(row["columns_json"])
        ),
        schedule=Schedule(row["schedule"]),
        create_time=from_us(row["create_us"]),
        source=Source(row["source"]),
        period_days=int(row["period_days"]),
    )


def run_values(run: ReportRun) -> tuple[object, ...]:
    return (
        run.id,
        run.tenant,
        run.template_id,
        json.dumps(list(run.headings), ensure_ascii=False),
        json.dumps([list(r) for r in run.rows], ensure_ascii=False),
        run.record_count,
        1 if run.scheduled else 0,
        to_us(run.create_time),
    )


def row_to_run(row: Row) -> ReportRun:
    return ReportRun(
        id=row["id"],
        tenant=row["tenant"],
        template_id=row["template_id"],
        headings=tuple(json.loads(row["headings_json"])),
        rows=tuple(tuple(r) for r in json.loads(row["rows_json"])),
        record_count=int(row["record_count"]),
        scheduled=bool(row["scheduled"]),
        create_time=from_us(row["create_us"]),
    )


def taken(kind: str, resource_id: str, tenant: str) -> AlreadyExists:
    return AlreadyExists(
        f"{kind} {resource_id!r} already exists in {tenancy.tenant_name(tenant)}",
        reason="ALREADY_EXISTS",
    )

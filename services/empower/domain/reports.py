"""Turning records into a department's table, and the table into CSV or XLSX.

Pure functions: the desk (`forms.FormsDesk`) fetches the records and keeps the run.
Every column of a run is computed from the same records with the same grouping, so
two departments' reports over one form agree wherever they count the same thing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from services.empower.domain.forms_model import (
    Aggregate,
    FieldType,
    Form,
    FormRecord,
    ReportColumn,
    ReportTemplate,
)

CHINA_TIME = timezone(timedelta(hours=8))
TOTAL = "Total"
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...),
# +cmd|..., @SUM(...)); tab and CR start one too after a quoted line break.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading quote before a formula start
    (OWASP's advice on CSV injection). Counts and sums are numbers and never escaped."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def group_value(record: FormRecord, key: str) -> str:
    if key == "tenant":
        return record.tenant
    if key == "grid_cell":
        return record.grid_cell
    if key == "month":
        return record.create_time.astimezone(CHINA_TIME).strftime("%Y-%m")
    return record.values.get(key, "")


def _count_if(column: ReportColumn, form: Form, record: FormRecord) -> bool:
    value = record.values.get(column.field, "")
    field = form.field(column.field)
    if column.equals or (field is not None and field.type is not FieldType.BOOLEAN):
        return value == column.equals
    return value == "true"


def _integers(column: ReportColumn, records: Sequence[FormRecord]) -> list[int]:
    return [int(r.values[column.field]) for r in records if r.values.get(column.field, "") != ""]


def _weighted_sum(column: ReportColumn, records: Sequence[FormRecord]) -> float:
    weights = dict(column.weights)
    return sum(
        int(r.values[column.field]) * weights.get(group_value(r, column.weight_field), 0.0)
        for r in records
        if r.values.get(column.field, "") != ""
    )


def _number(value: float) -> str:
    """A whole number as such, anything else to two decimals (money, hectares)."""
    rounded = round(value, 2)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.2f}"


def _cell(
    column: ReportColumn,
    form: Form,
    group_by: Sequence[str],
    key: tuple[str, ...],
    records: Sequence[FormRecord],
) -> str:
    if column.aggregate is Aggregate.GROUP:
        return key[group_by.index(column.field)]
    if column.aggregate is Aggregate.COUNT:
        return str(len(records))
    if column.aggregate is Aggregate.COUNT_IF:
        return str(sum(1 for r in records if _count_if(column, form, r)))
    if column.aggregate is Aggregate.SUM and column.weight_field:
        return _number(_weighted_sum(column, records))
    numbers = _integers(column, records)
    if column.aggregate is Aggregate.SUM:
        return str(sum(numbers))
    return str(max(numbers)) if numbers else ""


def compute(
    template: ReportTemplate, form: Form, records: Sequence[FormRecord]
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Headings and rows: one row per group (sorted), then a total row when grouped."""
    groups: dict[tuple[str, ...], list[FormRecord]] = {}
    for record in records:
        key = tuple(group_value(record, k) for k in template.group_by)
        groups.setdefault(key, []).append(record)
    if not template.group_by:
        groups.setdefault((), [])
    rows = [
        tuple(_cell(c, form, template.group_by, key, members) for c in template.columns)
        for key, members in sorted(groups.items())
    ]
    if template.group_by:
        total = tuple(
            ("" if i else TOTAL)
            if c.aggregate is Aggregate.GROUP
            else _cell(c, form, template.group_by, (), list(records))
            for i, c in enumerate(template.columns)
        )
        rows.append(total)
    return tuple(c.label for c in template.columns), tuple(rows)


def _typed(column: ReportColumn, cell: str) -> str | int | float:
    if column.aggregate is Aggregate.GROUP or cell == "":
        return inert(cell)
    return float(cell) if "." in cell else int(cell)


def to_csv(
    columns: Sequence[ReportColumn], headings: Sequence[str], rows: Sequence[Sequence[str]]
) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read Chinese text right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([inert(h) for h in headings])
    for row in rows:
        writer.writerow([_typed(c, cell) for c, cell in zip(columns, row, strict=True)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(
    title: str,
    columns: Sequence[ReportColumn],
    headings: Sequence[str],
    rows: Sequence[Sequence[str]],
    created: datetime,
) -> bytes:
    """One sheet, numbers as numbers and text escaped (openpyxl writes "=..." as a formula)."""
    from openpyxl import Workbook  # type: ignore[import-untyped]

    book = Workbook(write_only=True)
    book.properties.created = created.replace(tzinfo=None)
    book.properties.modified = created.replace(tzinfo=None)
    sheet = book.create_sheet(title=_sheet_title(title))
    sheet.append([inert(h) for h in headings])
    for row in rows:
        sheet.append([_typed(c, cell) for c, cell in zip(columns, row, strict=True)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(title: str) -> str:
    cleaned = "".join(ch for ch in title if ch not in "[]:*?/\\").strip()
    return (cleaned or "Report")[:31]

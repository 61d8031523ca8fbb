"""Fill once, report many: forms, their records, report templates and report runs.

A form is defined once at some node (a town defines the fire-safety inspection) and
is inherited by every node below it, so grid workers in each village fill in the same
form; records belong to the village where they were entered. A report template names
a form and says how to group and count its records into the table one department
asks for; a run is that table computed at one moment and kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.kit import tenancy

FORMS = "forms"
RECORDS = "records"
TEMPLATES = "reportTemplates"
RUNS = "runs"
# Group-by keys every record has besides its form's fields.
RECORD_KEYS = ("tenant", "grid_cell", "month")


class FieldType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    CHOICE = "choice"
    LOCATION = "location"


class Aggregate(StrEnum):
    GROUP = "group"
    COUNT = "count"
    SUM = "sum"
    COUNT_IF = "count_if"
    MAX = "max"


class Source(StrEnum):
    """Where a report's rows come from: a form's records, or the loop's events and tasks."""

    FORM_RECORDS = ""
    EVENTS = "events"
    TASKS = "tasks"


class Schedule(StrEnum):
    NONE = ""
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True)
class FormField:
    key: str
    label: str
    type: FieldType
    required: bool = False
    options: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = 500


@dataclass(frozen=True)
class Form:
    id: str
    tenant: str
    display_name: str
    fields: tuple[FormField, ...]
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{FORMS}/{self.id}"

    def field(self, key: str) -> FormField | None:
        return next((f for f in self.fields if f.key == key), None)


@dataclass(frozen=True)
class FormRecord:
    id: str
    tenant: str
    form: str  # the form's resource name
    form_id: str
    values: Mapping[str, str]
    grid_cell: str
    author: str
    request_id: str
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{FORMS}/{self.form_id}/{RECORDS}/{self.id}"


# The key a record filter uses for the record's own grid cell (no form field key
# starts with @).
GRID_CELL_FILTER = "@grid_cell"


@dataclass(frozen=True)
class ReportColumn:
    label: str
    aggregate: Aggregate
    field: str = ""
    equals: str = ""
    # A weighted SUM: each record's value times the weight of its `weight_field` value.
    weight_field: str = ""
    weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ReportTemplate:
    id: str
    tenant: str
    display_name: str
    department: str
    form: str  # the form's resource name
    group_by: tuple[str, ...]
    columns: tuple[ReportColumn, ...]
    schedule: Schedule
    create_time: datetime
    source: Source = Source.FORM_RECORDS
    period_days: int = 0  # only rows created this many days before a run; 0: all

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{TEMPLATES}/{self.id}"


@dataclass(frozen=True)
class ReportRun:
    id: str
    tenant: str
    template_id: str
    headings: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    record_count: int
    scheduled: bool
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{TEMPLATES}/{self.template_id}/{RUNS}/{self.id}"

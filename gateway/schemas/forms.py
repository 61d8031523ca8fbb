"""JSON shapes of fill-once forms, their records, report templates and report runs.

The service checks every record and every template against its form, and every bound
(400 naming the field); these shapes refuse unknown fields and wrong types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.contract import limited
from grassroots.empower.v1 import forms_service_pb2 as pb

FieldTypeName = Literal["text", "integer", "boolean", "date", "choice", "location"]
AggregateName = Literal["group", "count", "sum", "count_if", "max"]
ScheduleName = Literal["daily", "weekly", "monthly"]
SourceName = Literal["form_records", "events", "tasks"]


class FormFieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(..., examples=["exits_blocked"])
    label: str
    type: FieldTypeName
    required: bool = False
    options: list[str] = Field(default_factory=list)
    minimum: int | None = limited(pb.FormField, "minimum", None)
    maximum: int | None = limited(pb.FormField, "maximum", None)
    max_length: int = limited(
        pb.FormField, "max_length", 0, description="longest text; 0 means 500"
    )


class FormFieldOut(BaseModel):
    key: str
    label: str
    type: FieldTypeName
    required: bool
    options: list[str]
    minimum: int | None
    maximum: int | None
    max_length: int


class FormCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    display_name: str
    fields: list[FormFieldIn]


class FormOut(BaseModel):
    id: str
    name: str = Field(description="where the form is defined (it applies below that node too)")
    display_name: str
    fields: list[FormFieldOut]
    create_time: datetime


class FormList(BaseModel):
    forms: list[FormOut]


class FormRecordCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    values: dict[str, str] = Field(..., description="values by field key, as text")
    grid_cell: str = ""
    request_id: str


class FormRecordOut(BaseModel):
    id: str
    name: str
    tenant: str
    values: dict[str, str]
    grid_cell: str
    author: str
    create_time: datetime


class FormRecordList(BaseModel):
    records: list[FormRecordOut]
    next_page_token: str


class ReportColumnIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    label: str
    aggregate: AggregateName
    field: str = ""
    equals: str = ""
    weight_field: str = limited(
        pb.ReportColumn,
        "weight_field",
        "",
        description="SUM only: the field whose value picks each record's weight",
    )
    weights: dict[str, float] = Field(
        {},
        description="SUM only: the weight of each value of weight_field (a published "
        "coefficient); at most 100",
    )


class ReportColumnOut(BaseModel):
    label: str
    aggregate: AggregateName
    field: str
    equals: str
    weight_field: str = ""
    weights: dict[str, float] = {}


class ReportTemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    display_name: str
    department: str
    form: str = Field(
        "",
        examples=["tenants/sh-jiading-anting/forms/fire-safety-inspection"],
        description="the form whose records it reads; empty when the source is events or tasks",
    )
    group_by: list[str] = Field(
        default_factory=list,
        description="form fields (or the source's fields), or tenant, grid_cell, month",
    )
    columns: list[ReportColumnIn]
    schedule: ScheduleName | None = None
    source: SourceName = Field(
        "form_records",
        description="form_records (the form's), events (events service) or tasks (command)",
    )
    period_days: int = limited(
        pb.ReportTemplate,
        "period_days",
        0,
        description="only rows created this many days before a run; 0: all",
    )


class ReportTemplateOut(BaseModel):
    id: str
    name: str
    display_name: str
    department: str
    form: str
    group_by: list[str]
    columns: list[ReportColumnOut]
    schedule: ScheduleName | None
    create_time: datetime
    source: SourceName
    period_days: int


class ReportTemplateList(BaseModel):
    report_templates: list[ReportTemplateOut]


class ReportRunOut(BaseModel):
    id: str
    name: str
    headings: list[str]
    rows: list[list[str]]
    record_count: int
    scheduled: bool
    create_time: datetime


class ReportRunList(BaseModel):
    report_runs: list[ReportRunOut]

"""JSON shapes of fill-once forms, their records, report templates and report runs.

The service checks every field against its form and every template against its form;
these shapes bound sizes and refuse unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

FieldTypeName = Literal["text", "integer", "boolean", "date", "choice", "location"]
AggregateName = Literal["group", "count", "sum", "count_if", "max"]
ScheduleName = Literal["daily", "weekly", "monthly"]
ResourceId = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9-]*$")]
Short = Annotated[str, Field(max_length=100)]


class FormFieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(..., min_length=1, max_length=40, examples=["exits_blocked"])
    label: str = Field(..., min_length=1, max_length=100)
    type: FieldTypeName
    required: bool = False
    options: list[Short] = Field(default_factory=list, max_length=50)
    minimum: int | None = Field(None, ge=-(2**53), le=2**53)
    maximum: int | None = Field(None, ge=-(2**53), le=2**53)
    max_length: int = Field(0, ge=0, le=5000, description="longest text; 0 means 500")


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

    id: ResourceId
    display_name: str = Field(..., min_length=1, max_length=100)
    fields: list[FormFieldIn] = Field(..., min_length=1, max_length=100)


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

    values: dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=5000)]] = (
        Field(..., max_length=100, description="values by field key, as text")
    )
    grid_cell: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    request_id: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


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

    label: str = Field(..., min_length=1, max_length=100)
    aggregate: AggregateName
    field: str = Field("", max_length=40)
    equals: str = Field("", max_length=100)


class ReportColumnOut(BaseModel):
    label: str
    aggregate: AggregateName
    field: str
    equals: str


class ReportTemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: ResourceId
    display_name: str = Field(..., min_length=1, max_length=100)
    department: str = Field(..., min_length=1, max_length=100)
    form: str = Field(
        ..., max_length=300, examples=["tenants/sh-jiading-anting/forms/fire-safety-inspection"]
    )
    group_by: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=5, description="form fields, or tenant, grid_cell, month"
    )
    columns: list[ReportColumnIn] = Field(..., min_length=1, max_length=50)
    schedule: ScheduleName | None = None


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

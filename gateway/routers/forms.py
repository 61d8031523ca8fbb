"""REST for fill-once forms and the reports they feed.

Forms are inherited down the tree: a village reads and fills in the town's form at its
own path (`/v1/tenants/{village}/forms/{form}`). Reading and defining forms and
entering records need `forms:write`; reports and their downloads need `reports:read`.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, Security

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import TenantId, parent, rest_path
from gateway.schemas.contract import query
from gateway.schemas.forms import (
    FormCreate,
    FormFieldOut,
    FormList,
    FormOut,
    FormRecordCreate,
    FormRecordList,
    FormRecordOut,
    ReportColumnOut,
    ReportRunList,
    ReportRunOut,
    ReportTemplateCreate,
    ReportTemplateList,
    ReportTemplateOut,
)
from grassroots.empower.v1 import forms_service_pb2 as pb
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.FormsService"
router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["forms and reports"])
Who = Annotated[Principal, Security(access("empower"))]
FormId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="form id")]
TemplateId = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="report template id")
]
RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="report run id")]

_TYPES = {
    "text": pb.FormField.TYPE_TEXT,
    "integer": pb.FormField.TYPE_INTEGER,
    "boolean": pb.FormField.TYPE_BOOLEAN,
    "date": pb.FormField.TYPE_DATE,
    "choice": pb.FormField.TYPE_CHOICE,
    "location": pb.FormField.TYPE_LOCATION,
}
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}
_SOURCES = {
    "form_records": pb.ReportTemplate.SOURCE_FORM_RECORDS,
    "events": pb.ReportTemplate.SOURCE_EVENTS,
    "tasks": pb.ReportTemplate.SOURCE_TASKS,
}
_SOURCE_NAMES = {v: k for k, v in _SOURCES.items()}
_AGGREGATES = {
    "group": pb.ReportColumn.AGGREGATE_GROUP,
    "count": pb.ReportColumn.AGGREGATE_COUNT,
    "sum": pb.ReportColumn.AGGREGATE_SUM,
    "count_if": pb.ReportColumn.AGGREGATE_COUNT_IF,
    "max": pb.ReportColumn.AGGREGATE_MAX,
}
_AGGREGATE_NAMES = {v: k for k, v in _AGGREGATES.items()}
_SCHEDULES = {
    "daily": pb.ReportTemplate.SCHEDULE_DAILY,
    "weekly": pb.ReportTemplate.SCHEDULE_WEEKLY,
    "monthly": pb.ReportTemplate.SCHEDULE_MONTHLY,
}
_SCHEDULE_NAMES = {v: k for k, v in _SCHEDULES.items()}
_FORMATS = {
    "csv": pb.ExportReportRunRequest.FORMAT_CSV,
    "xlsx": pb.ExportReportRunRequest.FORMAT_XLSX,
}


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def form_out(form: pb.Form) -> FormOut:
    return FormOut(
        id=_id(form.name),
        name=form.name,
        display_name=form.display_name,
        fields=[
            FormFieldOut(
                key=f.key,
                label=f.label,
                type=_TYPE_NAMES[f.type],  # type: ignore[arg-type]
                required=f.required,
                options=list(f.options),
                minimum=f.minimum if f.HasField("minimum") else None,
                maximum=f.maximum if f.HasField("maximum") else None,
                max_length=f.max_length,
            )
            for f in form.fields
        ],
        create_time=form.create_time.ToDatetime(tzinfo=UTC),
    )


def record_out(record: pb.FormRecord) -> FormRecordOut:
    return FormRecordOut(
        id=_id(record.name),
        name=record.name,
        tenant=record.tenant,
        values=dict(record.values),
        grid_cell=record.grid_cell,
        author=record.author,
        create_time=record.create_time.ToDatetime(tzinfo=UTC),
    )


def template_out(template: pb.ReportTemplate) -> ReportTemplateOut:
    return ReportTemplateOut(
        id=_id(template.name),
        name=template.name,
        display_name=template.display_name,
        department=template.department,
        form=template.form,
        group_by=list(template.group_by),
        columns=[
            ReportColumnOut(
                label=c.label,
                aggregate=_AGGREGATE_NAMES[c.aggregate],  # type: ignore[arg-type]
                field=c.field,
                equals=c.equals,
                weight_field=c.weight_field,
                weights=dict(c.weights),
            )
            for c in template.columns
        ],
        schedule=_SCHEDULE_NAMES.get(template.schedule),  # type: ignore[arg-type]
        create_time=template.create_time.ToDatetime(tzinfo=UTC),
        source=_SOURCE_NAMES.get(template.source, "form_records"),  # type: ignore[arg-type]
        period_days=template.period_days,
    )


def run_out(run: pb.ReportRun) -> ReportRunOut:
    return ReportRunOut(
        id=_id(run.name),
        name=run.name,
        headings=list(run.headings),
        rows=[list(r.cells) for r in run.rows],
        record_count=run.record_count,
        scheduled=run.scheduled,
        create_time=run.create_time.ToDatetime(tzinfo=UTC),
    )


def _form_name(tenant: str, form: str) -> str:
    return f"{parent(tenant)}/forms/{form}"


def _template_name(tenant: str, template: str) -> str:
    return f"{parent(tenant)}/reportTemplates/{template}"


@router.post("/forms", status_code=201, response_model=FormOut, summary="Define a form")
@calls(SERVICE, "CreateForm")
async def create_form(
    tenant: TenantId, body: FormCreate, request: Request, response: Response, who: Who
) -> FormOut:
    """Fields with their types, validation and options; nodes below fill it in too."""
    message = pb.Form(
        display_name=body.display_name,
        fields=[
            pb.FormField(
                key=f.key,
                label=f.label,
                type=_TYPES[f.type],
                required=f.required,
                options=f.options,
                minimum=f.minimum,
                maximum=f.maximum,
                max_length=f.max_length,
            )
            for f in body.fields
        ],
    )
    created = await call(
        request.app.state.upstreams.forms.CreateForm(
            pb.CreateFormRequest(parent=parent(tenant), form=message, form_id=body.id),
            metadata=call_metadata(who),
        )
    )
    response.headers["Location"] = rest_path(created.name)
    return form_out(created)


@router.get("/forms", response_model=FormList, summary="Forms that apply here")
@calls(SERVICE, "ListForms")
async def list_forms(tenant: TenantId, request: Request, who: Who) -> FormList:
    """The node's own forms and those defined above it (the nearest of each id)."""
    listed = await call(
        request.app.state.upstreams.forms.ListForms(
            pb.ListFormsRequest(parent=parent(tenant)), metadata=call_metadata(who)
        )
    )
    return FormList(forms=[form_out(f) for f in listed.forms])


@router.get("/forms/{form}", response_model=FormOut, summary="Get a form")
@calls(SERVICE, "GetForm")
async def get_form(tenant: TenantId, form: FormId, request: Request, who: Who) -> FormOut:
    found = await call(
        request.app.state.upstreams.forms.GetForm(
            pb.GetFormRequest(name=_form_name(tenant, form)), metadata=call_metadata(who)
        )
    )
    return form_out(found)


@router.post(
    "/forms/{form}/records",
    status_code=201,
    response_model=FormRecordOut,
    summary="Enter a record once",
)
@calls(SERVICE, "CreateFormRecord")
async def create_form_record(
    tenant: TenantId,
    form: FormId,
    body: FormRecordCreate,
    request: Request,
    response: Response,
    who: Who,
) -> FormRecordOut:
    """Checked against the form's fields (400 naming `record.values.<key>`); the
    request_id makes a retry answer the first record."""
    created = await call(
        request.app.state.upstreams.forms.CreateFormRecord(
            pb.CreateFormRecordRequest(
                parent=_form_name(tenant, form),
                record=pb.FormRecord(values=body.values, grid_cell=body.grid_cell),
                request_id=body.request_id,
            ),
            metadata=call_metadata(who),
        )
    )
    response.headers["Location"] = rest_path(created.name)
    return record_out(created)


@router.get("/forms/{form}/records", response_model=FormRecordList, summary="List records")
@calls(SERVICE, "ListFormRecords")
async def list_form_records(
    tenant: TenantId,
    form: FormId,
    request: Request,
    who: Who,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str, Query(max_length=512)] = "",
    filter: Annotated[
        str,
        query(
            pb.ListFormRecordsRequest,
            "filter",
            description='values.<field> = "..." and grid_cell = "...", joined by AND',
        ),
    ] = "",
) -> FormRecordList:
    """The form's records in the node's subtree, oldest first; `filter` keeps those
    with the given values (`values.batch = "XM-2026-0412"` traces one batch)."""
    listed = await call(
        request.app.state.upstreams.forms.ListFormRecords(
            pb.ListFormRecordsRequest(
                parent=_form_name(tenant, form),
                page_size=page_size,
                page_token=page_token,
                filter=filter,
            ),
            metadata=call_metadata(who),
        )
    )
    return FormRecordList(
        records=[record_out(r) for r in listed.records], next_page_token=listed.next_page_token
    )


@router.post(
    "/reportTemplates",
    status_code=201,
    response_model=ReportTemplateOut,
    summary="Define a department's report",
)
@calls(SERVICE, "CreateReportTemplate")
async def create_report_template(
    tenant: TenantId, body: ReportTemplateCreate, request: Request, response: Response, who: Who
) -> ReportTemplateOut:
    """Every field it names must exist in the form (400 naming the column otherwise)."""
    message = pb.ReportTemplate(
        display_name=body.display_name,
        department=body.department,
        form=body.form,
        group_by=body.group_by,
        columns=[
            pb.ReportColumn(
                label=c.label,
                aggregate=_AGGREGATES[c.aggregate],
                field=c.field,
                equals=c.equals,
                weight_field=c.weight_field,
                weights=c.weights,
            )
            for c in body.columns
        ],
        schedule=_SCHEDULES[body.schedule] if body.schedule else 0,  # type: ignore[arg-type]
        source=_SOURCES[body.source],
        period_days=body.period_days,
    )
    created = await call(
        request.app.state.upstreams.forms.CreateReportTemplate(
            pb.CreateReportTemplateRequest(
                parent=parent(tenant), report_template=message, report_template_id=body.id
            ),
            metadata=call_metadata(who),
        )
    )
    response.headers["Location"] = rest_path(created.name)
    return template_out(created)


@router.get("/reportTemplates", response_model=ReportTemplateList, summary="List reports")
@calls(SERVICE, "ListReportTemplates")
async def list_report_templates(tenant: TenantId, request: Request, who: Who) -> ReportTemplateList:
    listed = await call(
        request.app.state.upstreams.forms.ListReportTemplates(
            pb.ListReportTemplatesRequest(parent=parent(tenant)), metadata=call_metadata(who)
        )
    )
    return ReportTemplateList(report_templates=[template_out(t) for t in listed.report_templates])


@router.get(
    "/reportTemplates/{report_template}",
    response_model=ReportTemplateOut,
    summary="Get a report template",
)
@calls(SERVICE, "GetReportTemplate")
async def get_report_template(
    tenant: TenantId, report_template: TemplateId, request: Request, who: Who
) -> ReportTemplateOut:
    found = await call(
        request.app.state.upstreams.forms.GetReportTemplate(
            pb.GetReportTemplateRequest(name=_template_name(tenant, report_template)),
            metadata=call_metadata(who),
        )
    )
    return template_out(found)


@router.post(
    "/reportTemplates/{report_template}:run",
    status_code=201,
    response_model=ReportRunOut,
    summary="Run a report now",
)
@calls(SERVICE, "RunReport")
async def run_report(
    tenant: TenantId, report_template: TemplateId, request: Request, response: Response, who: Who
) -> ReportRunOut:
    """Computes the table over the template's subtree and keeps it as a run."""
    run = await call(
        request.app.state.upstreams.forms.RunReport(
            pb.RunReportRequest(name=_template_name(tenant, report_template)),
            metadata=call_metadata(who),
        )
    )
    response.headers["Location"] = rest_path(run.name)
    return run_out(run)


@router.get(
    "/reportTemplates/{report_template}/runs",
    response_model=ReportRunList,
    summary="A report's runs",
)
@calls(SERVICE, "ListReportRuns")
async def list_report_runs(
    tenant: TenantId,
    report_template: TemplateId,
    request: Request,
    who: Who,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ReportRunList:
    """Newest first, scheduled and on demand."""
    listed = await call(
        request.app.state.upstreams.forms.ListReportRuns(
            pb.ListReportRunsRequest(
                parent=_template_name(tenant, report_template), page_size=page_size
            ),
            metadata=call_metadata(who),
        )
    )
    return ReportRunList(report_runs=[run_out(r) for r in listed.report_runs])


@router.get(
    "/reportTemplates/{report_template}/runs/{run}:export",
    response_class=Response,
    responses={
        200: {
            "description": "the run as a file",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
    summary="Download a report run as CSV or XLSX",
)
@calls(SERVICE, "ExportReportRun")
async def export_report_run(
    tenant: TenantId,
    report_template: TemplateId,
    run: RunId,
    request: Request,
    who: Who,
    format: Annotated[Literal["csv", "xlsx"], Query(description="file format")] = "csv",
) -> Response:
    """Cells that begin with = + - @ arrive as text, never as formulas."""
    exported = await call(
        request.app.state.upstreams.forms.ExportReportRun(
            pb.ExportReportRunRequest(
                name=f"{_template_name(tenant, report_template)}/runs/{run}",
                format=_FORMATS[format],
            ),
            metadata=call_metadata(who),
        )
    )
    return Response(
        content=exported.content,
        media_type=exported.content_type,
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
    )


# Declared after `:export`: routes match in order, and `{run}` would take "id:export".
@router.get(
    "/reportTemplates/{report_template}/runs/{run}",
    response_model=ReportRunOut,
    summary="Get a report run",
)
@calls(SERVICE, "GetReportRun")
async def get_report_run(
    tenant: TenantId, report_template: TemplateId, run: RunId, request: Request, who: Who
) -> ReportRunOut:
    found = await call(
        request.app.state.upstreams.forms.GetReportRun(
            pb.GetReportRunRequest(name=f"{_template_name(tenant, report_template)}/runs/{run}"),
            metadata=call_metadata(who),
        )
    )
    return run_out(found)

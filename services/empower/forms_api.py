"""gRPC adapter of fill-once forms and reports: messages in, desk calls, messages out.

Validation, inheritance of forms down the tree, aggregation and the CSV/XLSX escape
live in `services.empower.domain.forms` and `.reports`.
"""

from __future__ import annotations

from grassroots.empower.v1 import forms_service_pb2 as pb
from grassroots.empower.v1 import forms_service_pb2_grpc as pb_grpc
from services.empower.domain.forms import FormsDesk, parse_form_name
from services.empower.domain.forms_model import (
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
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp

_TYPES = {
    FieldType.TEXT: pb.FormField.TYPE_TEXT,
    FieldType.INTEGER: pb.FormField.TYPE_INTEGER,
    FieldType.BOOLEAN: pb.FormField.TYPE_BOOLEAN,
    FieldType.DATE: pb.FormField.TYPE_DATE,
    FieldType.CHOICE: pb.FormField.TYPE_CHOICE,
    FieldType.LOCATION: pb.FormField.TYPE_LOCATION,
}
_TYPES_BACK = {v: k for k, v in _TYPES.items()}
_AGGREGATES = {
    Aggregate.GROUP: pb.ReportColumn.AGGREGATE_GROUP,
    Aggregate.COUNT: pb.ReportColumn.AGGREGATE_COUNT,
    Aggregate.SUM: pb.ReportColumn.AGGREGATE_SUM,
    Aggregate.COUNT_IF: pb.ReportColumn.AGGREGATE_COUNT_IF,
    Aggregate.MAX: pb.ReportColumn.AGGREGATE_MAX,
}
_AGGREGATES_BACK = {v: k for k, v in _AGGREGATES.items()}
_SCHEDULES = {
    Schedule.NONE: pb.ReportTemplate.SCHEDULE_UNSPECIFIED,
    Schedule.DAILY: pb.ReportTemplate.SCHEDULE_DAILY,
    Schedule.WEEKLY: pb.ReportTemplate.SCHEDULE_WEEKLY,
    Schedule.MONTHLY: pb.ReportTemplate.SCHEDULE_MONTHLY,
}
_SCHEDULES_BACK = {v: k for k, v in _SCHEDULES.items()}
_SOURCES = {
    Source.FORM_RECORDS: pb.ReportTemplate.SOURCE_FORM_RECORDS,
    Source.EVENTS: pb.ReportTemplate.SOURCE_EVENTS,
    Source.TASKS: pb.ReportTemplate.SOURCE_TASKS,
}
_SOURCES_BACK = {v: k for k, v in _SOURCES.items()} | {
    pb.ReportTemplate.SOURCE_UNSPECIFIED: Source.FORM_RECORDS
}
_FORMATS = {
    pb.ExportReportRunRequest.FORMAT_UNSPECIFIED: "csv",
    pb.ExportReportRunRequest.FORMAT_CSV: "csv",
    pb.ExportReportRunRequest.FORMAT_XLSX: "xlsx",
}


def parse_nested(name: str, collection: str, child: str, field: str) -> tuple[str, str, str]:
    """`tenants/{t}/{collection}/{a}/{child}/{b}` -> (tenant path, a, b)."""
    parts = name.split("/")
    if (
        len(parts) != 6
        or parts[0] != "tenants"
        or parts[2] != collection
        or parts[4] != child
        or not parts[3]
        or not parts[5]
    ):
        raise InvalidArgument.field(
            field, f"{name[:200]!r} is not 'tenants/{{tenant}}/{collection}/{{id}}/{child}/{{id}}'"
        )
    path = tenancy.id_to_path(parts[1])
    if not tenancy.is_valid_path(path):
        raise InvalidArgument.field(field, f"{parts[1][:60]!r} is not a tenant id")
    return path, parts[3], parts[5]


def _template_name(name: str, field: str = "name") -> tuple[str, str]:
    tenant, template_id = tenancy.parse_child_name(name, "reportTemplates", field)
    if tenant is None:
        raise InvalidArgument.field(field, "name the template's tenant, not '-'")
    return tenant, template_id


def form_to_proto(form: Form) -> pb.Form:
    return pb.Form(
        name=form.resource_name,
        display_name=form.display_name,
        fields=[
            pb.FormField(
                key=f.key,
                label=f.label,
                type=_TYPES[f.type],
                required=f.required,
                options=list(f.options),
                minimum=f.minimum,
                maximum=f.maximum,
                max_length=f.max_length,
            )
            for f in form.fields
        ],
        create_time=to_timestamp(form.create_time),
    )


def field_of(message: pb.FormField, index: int) -> FormField:
    kind = _TYPES_BACK.get(message.type)
    if kind is None:
        raise InvalidArgument.field(f"form.fields[{index}].type", "is required")
    return FormField(
        key=message.key,
        label=message.label,
        type=kind,
        required=message.required,
        options=tuple(message.options),
        minimum=message.minimum if message.HasField("minimum") else None,
        maximum=message.maximum if message.HasField("maximum") else None,
        max_length=message.max_length,
    )


def record_to_proto(record: FormRecord) -> pb.FormRecord:
    return pb.FormRecord(
        name=record.resource_name,
        tenant=record.tenant,
        values=dict(record.values),
        grid_cell=record.grid_cell,
        author=record.author,
        create_time=to_timestamp(record.create_time),
    )


def template_to_proto(template: ReportTemplate) -> pb.ReportTemplate:
    return pb.ReportTemplate(
        name=template.resource_name,
        display_name=template.display_name,
        department=template.department,
        form=template.form,
        group_by=list(template.group_by),
        columns=[
            pb.ReportColumn(
                label=c.label,
                aggregate=_AGGREGATES[c.aggregate],
                field=c.field,
                equals=c.equals,
                weight_field=c.weight_field,
                weights=dict(c.weights),
            )
            for c in template.columns
        ],
        schedule=_SCHEDULES[template.schedule],
        create_time=to_timestamp(template.create_time),
        source=_SOURCES[template.source],
        period_days=template.period_days,
    )


def column_of(message: pb.ReportColumn, index: int) -> ReportColumn:
    aggregate = _AGGREGATES_BACK.get(message.aggregate)
    if aggregate is None:
        raise InvalidArgument.field(f"report_template.columns[{index}].aggregate", "is required")
    return ReportColumn(
        message.label,
        aggregate,
        message.field,
        message.equals,
        message.weight_field,
        tuple(sorted(message.weights.items())),
    )


def run_to_proto(run: ReportRun) -> pb.ReportRun:
    return pb.ReportRun(
        name=run.resource_name,
        headings=list(run.headings),
        rows=[pb.ReportRow(cells=list(r)) for r in run.rows],
        record_count=run.record_count,
        scheduled=run.scheduled,
        create_time=to_timestamp(run.create_time),
    )


class FormsServicer(pb_grpc.FormsServiceServicer):
    def __init__(self, desk: FormsDesk) -> None:
        self.desk = desk

    async def CreateForm(self, request: pb.CreateFormRequest, context: object) -> pb.Form:
        fields = [field_of(f, i) for i, f in enumerate(request.form.fields)]
        form = await self.desk.create_form(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.form_id,
            request.form.display_name,
            fields,
        )
        return form_to_proto(form)

    async def GetForm(self, request: pb.GetFormRequest, context: object) -> pb.Form:
        tenant, form_id = parse_form_name(request.name, "name")
        return form_to_proto(await self.desk.get_form(require_principal(), tenant, form_id))

    async def ListForms(
        self, request: pb.ListFormsRequest, context: object
    ) -> pb.ListFormsResponse:
        forms = await self.desk.list_forms(
            require_principal(), tenancy.parse_parent(request.parent)
        )
        return pb.ListFormsResponse(forms=[form_to_proto(f) for f in forms])

    async def CreateFormRecord(
        self, request: pb.CreateFormRecordRequest, context: object
    ) -> pb.FormRecord:
        tenant, form_id = parse_form_name(request.parent, "parent")
        record = await self.desk.create_record(
            require_principal(),
            tenant,
            form_id,
            dict(request.record.values),
            request.record.grid_cell,
            request.request_id,
        )
        return record_to_proto(record)

    async def ListFormRecords(
        self, request: pb.ListFormRecordsRequest, context: object
    ) -> pb.ListFormRecordsResponse:
        tenant, form_id = parse_form_name(request.parent, "parent")
        records, token = await self.desk.list_records(
            require_principal(),
            tenant,
            form_id,
            request.page_size,
            request.page_token,
            request.filter,
        )
        return pb.ListFormRecordsResponse(
            records=[record_to_proto(r) for r in records], next_page_token=token
        )

    async def CreateReportTemplate(
        self, request: pb.CreateReportTemplateRequest, context: object
    ) -> pb.ReportTemplate:
        given = request.report_template
        schedule = _SCHEDULES_BACK.get(given.schedule)
        if schedule is None:
            raise InvalidArgument.field("report_template.schedule", "is not a known schedule")
        source = _SOURCES_BACK.get(given.source)
        if source is None:
            raise InvalidArgument.field("report_template.source", "is not a known source")
        template = await self.desk.create_template(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.report_template_id,
            display_name=given.display_name,
            department=given.department,
            form_name=given.form,
            group_by=list(given.group_by),
            columns=[column_of(c, i) for i, c in enumerate(given.columns)],
            schedule=schedule,
            source=source,
            period_days=given.period_days,
        )
        return template_to_proto(template)

    async def GetReportTemplate(
        self, request: pb.GetReportTemplateRequest, context: object
    ) -> pb.ReportTemplate:
        tenant, template_id = _template_name(request.name)
        return template_to_proto(
            await self.desk.get_template(require_principal(), tenant, template_id)
        )

    async def ListReportTemplates(
        self, request: pb.ListReportTemplatesRequest, context: object
    ) -> pb.ListReportTemplatesResponse:
        templates = await self.desk.list_templates(
            require_principal(), tenancy.parse_parent(request.parent)
        )
        return pb.ListReportTemplatesResponse(
            report_templates=[template_to_proto(t) for t in templates]
        )

    async def RunReport(self, request: pb.RunReportRequest, context: object) -> pb.ReportRun:
        tenant, template_id = _template_name(request.name)
        return run_to_proto(await self.desk.run(require_principal(), tenant, template_id))

    async def GetReportRun(self, request: pb.GetReportRunRequest, context: object) -> pb.ReportRun:
        tenant, template_id, run_id = parse_nested(request.name, "reportTemplates", "runs", "name")
        _, run = await self.desk.get_run(require_principal(), tenant, template_id, run_id)
        return run_to_proto(run)

    async def ListReportRuns(
        self, request: pb.ListReportRunsRequest, context: object
    ) -> pb.ListReportRunsResponse:
        tenant, template_id = _template_name(request.parent, "parent")
        runs = await self.desk.list_runs(
            require_principal(), tenant, template_id, request.page_size
        )
        return pb.ListReportRunsResponse(report_runs=[run_to_proto(r) for r in runs])

    async def ExportReportRun(
        self, request: pb.ExportReportRunRequest, context: object
    ) -> pb.ExportReportRunResponse:
        tenant, template_id, run_id = parse_nested(request.name, "reportTemplates", "runs", "name")
        fmt = _FORMATS.get(request.format)
        if fmt is None:
            raise InvalidArgument.field("format", "must be FORMAT_CSV or FORMAT_XLSX")
        content, content_type, filename = await self.desk.export(
            require_principal(), tenant, template_id, run_id, fmt
        )
        return pb.ExportReportRunResponse(
            content=content, content_type=content_type, filename=filename
        )

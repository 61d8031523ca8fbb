"""The forms desk: define forms, take records once, define and run departments' reports.

Why it is built this way:

* A form is inherited down the tree: the town defines the fire-safety inspection
  once and every village's grid workers fill in the same one, named under their own
  village; the nearest definition wins, so a village may keep a form of its own.
* A record is checked field by field against its form (type, required, bounds,
  options), and every wrong value is named (`record.values.exits_blocked`); nothing
  of a refused record is stored. A request_id makes a retried submission harmless.
* A record's grid cell and its `building` field must lie in the record's village, as
  the map knows it: a record of one village naming another's cell would be counted
  under that cell in every report.
* A report template is checked against its form when it is defined: a column that
  names a field the form lacks is refused then, not discovered at the deadline.
* A template may read events or tasks instead of a form's records (events per category
  and grid cell, tasks resolved within SLA): the events and command services own them,
  so a run reads them through their APIs (`LoopActivity`), limited to the template's
  subtree and period, and aggregates them with the same code as records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from services.empower.domain import report_sources, reports
from services.empower.domain.forms_model import (
    GRID_CELL_FILTER,
    RECORD_KEYS,
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
from services.empower.domain.forms_ports import FormsStore, LoopActivity, Places
from services.kit import paging, tenancy
from services.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.kit.filtering import parse_terms
from services.kit.ids import new_id
from services.kit.principal import Principal

RECORD_PREFIX = "fr"
RUN_PREFIX = "rr"
MAX_FIELDS = 100
MAX_OPTIONS = 50
MAX_COLUMNS = 50
MAX_TEXT = 5000
DEFAULT_TEXT = 500
MIN_YEAR, MAX_YEAR = 1900, 2100
MAX_PERIOD_DAYS = 3660
SCHEDULE_PERIODS = {
    Schedule.DAILY: timedelta(days=1),
    Schedule.WEEKLY: timedelta(days=7),
    Schedule.MONTHLY: timedelta(days=30),
}

_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}\Z")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
_REFERENCE = re.compile(r"^[A-Za-z0-9_.-]{0,64}\Z")
# The form field that names a building of the map (the demo inspection's `building`).
BUILDING_FIELD = "building"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _label(value: str, field: str, maximum: int = 100) -> str:
    text = " ".join(value.split())
    if not text or len(text) > maximum or _CONTROL.search(value):
        raise InvalidArgument.field(field, f"1 to {maximum} printable characters")
    return text


def _resource_id(value: str, field: str) -> str:
    if not _ID.match(value):
        raise InvalidArgument.field(
            field, "1 to 63 lower-case letters, digits or '-', starting with a letter"
        )
    return value


def check_fields(fields: Sequence[FormField]) -> tuple[FormField, ...]:
    """The form's fields, every problem named (`form.fields[2].options`)."""
    if not 0 < len(fields) <= MAX_FIELDS:
        raise InvalidArgument.field("form.fields", f"1 to {MAX_FIELDS} fields")
    problems: list[FieldViolation] = []
    seen: set[str] = set()
    checked = []
    for i, f in enumerate(fields):
        where = f"form.fields[{i}]"
        if not _KEY.match(f.key):
            problems.append(FieldViolation(f"{where}.key", "lower-case letters, digits, '_'"))
        elif f.key in seen or f.key in RECORD_KEYS:
            problems.append(FieldViolation(f"{where}.key", f"{f.key!r} is taken"))
        seen.add(f.key)
        try:
            label = _label(f.label, f"{where}.label")
        except InvalidArgument as exc:
            problems.extend(exc.violations)
            label = f.label
        if f.type is FieldType.CHOICE:
            options = tuple(o.strip() for o in f.options)
            if not 0 < len(options) <= MAX_OPTIONS or len(set(options)) != len(options):
                problems.append(
                    FieldViolation(f"{where}.options", f"1 to {MAX_OPTIONS} different options")
                )
            elif any(not o or len(o) > 100 for o in options):
                problems.append(FieldViolation(f"{where}.options", "1 to 100 characters each"))
        elif f.options:
            problems.append(FieldViolation(f"{where}.options", "only a choice has options"))
        if (f.minimum is not None or f.maximum is not None) and f.type is not FieldType.INTEGER:
            problems.append(FieldViolation(f"{where}.minimum", "only an integer has bounds"))
        if f.minimum is not None and f.maximum is not None and f.minimum > f.maximum:
            problems.append(FieldViolation(f"{where}.maximum", "is below the minimum"))
        if not 0 <= f.max_length <= MAX_TEXT:
            problems.append(FieldViolation(f"{where}.max_length", f"0 to {MAX_TEXT}"))
        checked.append(
            FormField(
                key=f.key,
                label=label,
                type=f.type,
                required=f.required,
                options=tuple(o.strip() for o in f.options),
                minimum=f.minimum,
                maximum=f.maximum,
                max_length=f.max_length or DEFAULT_TEXT,
            )
        )
    if problems:
        raise InvalidArgument(problems)
    return tuple(checked)


def _value(field: FormField, raw: str) -> str:
    """The value as stored (normalised text), or ValueError saying what is wrong."""
    text = raw.strip()
    if field.type is FieldType.TEXT:
        if len(text) > field.max_length or _CONTROL.search(text):
            raise ValueError(f"at most {field.max_length} printable characters")
        return text
    if field.type is FieldType.INTEGER:
        if not re.fullmatch(r"-?\d{1,18}", text):
            raise ValueError("must be a whole number")
        number = int(text)
        if field.minimum is not None and number < field.minimum:
            raise ValueError(f"must be at least {field.minimum}")
        if field.maximum is not None and number > field.maximum:
            raise ValueError(f"must be at most {field.maximum}")
        return str(number)
    if field.type is FieldType.BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise ValueError("must be true or false")
        return text.lower()
    if field.type is FieldType.DATE:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError("must be a date, YYYY-MM-DD") from None
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            # A slip of the keyboard (9999) would sort first and break every monthly report.
            raise ValueError(f"must be a date in the years {MIN_YEAR} to {MAX_YEAR}")
        return day.isoformat()
    if field.type is FieldType.CHOICE:
        if text not in field.options:
            raise ValueError(f"must be one of: {', '.join(field.options)}")
        return text
    lon_text, comma, lat_text = text.partition(",")
    try:
        lon, lat = float(lon_text), float(lat_text)
    except ValueError:
        raise ValueError("must be 'longitude,latitude' in WGS 84") from None
    if not comma or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError("must be 'longitude,latitude' in WGS 84")
    return f"{lon:.6f},{lat:.6f}"


def check_values(form: Form, values: Mapping[str, str]) -> dict[str, str]:
    """The record's values against its form; every wrong field named at once."""
    problems: list[FieldViolation] = []
    for key in values:
        if form.field(key) is None:
            problems.append(
                FieldViolation(f"record.values.{key[:40]}", f"form {form.id!r} has no such field")
            )
    clean: dict[str, str] = {}
    for field in form.fields:
        raw = values.get(field.key, "")
        if not raw.strip():
            if field.required:
                problems.append(FieldViolation(f"record.values.{field.key}", "is required"))
            continue
        try:
            clean[field.key] = _value(field, raw)
        except ValueError as exc:
            problems.append(FieldViolation(f"record.values.{field.key}", str(exc)))
    if problems:
        raise InvalidArgument(problems)
    return clean


def check_template(
    form: Form, group_by: Sequence[str], columns: Sequence[ReportColumn]
) -> tuple[tuple[str, ...], tuple[ReportColumn, ...]]:
    """Every field a template names must exist in its form, with a type that fits."""
    problems: list[FieldViolation] = []
    known = {f.key for f in form.fields} | set(RECORD_KEYS)
    for i, key in enumerate(group_by):
        if key not in known:
            problems.append(
                FieldViolation(
                    f"report_template.group_by[{i}]",
                    f"form {form.id!r} has no field {key[:40]!r}",
                )
            )
    if len(set(group_by)) != len(group_by):
        problems.append(FieldViolation("report_template.group_by", "names a field twice"))
    if not 0 < len(columns) <= MAX_COLUMNS:
        problems.append(FieldViolation("report_template.columns", f"1 to {MAX_COLUMNS} columns"))
    checked = []
    for i, column in enumerate(columns):
        where = f"report_template.columns[{i}]"
        try:
            label = _label(column.label, f"{where}.label")
        except InvalidArgument as exc:
            problems.extend(exc.violations)
            label = column.label
        checked.append(replace(column, label=label))
        problems.extend(_check_weights(column, where, known))
        if column.aggregate is Aggregate.COUNT:
            continue
        if column.aggregate is Aggregate.GROUP:
            if column.field not in group_by:
                problems.append(
                    FieldViolation(f"{where}.field", "a group column shows a group_by field")
                )
            continue
        field = form.field(column.field)
        if field is None:
            problems.append(
                FieldViolation(
                    f"{where}.field", f"form {form.id!r} has no field {column.field[:40]!r}"
                )
            )
        elif (
            column.aggregate in (Aggregate.SUM, Aggregate.MAX)
            and field.type is not FieldType.INTEGER
        ):
            problems.append(FieldViolation(f"{where}.field", f"{field.key!r} is not an integer"))
        elif (
            column.aggregate is Aggregate.COUNT_IF
            and field.type is not FieldType.BOOLEAN
            and not column.equals
        ):
            problems.append(
                FieldViolation(
                    f"{where}.equals", f"{field.key!r} is not true/false: say which value counts"
                )
            )
    if problems:
        raise InvalidArgument(problems)
    return tuple(group_by), tuple(checked)


MAX_WEIGHTS = 100
MAX_FILTER = 1000


def record_filter(form: Form, filter_text: str) -> dict[str, str]:
    """`values.<key> = "..."` and `grid_cell = "..."` terms as {field key: value}, the
    record's grid cell under GRID_CELL_FILTER; a field the form lacks is named."""
    if len(filter_text) > MAX_FILTER:
        raise InvalidArgument.field("filter", f"at most {MAX_FILTER} characters")
    allowed = {f"values.{f.key}": ("=",) for f in form.fields} | {"grid_cell": ("=",)}
    equals: dict[str, str] = {}
    for term in parse_terms(filter_text, allowed):
        key = GRID_CELL_FILTER if term.field == "grid_cell" else term.field[len("values.") :]
        if key in equals:
            raise InvalidArgument.field("filter", f"{term.field!r} appears twice")
        equals[key] = term.value
    return equals


def _check_weights(column: ReportColumn, where: str, known: set[str]) -> list[FieldViolation]:
    """A weighted SUM names a field of the form to weigh by, and finite weights."""
    if not column.weight_field and not column.weights:
        return []
    if column.aggregate is not Aggregate.SUM:
        return [FieldViolation(f"{where}.weight_field", "weights are for a SUM column")]
    problems = []
    if column.weight_field not in known:
        problems.append(
            FieldViolation(
                f"{where}.weight_field", f"no field {column.weight_field[:40]!r} to weigh by"
            )
        )
    if not column.weights or len(column.weights) > MAX_WEIGHTS:
        problems.append(FieldViolation(f"{where}.weights", f"1 to {MAX_WEIGHTS} weights"))
    elif not all(math.isfinite(w) for _, w in column.weights):
        problems.append(FieldViolation(f"{where}.weights", "every weight is a finite number"))
    return problems


def parse_form_name(name: str, field: str) -> tuple[str, str]:
    tenant, form_id = tenancy.parse_child_name(name, "forms", field)
    if tenant is None:
        raise InvalidArgument.field(field, "name the form's tenant, not '-'")
    return tenant, form_id


class FormsDesk:
    """Forms, records, templates and runs, checked for tenancy."""

    def __init__(
        self,
        store: FormsStore,
        clock: Callable[[], datetime] | None = None,
        places: Places | None = None,
        activity: LoopActivity | None = None,
        on_record: Callable[[FormRecord], Awaitable[object]] | None = None,
    ) -> None:
        """`on_record` hears of every record entered (and again of a retried one), after it
        is stored: the points ledger pays for it (`record_fact`)."""
        self._on_record = on_record
        self._places = places
        self._activity = activity
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    # --- forms ------------------------------------------------------------------

    async def create_form(
        self,
        caller: Principal,
        tenant: str,
        form_id: str,
        display_name: str,
        fields: Sequence[FormField],
    ) -> Form:
        self._see(caller, tenant)
        form = Form(
            id=_resource_id(form_id, "form_id"),
            tenant=tenant,
            display_name=_label(display_name, "form.display_name"),
            fields=check_fields(fields),
            create_time=self._clock(),
        )
        await self.store.insert_form(caller.tenant, form)
        return form

    async def get_form(self, caller: Principal, tenant: str, form_id: str) -> Form:
        """The form as `tenant` sees it: its own, or the nearest one above it."""
        self._see_or_above(caller, tenant)
        found = await self.store.forms_at(
            tenancy.ALL_TENANTS, tenancy.ancestors_and_self(tenant), form_id
        )
        if not found:
            raise NotFound(f"form {form_id!r} not found")
        return max(found, key=lambda f: f.tenant.count("/"))

    async def list_forms(self, caller: Principal, tenant: str) -> list[Form]:
        """The forms that apply in `tenant`, nearest definition of each id."""
        self._see_or_above(caller, tenant)
        found = await self.store.forms_at(tenancy.ALL_TENANTS, tenancy.ancestors_and_self(tenant))
        nearest: dict[str, Form] = {}
        for form in sorted(found, key=lambda f: f.tenant.count("/")):
            nearest[form.id] = form
        return sorted(nearest.values(), key=lambda f: f.id)

    # --- records ----------------------------------------------------------------

    async def create_record(
        self,
        caller: Principal,
        tenant: str,
        form_id: str,
        values: Mapping[str, str],
        grid_cell: str,
        request_id: str,
    ) -> FormRecord:
        """Enter a record once, in the village the path names."""
        self._see(caller, tenant)
        if not _REQUEST_ID.match(request_id):
            raise InvalidArgument.field(
                "request_id", "required: 1 to 128 letters, digits, '_', '.', ':' or '-'"
            )
        if not _REFERENCE.match(grid_cell):
            raise InvalidArgument.field(
                "record.grid_cell", "up to 64 letters, digits, '_', '.' or '-'"
            )
        form = await self.get_form(caller, tenant, form_id)
        clean = check_values(form, values)
        await self._check_places(tenant, grid_cell, clean.get(BUILDING_FIELD, ""))
        record = FormRecord(
            id=new_id(RECORD_PREFIX),
            tenant=tenant,
            form=form.resource_name,
            form_id=form.id,
            values=clean,
            grid_cell=grid_cell,
            author=caller.subject,
            request_id=request_id,
            create_time=self._clock(),
        )
        stored = await self.store.insert_record(caller.tenant, record)
        if stored.id != record.id and stored.form != record.form:
            raise FailedPrecondition(
                "this request_id was already used for a record of another form",
                reason="REQUEST_ID_REUSED",
            )
        if stored.id != record.id and (
            dict(stored.values) != dict(record.values) or stored.grid_cell != record.grid_cell
        ):
            # Not a retry: answering the first record would hide that this one is lost.
            raise FailedPrecondition(
                "this request_id was already used for a record with other values; use a new one",
                reason="REQUEST_ID_REUSED",
            )
        if self._on_record is not None:
            # After the commit: a retry with the same request id tells it again, and what
            # it does is keyed by the record, so the retry is how a lost call is made up.
            await self._on_record(stored)
        return stored

    async def _check_places(self, village: str, grid_cell: str, building: str) -> None:
        """The grid cell and building are the village's own, asked of the map in one go."""
        if self._places is None or not (grid_cell or building):
            return
        cells, buildings = await self._places.outside(
            village, [grid_cell] if grid_cell else [], [building] if building else []
        )
        problems = [
            FieldViolation("record.grid_cell", f"{grid_cell!r} is not a grid cell of {village}")
            for _ in cells
        ] + [
            FieldViolation(
                f"record.values.{BUILDING_FIELD}", f"{building!r} is not a building of {village}"
            )
            for _ in buildings
        ]
        if problems:
            raise InvalidArgument(problems)

    async def list_records(
        self,
        caller: Principal,
        tenant: str,
        form_id: str,
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[FormRecord], str]:
        """Records of the form in `tenant`'s subtree, oldest first; `filter_text` keeps
        those whose values equal the ones given (`values.batch = "..."`)."""
        form = await self.get_form(caller, tenant, form_id)
        self._see(caller, tenant)
        equals = record_filter(form, filter_text)
        size = paging.page_size(page_size)
        query = {"tenant": tenant, "form": form.resource_name, "filter": filter_text}
        cursor = paging.decode_token(page_token, query)
        after = cursor.get("a") if cursor else None
        if after is not None and not isinstance(after, str):
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        found = await self.store.list_records(tenant, form.resource_name, size + 1, after, equals)
        token = paging.encode_token({"a": found[size - 1].id}, query) if len(found) > size else ""
        return found[:size], token

    # --- report templates ---------------------------------------------------------

    async def create_template(
        self,
        caller: Principal,
        tenant: str,
        template_id: str,
        *,
        display_name: str,
        department: str,
        form_name: str,
        group_by: Sequence[str],
        columns: Sequence[ReportColumn],
        schedule: Schedule = Schedule.NONE,
        source: Source = Source.FORM_RECORDS,
        period_days: int = 0,
    ) -> ReportTemplate:
        self._see(caller, tenant)
        _resource_id(template_id, "report_template_id")
        if not 0 <= period_days <= MAX_PERIOD_DAYS:
            raise InvalidArgument.field(
                "report_template.period_days", f"0 (all) to {MAX_PERIOD_DAYS} days"
            )
        if source is Source.FORM_RECORDS:
            form = await self._template_form(tenant, form_name)
            form_ref = form.resource_name
        else:
            if form_name:
                raise InvalidArgument.field(
                    "report_template.form", f"leave it empty: the rows are {source.value}"
                )
            form, form_ref = report_sources.SOURCE_FORMS[source], ""
        grouping, checked = check_template(form, group_by, columns)
        template = ReportTemplate(
            id=template_id,
            tenant=tenant,
            display_name=_label(display_name, "report_template.display_name"),
            department=_label(department, "report_template.department"),
            form=form_ref,
            group_by=grouping,
            columns=checked,
            schedule=schedule,
            create_time=self._clock(),
            source=source,
            period_days=period_days,
        )
        await self.store.insert_template(caller.tenant, template)
        return template

    async def _template_form(self, tenant: str, form_name: str) -> Form:
        form_tenant, form_id = parse_form_name(form_name, "report_template.form")
        if not (tenancy.contains(form_tenant, tenant) or tenancy.contains(tenant, form_tenant)):
            raise NotFound(f"form {form_name!r} not found")
        forms = await self.store.forms_at(tenancy.ALL_TENANTS, [form_tenant], form_id)
        if not forms:
            raise InvalidArgument.field("report_template.form", f"no form {form_name!r}")
        return forms[0]

    async def get_template(
        self, caller: Principal, tenant: str, template_id: str
    ) -> ReportTemplate:
        self._see(caller, tenant)
        found = await self.store.templates_at(caller.tenant, [tenant], template_id)
        if not found:
            raise NotFound(f"report template {template_id!r} not found")
        return found[0]

    async def list_templates(self, caller: Principal, tenant: str) -> list[ReportTemplate]:
        self._see(caller, tenant)
        return await self.store.templates_at(caller.tenant, [tenant])

    # --- runs -------------------------------------------------------------------

    async def run(self, caller: Principal, tenant: str, template_id: str) -> ReportRun:
        """Compute the report over the template's subtree now, and keep the run."""
        template = await self.get_template(caller, tenant, template_id)
        return await self._run(template, scheduled=False)

    async def _run(self, template: ReportTemplate, *, scheduled: bool) -> ReportRun:
        now = self._clock()
        since = now - timedelta(days=template.period_days) if template.period_days else None
        form, records = await self._rows(template, since, now)
        headings, rows = reports.compute(template, form, records)
        run = ReportRun(
            id=new_id(RUN_PREFIX),
            tenant=template.tenant,
            template_id=template.id,
            headings=headings,
            rows=rows,
            record_count=len(records),
            scheduled=scheduled,
            create_time=self._clock(),
        )
        await self.store.insert_run(template.tenant, run)
        return run

    async def _rows(
        self, template: ReportTemplate, since: datetime | None, now: datetime
    ) -> tuple[Form, list[FormRecord]]:
        """The template's form (or its source's) and the rows of its subtree and period."""
        if template.source is not Source.FORM_RECORDS:
            if self._activity is None:
                raise FailedPrecondition(
                    f"reports over {template.source.value} need the events and command "
                    "services: set GRASSROOTS_EMPOWER_EVENTS_ADDRESS and _COMMAND_ADDRESS"
                )
            if template.source is Source.EVENTS:
                found = await self._activity.events(template.tenant, since)
                rows = [report_sources.event_row(e) for e in found]
            else:
                tasks = await self._activity.tasks(template.tenant, since)
                rows = [report_sources.task_row(t, now) for t in tasks]
            return report_sources.SOURCE_FORMS[template.source], rows
        form_tenant, form_id = parse_form_name(template.form, "form")
        forms = await self.store.forms_at(tenancy.ALL_TENANTS, [form_tenant], form_id)
        if not forms:
            raise FailedPrecondition(f"the form {template.form!r} of this report is gone")
        records = await self._all_records(template.tenant, template.form)
        if since is not None:
            records = [r for r in records if r.create_time >= since]
        return forms[0], records

    async def _all_records(self, subtree: str, form: str) -> list[FormRecord]:
        records: list[FormRecord] = []
        after: str | None = None
        while True:
            page = await self.store.list_records(subtree, form, 5000, after)
            records.extend(page)
            if len(page) < 5000:
                return records
            after = page[-1].id

    async def run_due(self) -> int:
        """Run every scheduled template whose period has passed; how many ran."""
        now = self._clock()
        ran = 0
        for template, last in await self.store.scheduled_templates():
            period = SCHEDULE_PERIODS.get(template.schedule)
            if period is None or (last is not None and now - last < period):
                continue
            await self._run(template, scheduled=True)
            ran += 1
        return ran

    async def get_run(
        self, caller: Principal, tenant: str, template_id: str, run_id: str
    ) -> tuple[ReportTemplate, ReportRun]:
        template = await self.get_template(caller, tenant, template_id)
        run = await self.store.get_run(caller.tenant, tenant, template_id, run_id)
        if run is None:
            raise NotFound(f"report run {run_id!r} not found")
        return template, run

    async def list_runs(
        self, caller: Principal, tenant: str, template_id: str, page_size: int
    ) -> list[ReportRun]:
        await self.get_template(caller, tenant, template_id)
        return await self.store.list_runs(
            caller.tenant, tenant, template_id, paging.page_size(page_size, default=20)
        )

    async def export(
        self, caller: Principal, tenant: str, template_id: str, run_id: str, fmt: str
    ) -> tuple[bytes, str, str]:
        """(content, media type, file name) of a run as CSV or XLSX."""
        template, run = await self.get_run(caller, tenant, template_id, run_id)
        stamp = run.create_time.astimezone(reports.CHINA_TIME).strftime("%Y%m%d-%H%M")
        filename = f"{template.id}-{stamp}.{fmt}"
        if fmt == "xlsx":
            content = reports.to_xlsx(
                template.display_name, template.columns, run.headings, run.rows, run.create_time
            )
            return content, reports.XLSX_TYPE, filename
        if fmt != "csv":
            raise InvalidArgument.field("format", "must be csv or xlsx")
        return reports.to_csv(template.columns, run.headings, run.rows), reports.CSV_TYPE, filename

    @staticmethod
    def _see(caller: Principal, tenant: str) -> None:
        if not caller.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")

    @staticmethod
    def _see_or_above(caller: Principal, tenant: str) -> None:
        """Forms are read where they apply: the caller's subtree, or its own line up."""
        if not (caller.can_see(tenant) or tenancy.contains(tenant, caller.tenant)):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")

"""Reports over events and tasks, on both stores, read through the gRPC adapter.

The events and command services are stood in by servers speaking their real contracts
on loopback sockets (`EventsServiceStandIn`, `CommandServiceStandIn`): they page as the
services do, keep to the caller's subtree as the services do, and count the calls, so
the test sees that a run pages in batches of 1,000 instead of calling per row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.command.v1 import command_service_pb2_grpc as command_grpc
from grassroots.empower.v1 import forms_service_pb2 as forms_pb
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from services.empower.domain.forms import FormsDesk
from services.empower.domain.forms_model import Aggregate, ReportColumn, Source
from services.empower.forms_api import FormsServicer
from services.empower.loop_activity import GrpcLoopActivity
from services.kit import tenancy
from services.kit.context import principal_var
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.principal import Principal
from tests.conftest import TOWN, XIANGYANG, XINGMING

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def who(tenant: str) -> Principal:
    return Principal(
        subject="users/staff", tenant=tenant, scopes=frozenset({"forms:write", "reports:read"})
    )


def _stamp(moment: datetime | None) -> Timestamp:
    stamp = Timestamp()
    if moment is not None:
        stamp.FromDatetime(moment)
    return stamp


def _page(items: Sequence[Any], request: Any) -> tuple[list[Any], str]:
    size = min(request.page_size or 50, 1000)
    start = int(request.page_token or 0)
    more = start + size < len(items)
    return list(items[start : start + size]), str(start + size) if more else ""


def _caller_subtree(context: grpc.aio.ServicerContext, parent: str) -> str:
    caller = Principal.from_metadata(context.invocation_metadata())
    subtree = tenancy.parse_parent(parent)
    assert caller.can_see(subtree), "the adapter asked outside its principal's subtree"
    return subtree


class EventsServiceStandIn(events_grpc.EventsServiceServicer):
    """ListEvents over a fixed list: subtree, `create_time >=` and oldest-first paging."""

    def __init__(self, events: list[events_pb.Event]) -> None:
        self.events = events
        self.requests: list[events_pb.ListEventsRequest] = []

    async def ListEvents(
        self, request: events_pb.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb.ListEventsResponse:
        self.requests.append(request)
        subtree = _caller_subtree(context, request.parent)
        since = None
        if request.filter:
            since = datetime.fromisoformat(request.filter.split('"')[1])
        chosen = [
            e
            for e in self.events
            if tenancy.contains(subtree, e.village)
            and (since is None or e.create_time.ToDatetime(tzinfo=UTC) >= since)
        ]
        chosen.sort(key=lambda e: e.create_time.ToDatetime())
        page, token = _page(chosen, request)
        return events_pb.ListEventsResponse(events=page, next_page_token=token)


class CommandServiceStandIn(command_grpc.CommandServiceServicer):
    """ListTasks over a fixed list: subtree, `create_time >=` and newest-first paging by
    offset, as the command service pages."""

    def __init__(self, tasks: list[command_pb.Task]) -> None:
        self.tasks = tasks
        self.requests: list[command_pb.ListTasksRequest] = []
        self.sent = 0
        # Tasks created while a reader pages: added after the first page is served.
        self.arriving: list[command_pb.Task] = []

    async def ListTasks(
        self, request: command_pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> command_pb.ListTasksResponse:
        self.requests.append(request)
        subtree = _caller_subtree(context, request.parent)
        since = None
        if request.filter:
            assert request.filter.startswith("create_time >= "), request.filter
            since = datetime.fromisoformat(request.filter.split('"')[1])
        chosen = [
            t
            for t in self.tasks
            if tenancy.contains(subtree, t.village)
            and (since is None or t.create_time.ToDatetime(tzinfo=UTC) >= since)
        ]
        chosen.sort(key=lambda t: t.create_time.ToDatetime(), reverse=True)
        page, token = _page(chosen, request)
        self.sent += len(page)
        self.tasks += self.arriving
        self.arriving = []
        return command_pb.ListTasksResponse(tasks=page, next_page_token=token)


def _events() -> list[events_pb.Event]:
    """2,600 events: three pages; fire alarms and garbage in two villages, some old."""
    found = []
    for n in range(2600):
        village = XINGMING if n % 4 else XIANGYANG
        category = "safety.smoke_alarm" if n % 10 == 0 else "environment.garbage"
        state = events_pb.Event.STATE_CLOSED if n % 3 == 0 else events_pb.Event.STATE_REPORTED
        age = timedelta(days=40) if n % 13 == 0 else timedelta(hours=n % 200)
        found.append(
            events_pb.Event(
                name=f"{tenancy.tenant_name(village)}/events/ev{n:05d}",
                category=category,
                state=state,
                source=events_pb.Event.SOURCE_GRID_PATROL,
                village=village,
                grid_cell=f"g{n % 3:02d}",
                severity=3,
                create_time=_stamp(NOW - age),
            )
        )
    # Another town's event never reaches a report of this town.
    found.append(
        events_pb.Event(
            name="tenants/sh-jiading-malu/events/other",
            category="safety.smoke_alarm",
            village="sh/jiading/malu/x",
            create_time=_stamp(NOW),
        )
    )
    return found


@dataclass(frozen=True)
class TaskCase:
    village: str
    team: str
    resolved_after: timedelta | None
    sla: timedelta


TASK_CASES = [
    TaskCase(XINGMING, "volunteers", timedelta(minutes=30), timedelta(hours=1)),
    TaskCase(XINGMING, "volunteers", timedelta(hours=2), timedelta(hours=1)),
    TaskCase(XINGMING, "sanitation", timedelta(minutes=10), timedelta(hours=1)),
    TaskCase(XINGMING, "sanitation", None, timedelta(hours=1)),  # open, overdue now
    TaskCase(XIANGYANG, "sanitation", timedelta(minutes=50), timedelta(hours=1)),
    TaskCase(XIANGYANG, "sanitation", None, timedelta(days=2)),  # open, on track
]


def _tasks() -> list[command_pb.Task]:
    found = []
    for n, case in enumerate(TASK_CASES * 300):  # 1,800 tasks: two pages
        created = NOW - timedelta(hours=3)
        resolved = created + case.resolved_after if case.resolved_after else None
        found.append(
            command_pb.Task(
                name=f"{tenancy.tenant_name(case.village)}/tasks/tk{n:05d}",
                village=case.village,
                team=case.team,
                category="environment.garbage",
                state=command_pb.Task.STATE_DONE if resolved else command_pb.Task.STATE_ACCEPTED,
                grid_cell="g01",
                create_time=_stamp(created),
                due_time=_stamp(created + case.sla),
                resolve_time=_stamp(resolved),
            )
        )
    return found


@dataclass
class Loop:
    activity: GrpcLoopActivity
    events: EventsServiceStandIn
    command: CommandServiceStandIn


@pytest.fixture
async def loop() -> AsyncIterator[Loop]:
    events = EventsServiceStandIn(_events())
    command = CommandServiceStandIn(_tasks())
    server = grpc.aio.server()
    events_grpc.add_EventsServiceServicer_to_server(events, server)
    command_grpc.add_CommandServiceServicer_to_server(command, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    activity = GrpcLoopActivity(f"127.0.0.1:{port}", f"127.0.0.1:{port}")
    yield Loop(activity, events, command)
    await activity.close()
    await server.stop(None)


@pytest.fixture
def loop_desk(forms_store: Any, loop: Loop) -> FormsDesk:
    return FormsDesk(forms_store, clock=lambda: NOW, activity=loop.activity)


def _expected_events(period: timedelta | None) -> dict[tuple[str, str], tuple[int, int]]:
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for e in _events()[:-1]:
        if period and e.create_time.ToDatetime(tzinfo=UTC) < NOW - period:
            continue
        key = (e.village, e.category)
        total, still_open = counts.get(key, (0, 0))
        counts[key] = (total + 1, still_open + (e.state != events_pb.Event.STATE_CLOSED))
    return counts


async def test_events_per_village_and_category_in_a_period(
    loop_desk: FormsDesk, loop: Loop
) -> None:
    template = await loop_desk.create_template(
        who(TOWN),
        TOWN,
        "events-by-category",
        display_name="Events by village and category, last 30 days",
        department="Town statistics",
        form_name="",
        source=Source.EVENTS,
        period_days=30,
        group_by=["tenant", "category"],
        columns=[
            ReportColumn("Village", Aggregate.GROUP, "tenant"),
            ReportColumn("Category", Aggregate.GROUP, "category"),
            ReportColumn("Events", Aggregate.COUNT),
            ReportColumn("Still open", Aggregate.COUNT_IF, "open"),
        ],
    )
    assert template.form == "" and template.source is Source.EVENTS
    run = await loop_desk.run(who(TOWN), TOWN, "events-by-category")
    expected = _expected_events(timedelta(days=30))
    assert run.rows[:-1] == tuple(
        (village, category, str(n), str(still_open))
        for (village, category), (n, still_open) in sorted(expected.items())
    )
    total = sum(n for n, _ in expected.values())
    assert run.rows[-1][:3] == ("Total", "", str(total)) and run.record_count == total
    assert 2000 < total < 2600  # the old events stayed out
    # Pages of 1,000, oldest first, bounded in time, at the template's own node.
    assert [r.page_size for r in loop.events.requests] == [1000] * 3
    assert {r.parent for r in loop.events.requests} == {tenancy.tenant_name(TOWN)}
    assert all(r.filter.startswith("create_time >=") for r in loop.events.requests)
    # A village's run of its own template sees only its own events.
    await loop_desk.create_template(
        who(XIANGYANG),
        XIANGYANG,
        "own-events",
        display_name="Our events",
        department="Village office",
        form_name="",
        source=Source.EVENTS,
        group_by=["category"],
        columns=[
            ReportColumn("Category", Aggregate.GROUP, "category"),
            ReportColumn("N", Aggregate.COUNT),
        ],
    )
    own = await loop_desk.run(who(XIANGYANG), XIANGYANG, "own-events")
    assert own.record_count == sum(1 for e in _events() if e.village == XIANGYANG)


async def test_tasks_resolved_within_sla_per_team(loop_desk: FormsDesk, loop: Loop) -> None:
    await loop_desk.create_template(
        who(TOWN),
        TOWN,
        "tasks-sla",
        display_name="Tasks against their SLA",
        department="Town command centre",
        form_name="",
        source=Source.TASKS,
        group_by=["tenant", "team"],
        columns=[
            ReportColumn("Village", Aggregate.GROUP, "tenant"),
            ReportColumn("Team", Aggregate.GROUP, "team"),
            ReportColumn("Tasks", Aggregate.COUNT),
            ReportColumn("Resolved", Aggregate.COUNT_IF, "resolved"),
            ReportColumn("Within SLA", Aggregate.COUNT_IF, "within_sla"),
            ReportColumn("Overdue", Aggregate.COUNT_IF, "overdue"),
            ReportColumn("Slowest (min)", Aggregate.MAX, "resolve_minutes"),
        ],
    )
    run = await loop_desk.run(who(TOWN), TOWN, "tasks-sla")
    assert run.rows == (
        (XIANGYANG, "sanitation", "600", "300", "300", "0", "50"),
        (XINGMING, "sanitation", "600", "300", "300", "300", "10"),
        (XINGMING, "volunteers", "600", "600", "300", "300", "120"),
        ("Total", "", "1800", "1200", "900", "600", "120"),
    )
    assert [r.page_size for r in loop.command.requests] == [1000, 1000]


async def test_a_tasks_report_over_a_period_reads_only_that_periods_tasks(
    loop_desk: FormsDesk, loop: Loop
) -> None:
    old = [
        command_pb.Task(
            name=f"{tenancy.tenant_name(XINGMING)}/tasks/old{n:04d}",
            village=XINGMING,
            team="volunteers",
            state=command_pb.Task.STATE_DONE,
            create_time=_stamp(NOW - timedelta(days=40)),
            resolve_time=_stamp(NOW - timedelta(days=39)),
        )
        for n in range(700)
    ]
    loop.command.tasks += old
    late = command_pb.Task(
        name=f"{tenancy.tenant_name(XINGMING)}/tasks/late",
        village=XINGMING,
        team="volunteers",
        state=command_pb.Task.STATE_ACCEPTED,
        create_time=_stamp(NOW - timedelta(minutes=1)),
    )
    # Created while the run pages, newest first: it moves every task down by one, so the
    # last task of the first page comes again on the second; it still counts once.
    loop.command.arriving = [late]
    await loop_desk.create_template(
        who(TOWN),
        TOWN,
        "tasks-week",
        display_name="Tasks this week",
        department="Town command centre",
        form_name="",
        source=Source.TASKS,
        period_days=7,
        group_by=["team"],
        columns=[
            ReportColumn("Team", Aggregate.GROUP, "team"),
            ReportColumn("Tasks", Aggregate.COUNT),
        ],
    )
    run = await loop_desk.run(who(TOWN), TOWN, "tasks-week")
    assert run.rows == (("sanitation", "1200"), ("volunteers", "600"), ("Total", "1800"))
    # The period went to the command service as a filter: no old task crossed the wire.
    since = datetime.fromisoformat(loop.command.requests[0].filter.split('"')[1])
    assert since == NOW - timedelta(days=7)
    assert loop.command.sent == 1801  # 1,800 tasks of the week, one of them twice


async def test_a_loop_template_names_only_its_sources_fields(loop_desk: FormsDesk) -> None:
    with pytest.raises(InvalidArgument) as bad:
        await loop_desk.create_template(
            who(TOWN),
            TOWN,
            "bad",
            display_name="Bad",
            department="Office",
            form_name="",
            source=Source.TASKS,
            group_by=["hazard_level"],
            columns=[
                ReportColumn("Sum", Aggregate.SUM, "team"),
                ReportColumn("N", Aggregate.COUNT),
            ],
            period_days=4000,
        )
    assert [v.field for v in bad.value.violations] == ["report_template.period_days"]
    with pytest.raises(InvalidArgument) as bad:
        await loop_desk.create_template(
            who(TOWN),
            TOWN,
            "bad",
            display_name="Bad",
            department="Office",
            form_name="",
            source=Source.TASKS,
            group_by=["hazard_level"],
            columns=[ReportColumn("Sum", Aggregate.SUM, "team")],
        )
    assert {v.field for v in bad.value.violations} == {
        "report_template.group_by[0]",
        "report_template.columns[0].field",
    }
    with pytest.raises(InvalidArgument) as bad:
        await loop_desk.create_template(
            who(TOWN),
            TOWN,
            "bad",
            display_name="Bad",
            department="Office",
            form_name=f"{tenancy.tenant_name(TOWN)}/forms/x",
            source=Source.EVENTS,
            group_by=[],
            columns=[ReportColumn("N", Aggregate.COUNT)],
        )
    assert [v.field for v in bad.value.violations] == ["report_template.form"]


async def test_without_the_loop_services_a_run_says_what_to_set(forms_store: Any) -> None:
    desk = FormsDesk(forms_store, clock=lambda: NOW)
    await desk.create_template(
        who(TOWN),
        TOWN,
        "events",
        display_name="Events",
        department="Office",
        form_name="",
        source=Source.EVENTS,
        group_by=[],
        columns=[ReportColumn("N", Aggregate.COUNT)],
    )
    with pytest.raises(FailedPrecondition, match="EVENTS_ADDRESS"):
        await desk.run(who(TOWN), TOWN, "events")


async def test_the_contract_carries_source_and_period(loop_desk: FormsDesk) -> None:
    servicer = FormsServicer(loop_desk)
    column = forms_pb.ReportColumn
    token = principal_var.set(who(TOWN))
    try:
        made = await servicer.CreateReportTemplate(
            forms_pb.CreateReportTemplateRequest(
                parent=tenancy.tenant_name(TOWN),
                report_template_id="tasks-week",
                report_template=forms_pb.ReportTemplate(
                    display_name="Tasks this week",
                    department="Town command centre",
                    source=forms_pb.ReportTemplate.SOURCE_TASKS,
                    period_days=7,
                    columns=[column(label="Tasks", aggregate=column.AGGREGATE_COUNT)],
                ),
            ),
            None,
        )
        again = await servicer.GetReportTemplate(
            forms_pb.GetReportTemplateRequest(name=made.name), None
        )
    finally:
        principal_var.reset(token)
    assert again.source == forms_pb.ReportTemplate.SOURCE_TASKS and again.period_days == 7
    assert again.form == ""


def test_an_events_report_counts_per_twin_entity() -> None:
    from services.empower.domain.forms_model import ReportTemplate, Schedule
    from services.empower.domain.report_sources import EVENTS_FORM, EventFact, event_row
    from services.empower.domain.reports import compute

    def fact(n: int, entity: str, category: str) -> EventFact:
        return EventFact(f"e{n}", XINGMING, category, "reported", "twin_rule", 3, "C1", NOW, entity)

    truck = f"{tenancy.tenant_name(XINGMING)}/entities/truck-07"
    rows = [
        event_row(fact(1, truck, "muck.off_route")),
        event_row(fact(2, truck, "muck.off_route")),
        event_row(fact(3, truck, "muck.stopped_outside_site")),
        event_row(fact(4, "", "environment.garbage")),
    ]
    template = ReportTemplate(
        id="per-truck",
        tenant=XINGMING,
        display_name="Violations per truck",
        department="Urban management",
        form="",
        group_by=("entity", "month"),
        columns=(
            ReportColumn("Truck", Aggregate.GROUP, "entity"),
            ReportColumn("Off route", Aggregate.COUNT_IF, "category", "muck.off_route"),
        ),
        schedule=Schedule.NONE,
        create_time=NOW,
        source=Source.EVENTS,
    )
    _, table = compute(template, EVENTS_FORM, rows)
    assert table == (("", "0"), ("truck-07", "2"), ("Total", "2"))

"""Filters, ordering and dashboard statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.events.domain.categories import DEFAULT_CATEGORIES
from services.events.domain.model import State, StatisticsRow
from services.events.domain.queries import to_filters
from services.events.domain.statistics import summarise
from services.kit import tenancy
from services.kit.errors import InvalidArgument
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.events.test_events_api import cell_point, md, report

T0 = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


def test_filters_are_typed_and_checked():
    filters = to_filters(
        'state = "reported" AND create_time >= "2026-11-01T00:00:00Z" AND description : "bin"',
        "create_time asc",
    )
    assert filters == {
        "state": "reported",
        "created_from": datetime(2026, 11, 1, tzinfo=UTC),
        "text": "bin",
        "order": "asc",
    }
    for bad, field in [
        ('create_time >= "yesterday"', "filter"),
        ('create_time >= "2026-11-01T00:00:00"', "filter"),
        ('state = "lost"', "filter"),
        ('grid_cell > "a"', "filter"),
    ]:
        with pytest.raises(InvalidArgument) as info:
            to_filters(bad)
        assert info.value.violations[0].field == field
    with pytest.raises(InvalidArgument) as info:
        to_filters("", "priority")
    assert info.value.violations[0].field == "order_by"


def test_statistics_count_breaches_and_time_to_resolve():
    rows = [
        # Garbage has a 24 h SLA: resolved in 2 h (met) and in 30 h (breached).
        StatisticsRow("environment.garbage", State.CLOSED, "g1", T0, T0 + timedelta(hours=2)),
        StatisticsRow("environment.garbage", State.RESOLVED, "g1", T0, T0 + timedelta(hours=30)),
        # A smoke alarm (5 min SLA) still open after an hour: breached.
        StatisticsRow("safety.smoke_alarm", State.DISPATCHED, "g2", T0, None),
        # Rejected and unresolved: no SLA to breach.
        StatisticsRow("roads.damage", State.REJECTED, "g2", T0 + timedelta(hours=20), None),
    ]
    stats = summarise(rows, now=T0 + timedelta(hours=40), categories=DEFAULT_CATEGORIES)
    assert stats.total == 4
    assert stats.by_state == {"closed": 1, "resolved": 1, "dispatched": 1, "rejected": 1}
    assert stats.by_grid_cell == {"g1": 2, "g2": 2}
    assert stats.by_day == {"2026-11-01": 3, "2026-11-02": 1}  # 21:00 UTC is the next day
    assert stats.sla_breach_rate == pytest.approx(2 / 3)
    assert stats.resolved_count == 2
    assert stats.mean_hours_to_resolve == pytest.approx(16.0)


async def test_list_by_time_text_and_order(events, grid_index):
    names = []
    for i, text in enumerate(["broken bin lid", "litter by the pond", "bin overflowing"]):
        _, lon, lat = cell_point(grid_index, XINGMING, 3 * i)
        names.append(
            (
                await events.stub.CreateEvent(report(lon, lat, f"q{i}", text=text), metadata=md())
            ).name
        )
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(
            parent=tenancy.tenant_name(TOWN),
            filter='description : "bin"',
            order_by="create_time asc",
        ),
        metadata=md(),
    )
    assert [e.name for e in page.events] == [names[0], names[2]]
    first = await events.stub.GetEvent(pb.GetEventRequest(name=names[1]), metadata=md())
    since = first.create_time.ToDatetime(tzinfo=UTC).isoformat()
    later = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN), filter=f'create_time >= "{since}"'),
        metadata=md(),
    )
    assert [e.name for e in later.events] == [names[2], names[1]]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.ListEvents(
            pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN), order_by="random"),
            metadata=md(),
        )
    assert [v.field for v in failure_of(info.value).violations] == ["order_by"]


async def test_statistics_over_grpc(events, grid_index):
    for i in range(4):
        _, lon, lat = cell_point(grid_index, XINGMING, 2 * i)
        created = await events.stub.CreateEvent(report(lon, lat, f"s{i}"), metadata=md())
        if i == 0:
            for state in (
                pb.Event.STATE_ACCEPTED,
                pb.Event.STATE_DISPATCHED,
                pb.Event.STATE_IN_PROGRESS,
                pb.Event.STATE_RESOLVED,
            ):
                await events.stub.TransitionEvent(
                    pb.TransitionEventRequest(name=created.name, state=state), metadata=md()
                )
    stats = await events.stub.GetEventStatistics(
        pb.GetEventStatisticsRequest(parent=tenancy.tenant_name(TOWN)), metadata=md()
    )
    assert stats.total == 4
    assert dict(stats.by_state) == {"reported": 3, "resolved": 1}
    assert stats.resolved_count == 1
    assert stats.sla_breach_rate == 0.0
    assert sum(stats.by_day.values()) == 4


async def test_a_town_gets_a_per_village_breakdown_and_filters_take_either_tenant_form(
    events, grid_index
):
    for i, village in enumerate((XINGMING, XINGMING, XIANGYANG)):
        _, lon, lat = cell_point(grid_index, village, i)
        await events.stub.CreateEvent(report(lon, lat, f"v{i}"), metadata=md())
    town = tenancy.tenant_name(TOWN)
    stats = await events.stub.GetEventStatistics(
        pb.GetEventStatisticsRequest(parent=town), metadata=md()
    )
    assert dict(stats.by_village) == {XINGMING: 2, XIANGYANG: 1}
    for form in (XINGMING, tenancy.path_to_id(XINGMING)):
        only = await events.stub.GetEventStatistics(
            pb.GetEventStatisticsRequest(parent=town, filter=f'village = "{form}"'),
            metadata=md(),
        )
        assert dict(only.by_village) == {XINGMING: 2}, form
        listed = await events.stub.ListEvents(
            pb.ListEventsRequest(parent=town, filter=f'village = "{form}"'), metadata=md()
        )
        assert [e.village for e in listed.events] == [XINGMING, XINGMING], form
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.ListEvents(
            pb.ListEventsRequest(parent=town, filter='village = "Xingming Village"'),
            metadata=md(),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(info.value).violations[0].field == "filter"

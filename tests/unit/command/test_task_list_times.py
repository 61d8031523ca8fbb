"""Listing tasks by create time: the filter's terms, and both stores applying them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.command.api import _task_filters
from services.command.domain.model import Position, RoutingDecision, Task, TaskState
from services.command.domain.ports import NewTask
from services.kit.errors import InvalidArgument

TOWN = "sh/jiading/anting"
VILLAGE = f"{TOWN}/xingming"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def task(n: int, created: datetime) -> Task:
    return Task(
        tenant=VILLAGE,
        id=f"tk{n:03d}",
        event=f"tenants/sh-jiading-anting-xingming/events/ev{n:03d}",
        state=TaskState.ACCEPTED,
        category="environment.garbage",
        severity=2,
        grid_cell="g01",
        village=VILLAGE,
        location=Position(121.16, 31.29),
        routing=RoutingDecision("", "by hand", "grid_worker", ""),
        create_time=created,
        update_time=created,
    )


async def test_tasks_are_listed_by_create_time_bounds(store):
    # One task a day through November, and the first of December.
    await store.create_tasks([NewTask(task(n, T0 + timedelta(days=n)), [], []) for n in range(31)])

    async def ids(expression: str) -> list[str]:
        found = await store.list_tasks(TOWN, _task_filters(expression), 100, 0)
        return [t.id for t in found]

    november = 'create_time >= "2026-11-01T00:00:00Z" AND create_time < "2026-12-01T00:00:00Z"'
    assert await ids(november) == [f"tk{n:03d}" for n in range(29, -1, -1)]  # newest first
    assert await ids('create_time > "2026-11-30T00:00:00Z"') == ["tk030"]
    assert await ids('create_time <= "2026-11-02T00:00:00+00:00"') == ["tk001", "tk000"]
    # An offset is read as UTC: 08:00 in Shanghai on 3 November is midnight UTC.
    assert await ids('create_time < "2026-11-03T08:00:00+08:00"') == ["tk001", "tk000"]
    both = 'create_time >= "2026-11-10T00:00:00Z" AND state = "accepted" AND grid_cell = "g01"'
    assert len(await ids(both)) == 22  # 10 November to 1 December
    assert await ids('create_time >= "2026-12-02T00:00:00Z"') == []


@pytest.mark.parametrize(
    "expression, words",
    [
        ('create_time >= "last week"', "RFC 3339"),
        ('create_time >= "2026-11-01T00:00:00"', "time zone"),
        ('create_time >= "9999-12-31T23:59:59-05:00"', "between the years"),
        ('create_time = "2026-11-01T00:00:00Z"', "not '='"),
        (
            'create_time >= "2026-11-01T00:00:00Z" AND create_time >= "2026-11-02T00:00:00Z"',
            "twice",
        ),
        ('state = "accepted" AND state = "done"', "twice"),
        ('created >= "2026-11-01T00:00:00Z"', "cannot filter"),
    ],
)
def test_a_bad_time_term_is_invalid_argument_on_the_filter(expression, words):
    with pytest.raises(InvalidArgument) as refused:
        _task_filters(expression)
    [violation] = refused.value.violations
    assert violation.field == "filter"
    assert words in violation.description

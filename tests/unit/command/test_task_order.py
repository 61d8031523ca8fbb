"""Ordering a task list (`order_by`): the next one due first, tasks without that
deadline last either way, and both stores agreeing; bad orders name `order_by`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.command.domain.ports import NewTask
from services.command.domain.task_order import TaskOrder, TaskOrderField, parse_task_order
from services.kit.errors import InvalidArgument
from tests.unit.command.test_task_list_times import TOWN, task

T0 = datetime(2026, 11, 1, tzinfo=UTC)
# Task n is created on day n; its deadline is (6 - n) days later, none for task 3.
DUE = {0: 6, 1: 4, 2: 2, 3: None, 4: 0}


async def test_tasks_come_in_the_order_asked_with_missing_deadlines_last(store):
    made = []
    for n, days in DUE.items():
        created = T0 + timedelta(days=n)
        due = None if days is None else created + timedelta(days=days)
        made.append(NewTask(replace(task(n, created), resolution_due=due), [], []))
    await store.create_tasks(made)

    async def ids(order: str, limit: int = 100, offset: int = 0) -> list[str]:
        found = await store.list_tasks(TOWN, {}, limit, offset, parse_task_order(order))
        return [t.id[-1] for t in found]

    # Deadlines: task 4 on day 4, 2 on day 4, 1 on day 5, 0 on day 6 (ties by id).
    assert await ids("due_time") == ["2", "4", "1", "0", "3"]
    assert await ids("due_time desc") == ["0", "1", "4", "2", "3"]
    assert await ids("") == ["4", "3", "2", "1", "0"]  # newest first
    assert await ids("create_time asc") == ["0", "1", "2", "3", "4"]
    assert await ids("response_due_time") == ["0", "1", "2", "3", "4"]  # none has one: by id
    # Offset pages follow the order: neither repeats nor skips.
    pages = [await ids("due_time", 2, offset) for offset in (0, 2, 4)]
    assert pages == [["2", "4"], ["1", "0"], ["3"]]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("priority", "one of: create_time, update_time, due_time, response_due_time"),
        ("due_time sideways", "asc or desc"),
        ("due_time desc extra", "asc or desc"),
        ("due_time, create_time", "one field"),
    ],
)
def test_a_bad_order_names_order_by(text, words):
    with pytest.raises(InvalidArgument) as refused:
        parse_task_order(text)
    [violation] = refused.value.violations
    assert violation.field == "order_by" and words in violation.description


def test_orders_read_as_written():
    assert parse_task_order("  ") == TaskOrder()
    assert parse_task_order("due_time DESC") == TaskOrder(TaskOrderField.DUE_TIME, True)
    assert parse_task_order("update_time asc").text == "update_time"

"""The gateway sends reports that arrive together as one BatchCreateEvents call; each
still gets its own answer: its event, whether it was a replay, or its own error."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import grpc

from gateway.event_creates import EventCreates
from gateway.event_reads import EventReads
from tests.conftest import XINGMING
from tests.unit.events.test_events_api import cell_point, md, report


class CountingStub:
    """The events stub, counting the calls the gateway makes through it."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        self.calls[name] += 1
        return getattr(self.stub, name)


def reports(grid_index: Any, prefix: str, n: int) -> list[Any]:
    return [
        report(*cell_point(grid_index, XINGMING, i)[1:], f"{prefix}{i}", category="safety.flooding")
        for i in range(n)
    ]


async def create_all(creates: EventCreates, stub: Any, items: list[Any]) -> list[Any]:
    metadata = md()
    caller = metadata[:2]  # the signed principal
    return await asyncio.gather(
        *(creates.create(stub, r, metadata, caller) for r in items), return_exceptions=True
    )


async def test_reports_arriving_together_share_one_call_and_each_get_their_event(
    events, grid_index
):
    stub, creates = CountingStub(events.stub), EventCreates()
    first = await create_all(creates, stub, reports(grid_index, "g", 20))
    assert all(not isinstance(r, BaseException) for r in first), first
    assert [replayed for _, replayed in first] == [False] * 20
    assert len({event.name for event, _ in first}) == 20
    assert stub.calls["BatchCreateEvents"] >= 1
    assert sum(stub.calls.values()) <= 3  # a lone first one, then the rest together
    assert await events.count_rows() == 20

    again = await create_all(creates, stub, reports(grid_index, "g", 20))
    assert [event.name for event, _ in again] == [event.name for event, _ in first]
    assert [replayed for _, replayed in again] == [True] * 20
    assert await events.count_rows() == 20


async def test_a_bad_report_fails_alone_and_the_others_are_not_replays(events, grid_index):
    stub, creates = CountingStub(events.stub), EventCreates()
    items = reports(grid_index, "m", 10)
    reused_first = report(*cell_point(grid_index, XINGMING, 12)[1:], "same-key")
    await events.stub.CreateEvent(reused_first, metadata=md())
    items.insert(3, report(100.0, 30.0, "far-away"))
    items.insert(6, report(*cell_point(grid_index, XINGMING, 13)[1:], "same-key"))

    results = await create_all(creates, stub, items)
    outside, reused = results.pop(3), results.pop(5)
    assert isinstance(outside, grpc.aio.AioRpcError)
    assert outside.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(reused, grpc.aio.AioRpcError)
    assert reused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert all(not isinstance(r, BaseException) for r in results), results
    assert [replayed for _, replayed in results] == [False] * 10
    assert stub.calls["CreateEvent"] >= 12  # the failed batch was sent again one by one
    assert await events.count_rows() == 11


async def test_a_lone_report_goes_as_create_event(events, grid_index):
    stub, creates = CountingStub(events.stub), EventCreates()
    ((event, replayed),) = await create_all(creates, stub, reports(grid_index, "one", 1))
    assert not replayed and event.grid_cell
    assert stub.calls == Counter({"CreateEvent": 1})


async def test_reads_arriving_together_share_one_call_and_a_missing_one_fails_alone(
    events, grid_index
):
    created = []
    for item in reports(grid_index, "r", 12):
        created.append(await events.stub.CreateEvent(item, metadata=md()))
    stub, reads = CountingStub(events.stub), EventReads()
    metadata = md()
    caller = metadata[:2]
    names = [e.name for e in created]

    found = await asyncio.gather(*(reads.get(stub, n, metadata, caller) for n in names))
    assert [e.name for e in found] == names
    assert stub.calls["BatchGetEvents"] >= 1
    assert sum(stub.calls.values()) <= 3  # a lone first one, then the rest together

    missing = names[0].rsplit("/", 1)[0] + "/nosuch"
    asked = [*names[:5], missing, *names[5:]]
    results = await asyncio.gather(
        *(reads.get(stub, n, metadata, caller) for n in asked), return_exceptions=True
    )
    failed = results.pop(5)
    assert isinstance(failed, grpc.aio.AioRpcError)
    assert failed.code() == grpc.StatusCode.NOT_FOUND
    assert [e.name for e in results] == names

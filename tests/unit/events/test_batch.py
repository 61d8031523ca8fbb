"""BatchCreateEvents: many reports, one map call, one transaction, safe to retry."""

from __future__ import annotations

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.kit import tenancy
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.events.test_events_api import cell_point, md, report


def batch(grid_index, n: int, prefix: str) -> pb.BatchCreateEventsRequest:
    requests = []
    for i in range(n):
        village = XINGMING if i % 2 else XIANGYANG
        _, lon, lat = cell_point(grid_index, village, i)
        item = report(lon, lat, f"{prefix}-{i}", category="safety.flooding")
        item.parent = ""
        requests.append(item)
    return pb.BatchCreateEventsRequest(parent=tenancy.tenant_name(TOWN), requests=requests)


async def test_a_batch_is_located_stored_and_safe_to_retry(events, grid_index):
    request = batch(grid_index, 40, "b")
    first = await events.stub.BatchCreateEvents(request, metadata=md())
    assert len(first.events) == 40
    assert list(first.replayed) == [False] * 40
    for i, event in enumerate(first.events):
        expected, _, _ = cell_point(grid_index, XINGMING if i % 2 else XIANGYANG, i)
        assert event.grid_cell == expected
    again = await events.stub.BatchCreateEvents(request, metadata=md())
    assert [e.name for e in again.events] == [e.name for e in first.events]
    assert list(again.replayed) == [True] * 40
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN), page_size=1000), metadata=md()
    )
    assert len(page.events) == 40


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda r: setattr(r.requests[3].event, "category", "no.such"),
            "requests[3].event.category",
        ),
        (lambda r: setattr(r.requests[5], "request_id", ""), "requests[5].request_id"),
        (
            lambda r: setattr(r.requests[7].event.location, "longitude", 100.0),
            "requests[7].event.location",
        ),
        (lambda r: setattr(r.requests[2], "parent", "tenants/sh"), "requests[2].parent"),
    ],
)
async def test_one_bad_request_names_its_index_and_stores_nothing(
    events, grid_index, mutate, field
):
    request = batch(grid_index, 10, "bad")
    mutate(request)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.BatchCreateEvents(request, metadata=md())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in failure_of(info.value).violations]
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN)), metadata=md()
    )
    assert len(page.events) == 0


async def test_batches_over_the_limit_are_refused(events, grid_index):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.BatchCreateEvents(batch(grid_index, 1001, "big"), metadata=md())
    assert [v.field for v in failure_of(info.value).violations] == ["requests"]

"""One event per request id, on both stores, when a batch repeats a key or another
create takes it meanwhile: a refused batch stores nothing, and a report that made its
event is answered as made (not as a replay)."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest

from gateway.event_creates import EventCreates
from grassroots.events.v1 import events_service_pb2 as pb
from services.events.domain.model import NewReport, Point, Source
from tests.conftest import XINGMING
from tests.unit.events.test_events_api import cell_point, md, report
from tests.unit.events.test_gateway_batches import CountingStub, create_all, reports


async def test_a_gateway_batch_holding_a_key_twice_answers_each_report_as_it_happened(
    events, grid_index
):
    """Ten fresh reports and one key sent twice with two bodies, all in one gateway
    batch: the ten and the key's first report are made, the other body is refused."""
    stub, creates = CountingStub(events.stub), EventCreates()
    items = reports(grid_index, "m", 10)
    items.insert(3, report(*cell_point(grid_index, XINGMING, 12)[1:], "same-key"))
    items.insert(6, report(*cell_point(grid_index, XINGMING, 13)[1:], "same-key"))
    results = await create_all(creates, stub, items)
    reused = results.pop(6)
    assert isinstance(reused, grpc.aio.AioRpcError), reused
    assert reused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await events.count_rows() == 11
    assert [replayed for _, replayed in results] == [False] * 11, stub.calls


async def test_a_batch_repeating_a_key_with_another_body_stores_nothing(events, grid_index):
    items = reports(grid_index, "b", 4)
    items.append(report(*cell_point(grid_index, XINGMING, 12)[1:], "b0"))
    request = pb.BatchCreateEventsRequest(parent=items[0].parent, requests=items)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.stub.BatchCreateEvents(request, metadata=md())
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "requests[0] and requests[4]" in caught.value.details()
    assert await events.count_rows() == 0


async def test_a_batch_repeating_a_key_with_the_same_body_makes_one_event(events, grid_index):
    items = reports(grid_index, "s", 3)
    items.append(items[1])
    request = pb.BatchCreateEventsRequest(parent=items[0].parent, requests=items)
    call = events.stub.BatchCreateEvents(request, metadata=md())
    answer = await call
    assert answer.events[3].name == answer.events[1].name
    assert len({e.name for e in answer.events}) == 3
    assert await events.count_rows() == 3


async def test_a_key_taken_by_another_create_meanwhile_refuses_the_whole_batch(
    events, grid_index, monkeypatch
):
    """The batch looked its keys up before another create with another body took one
    of them: the refusal comes from inside the transaction, which stores nothing."""
    taken = report(*cell_point(grid_index, XINGMING, 12)[1:], "t1", text="another report")
    await events.stub.CreateEvent(taken, metadata=md())
    store = events.store
    looked_up_too_early = store.find_by_requests

    async def before_the_other_create(keys):
        return {}

    monkeypatch.setattr(store, "find_by_requests", before_the_other_create)
    items = reports(grid_index, "t", 4)  # t1 is this batch's second report
    request = pb.BatchCreateEventsRequest(parent=items[0].parent, requests=items)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.stub.BatchCreateEvents(request, metadata=md())
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await events.count_rows() == 1  # the other create's event alone
    monkeypatch.setattr(store, "find_by_requests", looked_up_too_early)
    alone = await asyncio.gather(
        *(events.stub.CreateEvent(r, metadata=md()) for r in items[2:]),
    )
    assert len(alone) == 2 and await events.count_rows() == 3


async def test_a_bad_report_after_a_replay_is_named_by_its_own_index(events, grid_index):
    first = reports(grid_index, "r", 1)[0]
    await events.stub.CreateEvent(first, metadata=md())
    bad = reports(grid_index, "s", 2)[1]
    bad.event.media_uris.append(f"{first.parent}/attachments/at_01nonexistent")
    request = pb.BatchCreateEventsRequest(parent=first.parent, requests=[first, bad])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.stub.BatchCreateEvents(request, metadata=md())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[1].event.media_uris[0]" in caught.value.details()
    assert "requests[0]" not in caught.value.details()


async def test_bodies_that_differ_only_where_a_bar_splits_them_are_different_requests(
    events, grid_index
):
    a = report(*cell_point(grid_index, XINGMING, 3)[1:], "bar")
    a.event.reporter_contact, a.event.address = "13812345678|Room 5", "East gate"
    await events.stub.CreateEvent(a, metadata=md())
    b = report(*cell_point(grid_index, XINGMING, 3)[1:], "bar")
    b.event.reporter_contact, b.event.address = "13812345678", "Room 5|East gate"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.stub.CreateEvent(b, metadata=md())
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_concurrent_creates_with_a_key_twice_answer_first_creates_as_first(
    events, grid_index
):
    """The events service groups concurrent CreateEvent calls itself."""
    items = reports(grid_index, "c", 10)
    items.insert(3, report(*cell_point(grid_index, XINGMING, 12)[1:], "same-key"))
    items.insert(6, report(*cell_point(grid_index, XINGMING, 13)[1:], "same-key"))

    async def one(r):
        call = events.stub.CreateEvent(r, metadata=md())
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return dict(await call.trailing_metadata()).get("x-idempotent-replayed")

    answers = await asyncio.gather(*(one(r) for r in items))
    assert await events.count_rows() == 11
    assert sorted([answers[3], answers[6]]) == ["FAILED_PRECONDITION", "false"], answers
    assert [a for i, a in enumerate(answers) if i not in (3, 6)] == ["false"] * 10, answers


async def test_a_batch_read_names_the_missing_event_by_its_index(events, grid_index):
    first = reports(grid_index, "g", 1)[0]
    stored = await events.stub.CreateEvent(first, metadata=md())
    missing = stored.name.rsplit("/", 1)[0] + "/ev_01nonexistent"
    request = pb.BatchGetEventsRequest(names=[stored.name, missing])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.stub.BatchGetEvents(request, metadata=md())
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "names[1]" in str(caught.value.trailing_metadata())


def a_report(**changes: str) -> NewReport:
    fields = {"reporter_contact": "13812345678", "address": "East gate", **changes}
    return NewReport(
        parent="tenants/sh",
        category="environment.garbage",
        description="bins overflowing",
        location=Point(121.2, 31.3),
        source=Source.RESIDENT,
        request_id="r-1",
        reporter="users/test",
        **fields,
    )


def test_a_key_stored_in_the_earlier_form_still_recognises_its_retry() -> None:
    """Keys stored before the prefixed fingerprint hold sha256 of the fields joined
    with '|': a retry of such a request is still the same request, another is not."""
    stored = a_report()
    fields = ["environment.garbage", "bins overflowing", "121.2", "31.3", "EPSG:4326"]
    fields += ["resident", "0", "", "13812345678", "East gate"]
    joined = "|".join(fields)
    earlier = hashlib.sha256(joined.encode()).hexdigest()
    assert stored.same_request(earlier)
    assert not a_report(address="West gate").same_request(earlier)
    assert stored.same_request(stored.fingerprint())
    assert stored.fingerprint().startswith("v2:") and stored.fingerprint() != earlier
    split = a_report(reporter_contact="13812345678|Room 5", address="East gate")
    moved = a_report(reporter_contact="13812345678", address="Room 5|East gate")
    assert not moved.same_request(split.fingerprint())

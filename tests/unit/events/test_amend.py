"""Staff correct an open event's category or place (UpdateEvent), on both stores."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit.status import failure_of
from tests.conftest import COMPONENT_SCOPES, TOWN, XIANGYANG, XINGMING, principal_of
from tests.unit.events.test_events_api import cell_point, md, report
from tests.unit.events.test_outbox import read_all

NOT_STAFF = frozenset(COMPONENT_SCOPES - {"events:manage"})


def amend(name, *, category=None, point=None, etag="", note="", paths=None):
    event = pb.Event(name=name, etag=etag)
    if category is not None:
        event.category = category
    if point is not None:
        event.location.CopyFrom(geo_pb2.GeoPoint(longitude=point[0], latitude=point[1]))
    mask = (
        paths
        if paths is not None
        else [p for p, v in (("category", category), ("location", point)) if v is not None]
    )
    return pb.UpdateEventRequest(event=event, update_mask=FieldMask(paths=mask), note=note)


def fields(failure) -> str:
    return ",".join(v.field for v in failure.violations)


async def refused(call) -> tuple[grpc.StatusCode, object]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), failure_of(info.value)


async def test_staff_recategorise_and_move_an_event_and_each_change_is_published(
    events, grid_index
):
    _, lon, lat = cell_point(grid_index, XINGMING, 1)
    other_cell, olon, olat = cell_point(grid_index, XINGMING, 4)
    created = await events.stub.CreateEvent(report(lon, lat, "amend-1"), metadata=md())

    recategorised = await events.stub.UpdateEvent(
        amend(created.name, category="roads.damage", etag=created.etag, note="a pothole"),
        metadata=md(),
    )
    assert recategorised.category == "roads.damage"
    assert recategorised.state == created.state  # a correction is not a move
    assert recategorised.etag != created.etag
    last = recategorised.timeline[-1]
    assert last.note == "category environment.garbage -> roads.damage: a pothole"
    assert last.from_state == last.to_state == created.state

    moved = await events.stub.UpdateEvent(amend(created.name, point=(olon, olat)), metadata=md())
    assert moved.grid_cell == other_cell
    assert (moved.location.longitude, moved.location.latitude) == pytest.approx((olon, olat))
    assert moved.category == "roads.damage"

    again = await events.stub.UpdateEvent(amend(created.name, point=(olon, olat)), metadata=md())
    assert again.etag == moved.etag  # nothing to correct: no new version, nothing published

    deliveries = await read_all(events.bus, expected=3)
    assert [d.message.type for d in deliveries] == [
        "event.reported",
        "event.recategorized",
        "event.located_again",
    ]
    assert pb.Event.FromString(deliveries[2].message.payload).grid_cell == other_cell
    stored = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert stored.grid_cell == other_cell and stored.category == "roads.damage"


async def test_a_correction_names_the_field_at_fault_and_changes_nothing(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING, 2)
    _, xlon, xlat = cell_point(grid_index, XIANGYANG, 0)
    created = await events.stub.CreateEvent(report(lon, lat, "amend-2"), metadata=md())
    stub = events.stub

    code, failure = await refused(stub.UpdateEvent(amend(created.name, paths=[]), metadata=md()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields(failure) == "update_mask"
    code, failure = await refused(
        stub.UpdateEvent(amend(created.name, paths=["state"]), metadata=md())
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields(failure) == "update_mask"
    code, failure = await refused(
        stub.UpdateEvent(amend(created.name, category="no.such"), metadata=md())
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields(failure) == "event.category"
    code, failure = await refused(
        stub.UpdateEvent(amend(created.name, point=(xlon, xlat)), metadata=md())
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields(failure) == "event.location"
    assert "outside the event's village" in failure.message
    code, failure = await refused(
        stub.UpdateEvent(amend(created.name, point=(lon, 95.0)), metadata=md())
    )
    assert fields(failure) == "event.location.latitude"
    code, _ = await refused(
        stub.UpdateEvent(amend(created.name, category="roads.damage", etag="stale"), metadata=md())
    )
    assert code == grpc.StatusCode.ABORTED
    worker = principal_of(TOWN, "users/worker", NOT_STAFF).to_metadata()
    code, failure = await refused(
        stub.UpdateEvent(amend(created.name, category="roads.damage"), metadata=worker)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = await refused(
        stub.UpdateEvent(amend(created.name, category="roads.damage"), metadata=md(XIANGYANG))
    )
    assert code == grpc.StatusCode.NOT_FOUND  # another village's event does not exist for it

    withdrawn = await stub.TransitionEvent(
        pb.TransitionEventRequest(name=created.name, state=pb.Event.STATE_WITHDRAWN),
        metadata=md(),
    )
    code, failure = await refused(
        stub.UpdateEvent(amend(created.name, category="roads.damage"), metadata=md())
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "withdrawn" in failure.message
    stored = await stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert stored.etag == withdrawn.etag
    assert (stored.category, stored.grid_cell) == (created.category, created.grid_cell)

"""The event lifecycle, duplicates, evaluations and comments over real gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pyproj
import pytest
import shapely

from grassroots.events.v1 import events_service_pb2 as pb
from services.events.domain import lifecycle
from services.events.domain.model import State
from services.kit.errors import FailedPrecondition
from services.kit.status import failure_of
from tests.conftest import XINGMING
from tests.unit.events.test_events_api import md, report

S = pb.Event
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture
def spot(grid_index):
    """The point of a Xingming grid cell farthest from the village's edge."""
    rows = [i for i, c in enumerate(grid_index.cells) if c.village == XINGMING]
    edge = shapely.union_all(grid_index.polygons[rows]).boundary
    points = shapely.point_on_surface(grid_index.polygons[rows])
    best = points[int(shapely.distance(points, edge).argmax())]
    return best.x, best.y


def test_every_state_has_rules_and_illegal_moves_name_the_current_state():
    assert set(lifecycle.TRANSITIONS) == set(State)
    lifecycle.check_transition(State.REPORTED, State.ACCEPTED)
    with pytest.raises(FailedPrecondition) as info:
        lifecycle.check_transition(State.REPORTED, State.CLOSED)
    assert "from reported" in info.value.message
    assert info.value.metadata["current_state"] == "reported"


async def move(events, name, state, etag="", who=None):
    return await events.stub.TransitionEvent(
        pb.TransitionEventRequest(name=name, state=state, note=f"to {state}", etag=etag),
        metadata=who or md(subject="users/handler"),
    )


async def test_a_report_goes_through_its_whole_life(events, spot):
    created = await events.stub.CreateEvent(report(*spot, "life"), metadata=md())
    event = created
    for state in (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS, S.STATE_RESOLVED):
        event = await move(events, created.name, state, event.etag)
        assert event.state == state
    closed = await events.stub.EvaluateEvent(
        pb.EvaluateEventRequest(name=created.name, score=5, text="quick", etag=event.etag),
        metadata=md(),
    )
    assert closed.state == S.STATE_CLOSED
    assert (closed.evaluation.score, closed.evaluation.text) == (5, "quick")
    stored = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert [e.to_state for e in stored.timeline] == [
        S.STATE_REPORTED,
        S.STATE_ACCEPTED,
        S.STATE_DISPATCHED,
        S.STATE_IN_PROGRESS,
        S.STATE_RESOLVED,
        S.STATE_CLOSED,
    ]
    assert [e.from_state for e in stored.timeline][1:] == [e.to_state for e in stored.timeline][:-1]
    assert stored.timeline[1].actor == "users/handler"
    assert stored.timeline[0].actor == "users/test"
    reopened = await move(events, created.name, S.STATE_REOPENED)
    assert reopened.state == S.STATE_REOPENED


async def test_illegal_transition_names_the_current_state_and_changes_nothing(events, spot):
    created = await events.stub.CreateEvent(report(*spot, "illegal"), metadata=md())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await move(events, created.name, S.STATE_RESOLVED)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    failure = failure_of(info.value)
    assert failure.reason == "ILLEGAL_TRANSITION"
    assert failure.metadata["current_state"] == "reported"
    assert "reported" in failure.message
    after = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert after.etag == created.etag
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await move(events, created.name, S.STATE_DUPLICATE)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stale_etag_is_refused_and_concurrent_updates_do_not_both_win(events, spot):
    created = await events.stub.CreateEvent(report(*spot, "etag"), metadata=md())
    accepted = await move(events, created.name, S.STATE_ACCEPTED, created.etag)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await move(events, created.name, S.STATE_DISPATCHED, created.etag)
    assert info.value.code() == grpc.StatusCode.ABORTED
    results = await asyncio.gather(
        move(events, created.name, S.STATE_DISPATCHED, accepted.etag),
        move(events, created.name, S.STATE_REJECTED, accepted.etag),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, pb.Event)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].code() == grpc.StatusCode.ABORTED


async def test_only_the_reporter_evaluates_and_only_when_resolved(events, spot):
    created = await events.stub.CreateEvent(report(*spot, "eval"), metadata=md())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.EvaluateEvent(
            pb.EvaluateEventRequest(name=created.name, score=4), metadata=md()
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for state in (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS, S.STATE_RESOLVED):
        await move(events, created.name, state)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.EvaluateEvent(
            pb.EvaluateEventRequest(name=created.name, score=4), metadata=md(subject="users/x")
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.EvaluateEvent(
            pb.EvaluateEventRequest(name=created.name, score=6), metadata=md()
        )
    assert [v.field for v in failure_of(info.value).violations] == ["score"]


async def test_a_nearby_report_of_the_same_kind_is_a_duplicate(events, spot):
    lon, lat = spot
    original = await events.stub.CreateEvent(report(lon, lat, "o"), metadata=md())
    near_lon, near_lat, _ = GEOD.fwd(lon, lat, 45, 30)
    far_lon, far_lat, _ = GEOD.fwd(lon, lat, 45, 80)
    again = await events.stub.CreateEvent(
        report(near_lon, near_lat, "d"), metadata=md(subject="users/neighbour")
    )
    assert again.state == S.STATE_DUPLICATE
    assert again.duplicate_of == original.name
    other_kind = await events.stub.CreateEvent(
        report(near_lon, near_lat, "k", category="public.facility"), metadata=md()
    )
    assert other_kind.state == S.STATE_REPORTED
    far = await events.stub.CreateEvent(report(far_lon, far_lat, "f"), metadata=md())
    assert far.state == S.STATE_REPORTED
    await move(events, original.name, S.STATE_REJECTED)
    await move(events, far.name, S.STATE_REJECTED)
    after_close = await events.stub.CreateEvent(report(near_lon, near_lat, "a"), metadata=md())
    assert after_close.state == S.STATE_REPORTED


async def test_comments_are_kept_in_order(events, spot):
    created = await events.stub.CreateEvent(report(*spot, "c"), metadata=md())
    for text in ("first", "second"):
        await events.stub.AddComment(
            pb.AddCommentRequest(name=created.name, text=text), metadata=md()
        )
    event = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert [c.text for c in event.comments] == ["first", "second"]
    assert event.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.AddComment(
            pb.AddCommentRequest(name=created.name, text=" "), metadata=md()
        )
    assert [v.field for v in failure_of(info.value).violations] == ["text"]


async def test_contact_is_masked_for_others_and_severity_defaults(events, spot):
    request = report(*spot, "contact")
    request.event.reporter_contact = "13812345678"
    request.event.address = "By the east bridge, Xingming"
    request.event.media_uris.append("https://photos.example.cn/a.jpg")
    created = await events.stub.CreateEvent(request, metadata=md())
    assert created.address == "By the east bridge, Xingming"
    assert created.reporter_contact == "13812345678"
    assert created.severity == 2
    assert list(created.media_uris) == ["https://photos.example.cn/a.jpg"]
    other = await events.stub.GetEvent(
        pb.GetEventRequest(name=created.name), metadata=md(subject="users/someone")
    )
    assert other.reporter_contact == "138****5678"
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=created.name.split("/events/")[0]),
        metadata=md(XINGMING, subject="users/someone"),
    )
    assert {e.reporter_contact for e in page.events} == {"138****5678"}
    from services.kit.principal import Principal

    secretary = Principal(
        "users/secretary",
        XINGMING,
        scopes=frozenset({"events:read", "events:manage", "people:read_sensitive"}),
    ).to_metadata()
    full = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=secretary)
    assert full.reporter_contact == "13812345678"


@pytest.mark.parametrize(
    ("field", "value", "violation"),
    [
        ("severity", 9, "event.severity"),
        ("media_uris", ["ftp://x"], "event.media_uris[0]"),
        ("reporter_contact", "1" * 101, "event.reporter_contact"),
        ("address", "x" * 501, "event.address"),
    ],
)
async def test_bad_details_name_the_field(events, spot, field, value, violation):
    request = report(*spot, "details")
    if field == "media_uris":
        request.event.media_uris.extend(value)
    else:
        setattr(request.event, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(request, metadata=md())
    assert violation in [v.field for v in failure_of(info.value).violations]


async def test_resolved_events_close_themselves_after_the_configured_time(events, spot):
    from datetime import UTC, datetime, timedelta

    from services.events.domain.service import AUTO_CLOSER, EventHub

    created = await events.stub.CreateEvent(report(*spot, "auto"), metadata=md())
    other = await events.stub.CreateEvent(
        report(*spot, "auto2", category="public.facility"), metadata=md()
    )
    for state in (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS, S.STATE_RESOLVED):
        await move(events, created.name, state)
    hub = EventHub(events.store, locator=None)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    assert await hub.auto_close(now, timedelta(hours=72)) == 0
    assert await hub.auto_close(now + timedelta(hours=73), timedelta(hours=72)) == 1
    closed = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert closed.state == S.STATE_CLOSED
    assert closed.timeline[-1].actor == AUTO_CLOSER
    untouched = await events.stub.GetEvent(pb.GetEventRequest(name=other.name), metadata=md())
    assert untouched.state == S.STATE_REPORTED


async def test_a_phone_report_in_gcj02_is_stored_in_wgs84(events, spot):
    import numpy as np

    from services.kit import crs

    lon, lat = spot
    gcj_lon, gcj_lat = crs.wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    request = report(float(gcj_lon[0]), float(gcj_lat[0]), "gcj")
    request.event.location.crs = "GCJ-02"
    created = await events.stub.CreateEvent(request, metadata=md())
    plain = await events.stub.CreateEvent(
        report(lon, lat, "wgs", category="public.facility"), metadata=md()
    )
    assert created.grid_cell == plain.grid_cell
    _, _, metres = GEOD.inv(lon, lat, created.location.longitude, created.location.latitude)
    assert metres < 0.5
    assert created.location.crs == "EPSG:4326"


async def test_another_village_gets_not_found_whatever_etag_it_sends(events, spot):
    created = await events.stub.CreateEvent(report(*spot, "hidden"), metadata=md())
    neighbour = md("sh/jiading/anting/xiangyang", subject="users/n")
    for etag in ("", "stale", created.etag):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await move(
                events,
                created.name.replace("xingming", "xiangyang"),
                S.STATE_ACCEPTED,
                etag,
                who=neighbour,
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await move(
                events,
                "tenants/-/events/" + created.name.rsplit("/", 1)[1],
                S.STATE_ACCEPTED,
                etag,
                who=neighbour,
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    unchanged = await events.stub.GetEvent(pb.GetEventRequest(name=created.name), metadata=md())
    assert unchanged.etag == created.etag

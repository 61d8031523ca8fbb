"""An event's JSON is written straight from the message, without the pydantic model:
the bytes must be those the model would write, for every field the model has."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.routers.events import event_json, event_out
from gateway.schemas.common import GeoPointOut
from gateway.schemas.events import CommentOut, EvaluationOut, EventOut, TimelineEntryOut
from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2


def stamp(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def full_event() -> pb.Event:
    """Every field set, with non-ASCII text, a whole second and a sub-microsecond time."""
    return pb.Event(
        name="tenants/sh-jiading-anting-xingming/events/ev_01",
        category="road_damage",
        description='路面塌陷 "quoted" \\ and a newline\n',
        location=geo_pb2.GeoPoint(longitude=121.16234567, latitude=31.29, crs=""),
        source=pb.Event.SOURCE_GRID_PATROL,
        state=pb.Event.STATE_RESOLVED,
        village="sh/jiading/anting/xingming",
        grid_cell="xm-03",
        grid_worker="gw-xingming-03",
        create_time=stamp(1_764_000_000),
        update_time=stamp(1_764_000_123, 456_789_999),
        etag='W/"3"',
        duplicate_of="tenants/sh-jiading-anting-xingming/events/ev_00",
        timeline=[
            pb.TimelineEntry(
                actor="users/a", time=stamp(1_764_000_000), to_state=pb.Event.STATE_REPORTED
            ),
            pb.TimelineEntry(
                actor="users/b",
                time=stamp(1_764_000_100, 1_000),
                from_state=pb.Event.STATE_REPORTED,
                to_state=pb.Event.STATE_RESOLVED,
                note="修好了",
            ),
        ],
        evaluation=pb.Evaluation(score=4, text="ok", time=stamp(1_764_000_200, 999)),
        comments=[pb.Comment(author="users/c", text="谢谢", create_time=stamp(1_764_000_300))],
        severity=3,
        media_uris=["tenants/x/attachments/a1", "tenants/x/attachments/a2"],
        reporter_contact="138****5678",
        address="兴明路 12 号",
        parent="tenants/sh-jiading-anting-xingming/events/ev_p",
        entity="urn:ngsi-ld:SmokeDetector:1",
    )


def model_json(event: pb.Event) -> bytes:
    """What the routes answered before: the model built field by field from the
    message (protobuf's own datetimes), then dumped by pydantic."""

    def when(t: Timestamp) -> datetime:
        return t.ToDatetime(tzinfo=UTC)

    def state(n: int) -> str:
        return pb.Event.State.Name(n).removeprefix("STATE_").lower()  # type: ignore[arg-type]

    source = pb.Event.Source.Name(event.source or pb.Event.SOURCE_RESIDENT)  # type: ignore[arg-type]
    model = EventOut(
        id=event.name.rsplit("/", 1)[-1],
        name=event.name,
        category=event.category,
        description=event.description,
        location=GeoPointOut(
            longitude=event.location.longitude,
            latitude=event.location.latitude,
            crs=event.location.crs or "EPSG:4326",
        ),
        source=source.removeprefix("SOURCE_").lower(),  # type: ignore[arg-type]
        state=state(event.state),  # type: ignore[arg-type]
        village=event.village,
        grid_cell=event.grid_cell,
        grid_worker=event.grid_worker,
        create_time=when(event.create_time),
        update_time=when(event.update_time),
        etag=event.etag,
        severity=event.severity,
        media_uris=list(event.media_uris),
        reporter_contact=event.reporter_contact,
        address=event.address,
        entity=event.entity,
        duplicate_of=event.duplicate_of.rsplit("/", 1)[-1] if event.duplicate_of else None,
        parent=event.parent.rsplit("/", 1)[-1] if event.parent else None,
        timeline=[
            TimelineEntryOut(
                actor=t.actor,
                time=when(t.time),
                from_state=state(t.from_state) if t.from_state else None,  # type: ignore[arg-type]
                to_state=state(t.to_state),  # type: ignore[arg-type]
                note=t.note,
            )
            for t in event.timeline
        ],
        evaluation=EvaluationOut(
            score=event.evaluation.score,
            text=event.evaluation.text,
            time=when(event.evaluation.time),
        )
        if event.HasField("evaluation")
        else None,
        comments=[
            CommentOut(author=c.author, text=c.text, create_time=when(c.create_time))
            for c in event.comments
        ],
    )
    return model.model_dump_json().encode()


def test_full_event_is_the_models_json() -> None:
    event = full_event()
    assert event_json(event).body == model_json(event)


def test_bare_event_is_the_models_json() -> None:
    """Unset source reads as a resident's report, no crs as WGS84, absent links as null."""
    event = pb.Event(name="tenants/t/events/ev_2", state=pb.Event.STATE_REPORTED)
    body = event_json(event, 201).body
    assert body == model_json(event)
    model = EventOut.model_validate_json(body)
    assert (model.source, model.location.crs) == ("resident", "EPSG:4326")
    assert (model.duplicate_of, model.parent, model.evaluation) == (None, None, None)


def test_times_are_utc_to_the_microsecond() -> None:
    out = event_out(full_event())
    assert out.update_time == datetime(2025, 11, 24, 16, 2, 3, 456_789, tzinfo=UTC)
    assert out.timeline[1].time.microsecond == 1
    assert out.evaluation is not None and out.evaluation.time.microsecond == 0
    assert out.id == "ev_01" and out.duplicate_of == "ev_00" and out.parent == "ev_p"

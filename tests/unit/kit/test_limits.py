"""Field limits come from the contract and name every field at fault (ADR 22).

The server interceptor runs `limits.check` on every request; tests/unit/events shows
the answers over real gRPC (for example a 501-character address is
INVALID_ARGUMENT on `event.address`).
"""

from __future__ import annotations

import math

import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.kit import limits
from services.kit.errors import InvalidArgument


def _fields(message) -> list[str]:
    return [v.field for v in limits.violations(message)]


def test_the_contract_declares_the_limits():
    assert limits.of(pb.Event, "description") == limits.Limits(min_length=1, max_length=4000)
    assert limits.of(pb.Event, "severity").maximum == 5
    assert limits.of(pb.Event, "media_uris").max_items == 10
    with pytest.raises(LookupError):
        limits.of(pb.Event, "name")


def test_a_request_within_its_limits_passes():
    request = pb.CreateEventRequest(
        event=pb.Event(category="roads.damage", description="x" * 4000, severity=5),
        request_id="r-1",
    )
    assert _fields(request) == []
    limits.check(request)


def test_nested_and_repeated_values_are_named_by_their_path():
    event = pb.Event(
        description="x" * 4001,
        severity=6,
        address="a" * 501,
        media_uris=["https://x/" + "y" * 2048, *["https://x"] * 10],
    )
    request = pb.BatchCreateEventsRequest(
        requests=[
            pb.CreateEventRequest(event=pb.Event(description="fine"), request_id="ok"),
            pb.CreateEventRequest(event=event, request_id="no spaces allowed"),
        ]
    )
    assert set(_fields(request)) == {
        "requests[1].event.description",
        "requests[1].event.severity",
        "requests[1].event.address",
        "requests[1].event.media_uris",
        "requests[1].event.media_uris[0]",
        "requests[1].request_id",
    }
    with pytest.raises(InvalidArgument) as info:
        limits.check(request)
    assert "at most 4000" in info.value.message


def test_defaults_are_left_to_the_domain():
    # Empty and zero mean "not given": whether that is allowed is the domain's rule.
    assert _fields(pb.AddCommentRequest(text="")) == []
    assert _fields(pb.EvaluateEventRequest(score=0)) == []
    assert _fields(pb.EvaluateEventRequest(score=-1)) == ["score"]
    assert _fields(pb.AddCommentRequest(text="x" * 2001)) == ["text"]


def test_a_number_that_is_no_number_is_out_of_every_range():
    category = pb.Category(duplicate_radius_meters=math.nan)
    assert _fields(pb.CreateCategoryRequest(category=category)) == [
        "category.duplicate_radius_meters"
    ]


def test_patterns_match_in_full():
    assert _fields(pb.CreateCategoryRequest(category=pb.Category(code="animals.stray_dog"))) == []
    for code in ("Animals", "animals.", "a.b.c.d.e", "x" * 32):
        request = pb.CreateCategoryRequest(category=pb.Category(code=code))
        assert _fields(request) == ["category.code"], code


def test_only_fields_with_limits_are_walked():
    from grassroots.type.v1 import geo_pb2

    assert limits._plan(pb.GetEventRequest.DESCRIPTOR) == ()
    # A batch of points is never walked point by point: only its CRS name has a bound.
    steps = limits._plan(geo_pb2.CoordinateArrays.DESCRIPTOR)
    assert [step.field.name for step in steps] == ["crs"]

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


def test_only_fields_with_limits_or_text_are_walked():
    from grassroots.type.v1 import geo_pb2

    # A name has no limits, but as text it is walked for NUL.
    [step] = limits._plan(pb.GetEventRequest.DESCRIPTOR)
    assert (step.field.name, step.limits, step.text) == ("name", None, True)
    # A batch of points is never walked point by point: only its CRS name has a bound.
    steps = limits._plan(geo_pb2.CoordinateArrays.DESCRIPTOR)
    assert [step.field.name for step in steps] == ["crs"]


def test_nul_in_any_string_field_is_refused_naming_it():
    """PostgreSQL keeps no NUL in text: refused on every string field, declared limits
    or not, so both stores answer alike."""
    request = pb.CreateEventRequest(
        event=pb.Event(category="roads.damage", description="a\x00b", address="x\x00"),
    )
    assert sorted(_fields(request)) == ["event.address", "event.description"]
    with pytest.raises(InvalidArgument) as refused:
        limits.check(request)
    assert all("NUL" in v.description for v in refused.value.violations)
    assert _fields(pb.GetEventRequest(name="tenants/sh/events/e\x00")) == ["name"]  # no limits
    repeated = pb.Event(category="roads.damage", media_uris=["https://x/ok.jpg", "https://x/\x00"])
    assert _fields(repeated) == ["media_uris[1]"]


def test_nul_in_a_map_key_or_value_is_refused():
    from grassroots.empower.v1 import points_service_pb2 as points

    rule = points.PointsRule(match={"task_kind": "volun\x00teer", "ok": "fine"})
    assert _fields(rule) == ["match['task_kind']"]


def test_nul_in_a_struct_string_is_refused():
    from grassroots.map.v1 import map_service_pb2 as map_pb

    feature = map_pb.Feature()
    feature.properties.update({"name": "a\x00b", "height": 3})
    assert _fields(feature) == ["properties.fields['name'].string_value"]


def test_bytes_may_hold_nul():
    photo = pb.CreateAttachmentRequest(parent="tenants/sh", content=b"\xff\xd8\x00\x00\x01")
    assert _fields(photo) == []

"""NGSI-LD <-> twin: entity forms, q, georel and the temporal parameters, and refusals in
NGSI-LD's error shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.ngsi_ld.entities import (
    CORE_CONTEXT,
    Reading,
    TwinView,
    entity_id_of,
    parse_attributes,
    parse_entity,
    render,
)
from gateway.ngsi_ld.problems import ERROR_BASE, NgsiLdError
from gateway.ngsi_ld.query import (
    parse_aggregations,
    parse_duration,
    parse_geo,
    parse_q,
    parse_timerel,
    q_holds,
)

GAUGE = {
    "id": "urn:ngsi-ld:WaterLevelGauge:gauge-7",
    "type": "WaterLevelGauge",
    "name": {"type": "Property", "value": "Gauge at the east bridge"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [121.16, 31.3]}},
    "level_cm": {
        "type": "Property",
        "value": 31.5,
        "unitCode": "CMT",
        "observedAt": "2026-12-01T07:00:00Z",
    },
    "https://smartdatamodels.org/dataModel.Environment/battery": {"type": "Property", "value": 80},
    "refBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:b-12"},
    "@context": [CORE_CONTEXT],
}


def _refused(call, kind: str = "BadRequestData") -> NgsiLdError:  # type: ignore[no-untyped-def]
    with pytest.raises(NgsiLdError) as caught:
        call()
    assert caught.value.kind == kind
    assert caught.value.body()["type"] == ERROR_BASE + kind
    return caught.value


def test_an_entity_in_normalized_form() -> None:
    draft = parse_entity(GAUGE)
    assert (draft.entity_id, draft.entity_type) == ("gauge-7", "WaterLevelGauge")
    assert draft.location == (121.16, 31.3)
    assert draft.display_name == "Gauge at the east bridge"
    level, battery = draft.readings
    assert (level.attribute, level.value, level.unit) == ("level_cm", 31.5, "cm")
    assert level.observed == datetime(2026, 12, 1, 7, tzinfo=UTC)
    assert (battery.attribute, battery.value) == ("battery", 80.0)
    assert draft.relationships == [("refBuilding", "b-12")]


def test_concise_values_and_booleans() -> None:
    draft = parse_attributes({"smoke": True, "battery": {"value": 12}})
    assert [(r.attribute, r.value) for r in draft.readings] == [("smoke", 1.0), ("battery", 12.0)]


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"type": "X"},
        {"id": "gauge-7", "type": "X"},
        {"id": "urn:ngsi-ld:X:bad id", "type": "X"},
        {"id": "urn:ngsi-ld:X:g", "type": "1X"},
        {"id": "urn:ngsi-ld:X:g", "type": "X", "level": {"type": "Property", "value": "high"}},
        {"id": "urn:ngsi-ld:X:g", "type": "X", "level": {"type": "Property", "value": None}},
        {"id": "urn:ngsi-ld:X:g", "type": "X", "level": {"type": "LanguageProperty"}},
        {"id": "urn:ngsi-ld:X:g", "type": "X", "location": {"type": "GeoProperty", "value": {}}},
        {
            "id": "urn:ngsi-ld:X:g",
            "type": "X",
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [500, 1]},
            },
        },
        {"id": "urn:ngsi-ld:X:g", "type": "X", "level": {"value": 1, "observedAt": "soon"}},
        {"id": "urn:ngsi-ld:X:g", "type": "X", "r": {"type": "Relationship", "object": "b1"}},
    ],
)
def test_malformed_entities_are_bad_request_data(document: object) -> None:
    _refused(lambda: parse_entity(document))


def test_rendering_normalized_key_values_and_attrs() -> None:
    view = TwinView(
        "gauge-7",
        "WaterLevelGauge",
        display_name="Gauge",
        location=(121.16, 31.3),
        properties=[Reading("level_cm", 31.5, "cm", datetime(2026, 12, 1, 7, tzinfo=UTC))],
        relationships=[("refBuilding", "b-12", "Building"), ("refBuilding", "b-13", "Building")],
    )
    doc = render(view, context=[CORE_CONTEXT])
    assert doc["id"] == "urn:ngsi-ld:WaterLevelGauge:gauge-7"
    assert doc["level_cm"] == {
        "type": "Property",
        "value": 31.5,
        "unitCode": "CMT",
        "observedAt": "2026-12-01T07:00:00.000Z",
    }
    assert doc["location"]["value"] == {"type": "Point", "coordinates": [121.16, 31.3]}
    assert [r["object"] for r in doc["refBuilding"]] == [
        "urn:ngsi-ld:Building:b-12",
        "urn:ngsi-ld:Building:b-13",
    ]
    assert doc["@context"] == [CORE_CONTEXT]
    simple = render(view, key_values=True, attrs={"level_cm"})
    assert simple == {"id": doc["id"], "type": "WaterLevelGauge", "level_cm": 31.5}
    # What render writes, parse reads back.
    again = parse_entity(doc)
    assert again.readings[0].value == 31.5 and again.relationships[0] == ("refBuilding", "b-12")


def test_ids() -> None:
    assert entity_id_of("urn:ngsi-ld:Vehicle:truck_3") == "truck_3"
    _refused(lambda: entity_id_of("urn:ngsi-ld:truck"))


def test_q_and_or_and_existence() -> None:
    query = parse_q('level_cm>30;battery<=20|status=="alarm"|smoke')
    assert q_holds(query, {"level_cm": 31, "battery": 10})
    assert not q_holds(query, {"level_cm": 31, "battery": 50})
    assert q_holds(query, {"status": "alarm"})
    assert q_holds(query, {"smoke": 0})
    assert not q_holds(parse_q("level_cm!=3"), {})
    assert q_holds(parse_q("smoke==true"), {"smoke": 1.0})


@pytest.mark.parametrize(
    ("q", "kind"),
    [
        ("(a>1)", "TooComplexQuery"),
        ("a==1..5", "TooComplexQuery"),
        ("a.b>1", "TooComplexQuery"),
        ("a>", "BadRequestData"),
        ("a>x", "BadRequestData"),
        ("a;;b", "BadRequestData"),
        ("a>" + "1" * 1000, "TooComplexQuery"),
    ],
)
def test_q_outside_the_subset_is_refused(q: str, kind: str) -> None:
    _refused(lambda: parse_q(q), kind)


def test_georel_near_and_within() -> None:
    near = parse_geo("near;maxDistance==1000", "Point", "[121.16,31.3]", None)
    assert near is not None
    assert near.holds((121.165, 31.3))  # ~480 m east
    assert not near.holds((121.2, 31.3))
    assert not near.holds(None)
    box = near.box()
    assert box is not None and box[0] < 121.16 < box[2]
    square = "[[[121.1,31.2],[121.2,31.2],[121.2,31.4],[121.1,31.4],[121.1,31.2]]]"
    within = parse_geo("within", "Polygon", square, "location")
    assert within is not None and within.holds((121.15, 31.3)) and not within.holds((121.3, 31.3))
    assert parse_geo(None, None, None, None) is None


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "kind"),
    [
        ("near;maxDistance==1000", "Point", None, "BadRequestData"),
        ("near", "Point", "[1,2]", "BadRequestData"),
        ("near;maxDistance==-1", "Point", "[1,2]", "BadRequestData"),
        ("near;maxDistance==1000", "Polygon", "[1,2]", "BadRequestData"),
        ("near;maxDistance==1000", "Point", "[1]", "BadRequestData"),
        ("near;maxDistance==1000", "Point", "not json", "BadRequestData"),
        ("within", "Polygon", "[[[1,1],[2,2],[1,1]]]", "BadRequestData"),
        ("overlaps", "Polygon", "[[[1,1],[2,2],[3,1],[1,1]]]", "OperationNotSupported"),
    ],
)
def test_georel_refusals(georel: str, geometry: str, coordinates: str | None, kind: str) -> None:
    _refused(lambda: parse_geo(georel, geometry, coordinates, None), kind)


def test_temporal_parameters() -> None:
    span = parse_timerel("between", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z")
    assert span.end is not None and span.start is not None
    assert span.end - span.start == timedelta(days=1)
    assert parse_timerel("before", "2026-12-01T00:00:00Z", None).start is None
    assert parse_timerel(None, None, None).start is None
    for args in (
        ("between", "2026-12-01T00:00:00Z", None),
        ("sometime", "x", None),
        ("after", None, None),
    ):
        _refused(lambda args=args: parse_timerel(*args))
    assert parse_duration("PT1H") == timedelta(hours=1)
    assert parse_duration("P1DT30M") == timedelta(days=1, minutes=30)
    for bad in ("1H", "P", "PT0S", "P400D"):
        _refused(lambda bad=bad: parse_duration(bad))
    assert parse_aggregations("avg,max") == ("avg", "max")
    _refused(lambda: parse_aggregations("sum"), "OperationNotSupported")

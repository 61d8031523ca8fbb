"""GeoJSON out of map messages, assembled without re-parsing geometries.

The map service already sends each geometry as GeoJSON text; splicing that text
into the response (instead of json.loads then json.dumps) keeps large pages cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf.struct_pb2 import Struct, Value

from gateway.errors import ApiError
from grassroots.map.v1 import map_service_pb2 as map_pb
from services.kit.errors import FieldViolation

BBOX_PATTERN = r"^[-0-9.eE+]+(,[-0-9.eE+]+){3}$"


def parse_bbox(text: str) -> list[float]:
    """Four finite numbers from `minx,miny,maxx,maxy`; 400 naming `bbox` otherwise.

    The query pattern only admits number-like characters; "4e" or "1.2.3" pass it.
    """
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        problem = "must be four numbers minx,miny,maxx,maxy"
        raise ApiError(400, f"bbox: {problem}", violations=[FieldViolation("bbox", problem)])
    return box


def plain_value(value: Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return plain_struct(value.struct_value)
    if kind == "list_value":
        return [plain_value(v) for v in value.list_value.values]
    return None


def plain_struct(struct: Struct) -> dict[str, Any]:
    return {key: plain_value(value) for key, value in struct.fields.items()}


def feature_id(feature: map_pb.Feature) -> str:
    return feature.name.rsplit("/", 1)[-1]


def feature_json(
    feature: map_pb.Feature,
    links: list[dict[str, Any]] | None = None,
    geometry: str | None = None,
) -> str:
    """A Feature object; `geometry` replaces the message's own GeoJSON (axis-swapped)."""
    members = [
        '"type":"Feature"',
        f'"id":{json.dumps(feature_id(feature), ensure_ascii=False)}',
        f'"geometry":{geometry or feature.geometry.geojson or "null"}',
        f'"properties":{json.dumps(plain_struct(feature.properties), ensure_ascii=False)}',
    ]
    if feature.HasField("distance_meters"):
        members.append(f'"distance_meters":{round(feature.distance_meters, 3)}')
    if links:
        members.append(f'"links":{json.dumps(links, ensure_ascii=False)}')
    return "{" + ",".join(members) + "}"


def collection_json(features: Iterable[map_pb.Feature], extra: dict[str, Any]) -> str:
    body = ",".join(feature_json(f) for f in features)
    tail = "".join(
        f",{json.dumps(key)}:{json.dumps(value, ensure_ascii=False)}"
        for key, value in extra.items()
    )
    return '{"type":"FeatureCollection","features":[' + body + "]" + tail + "}"

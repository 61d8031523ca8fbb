"""NGSI-LD query parameters: `q`, `georel` with `geometry` and `coordinates`, and the
temporal ones (`timerel`, `timeAt`, `endTimeAt`, `aggrMethods`, `aggrPeriodDuration`).

`q` is read in its common subset: comparisons (`==`, `!=`, `>`, `>=`, `<`, `<=`)
between an attribute and a number, a boolean or a quoted text, or an attribute alone
(it exists), joined by `;` (and) and `|` (or, binding looser). Parentheses, ranges
(`1..5`), lists and attribute paths answer 400 naming what is not supported.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.ngsi_ld.entities import compact, parse_time
from gateway.ngsi_ld.problems import NgsiLdError, bad_request
from services.kit.geodesy import EARTH_RADIUS_M, great_circle_m

MAX_Q_CHARS = 1000
_COMPARISON = re.compile(r"^([A-Za-z][A-Za-z0-9_:/#.-]*?)\s*(==|!=|>=|<=|>|<)\s*(.+)\Z")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_:/#.-]*\Z")


def _too_complex(detail: str) -> NgsiLdError:
    return NgsiLdError(400, detail, "TooComplexQuery")


@dataclass(frozen=True)
class Comparison:
    attribute: str
    op: str  # "exists" or a comparison operator
    value: float | str | None = None

    def holds(self, values: Mapping[str, Any]) -> bool:
        if self.attribute not in values:
            return False
        if self.op == "exists":
            return True
        have = values[self.attribute]
        want = self.value
        if isinstance(want, str) != isinstance(have, str):
            return self.op == "!="
        ops = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
        }
        return bool(ops[self.op](have, want))


Query = list[list[Comparison]]  # or of ands


def parse_q(text: str) -> Query:
    if len(text) > MAX_Q_CHARS:
        raise _too_complex(f"q: at most {MAX_Q_CHARS} characters")
    if any(c in text for c in "()"):
        raise _too_complex("q: parentheses are not supported; use ';' (and) and '|' (or)")
    alternatives: Query = []
    for alternative in text.split("|"):
        terms = []
        for term in alternative.split(";"):
            terms.append(_comparison(term.strip()))
        alternatives.append(terms)
    return alternatives


def _comparison(term: str) -> Comparison:
    if not term:
        raise bad_request("q: an empty term")
    match = _COMPARISON.match(term)
    if match is None:
        if _NAME.match(term):
            return Comparison(compact(term), "exists")
        raise bad_request(f"q: {term!r} is not a comparison")
    name, op, raw = match.groups()
    if "." in compact(name) or "[" in name:
        raise _too_complex(f"q: attribute paths ({name}) are not supported")
    return Comparison(compact(name), op, _literal(raw.strip(), term))


def _literal(raw: str, term: str) -> float | str:
    if raw in ("true", "false"):
        return 1.0 if raw == "true" else 0.0
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    if ".." in raw or "," in raw:
        raise _too_complex(f"q: ranges and lists ({term}) are not supported")
    try:
        number = float(raw)
    except ValueError:
        raise bad_request(
            f"q: {raw!r} in {term!r} is not a number, boolean or quoted text"
        ) from None
    if not math.isfinite(number):
        raise bad_request(f"q: {raw!r} is not finite")
    return number


def q_holds(query: Query, values: Mapping[str, Any]) -> bool:
    return any(all(c.holds(values) for c in terms) for terms in query)


# -- geo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeoQuery:
    relation: str  # "near" | "within"
    point: tuple[float, float] | None = None
    polygon: tuple[tuple[float, float], ...] = ()
    max_distance: float | None = None
    min_distance: float | None = None

    def holds(self, location: tuple[float, float] | None) -> bool:
        if location is None:
            return False
        if self.relation == "near":
            assert self.point is not None
            distance = haversine(self.point, location)
            if self.max_distance is not None and distance > self.max_distance:
                return False
            return not (self.min_distance is not None and distance < self.min_distance)
        return point_in_polygon(location, self.polygon)

    def box(self) -> tuple[float, float, float, float] | None:
        """A lon/lat box holding every match (the twin can narrow by it first)."""
        if self.relation == "within":
            lons = [p[0] for p in self.polygon]
            lats = [p[1] for p in self.polygon]
            return min(lons), min(lats), max(lons), max(lats)
        if self.max_distance is None or self.point is None:
            return None
        dlat = math.degrees(self.max_distance / EARTH_RADIUS_M)
        cos = max(math.cos(math.radians(self.point[1])), 1e-6)
        dlon = min(180.0, dlat / cos)
        lon, lat = self.point
        return (
            max(-180, lon - dlon),
            max(-90, lat - dlat),
            min(180, lon + dlon),
            min(90, lat + dlat),
        )


def parse_geo(
    georel: str | None, geometry: str | None, coordinates: str | None, geoproperty: str | None
) -> GeoQuery | None:
    if georel is None and geometry is None and coordinates is None:
        return None
    if not georel or not geometry or not coordinates:
        raise bad_request("georel, geometry and coordinates go together")
    if geoproperty not in (None, "location"):
        raise _too_complex("geoproperty: only location is supported")
    relation, *modifiers = georel.split(";")
    try:
        shape = json.loads(coordinates)
    except ValueError:
        raise bad_request("coordinates: a JSON array") from None
    if relation == "near":
        if geometry != "Point":
            raise bad_request("georel near needs geometry=Point")
        query = GeoQuery("near", point=_position(shape, "coordinates"))
        for modifier in modifiers:
            key, _, value = modifier.partition("==")
            if key not in ("maxDistance", "minDistance"):
                raise bad_request(f"georel: {modifier!r}; use near;maxDistance==<metres>")
            try:
                metres = float(value)
            except ValueError:
                raise bad_request(f"georel: {key} must be a number of metres") from None
            if not math.isfinite(metres) or metres < 0:
                raise bad_request(f"georel: {key} must be a number of metres")
            query = GeoQuery(
                "near",
                point=query.point,
                max_distance=metres if key == "maxDistance" else query.max_distance,
                min_distance=metres if key == "minDistance" else query.min_distance,
            )
        if query.max_distance is None and query.min_distance is None:
            raise bad_request("georel near needs maxDistance or minDistance")
        return query
    if relation == "within":
        if geometry != "Polygon" or modifiers:
            raise bad_request("georel within needs geometry=Polygon")
        if not isinstance(shape, list) or not shape or len(shape) > 1:
            raise _too_complex("coordinates: one ring of a polygon, without holes")
        ring = (
            tuple(_position(p, "coordinates") for p in shape[0])
            if isinstance(shape[0], list)
            else ()
        )
        if len(ring) < 4 or ring[0] != ring[-1]:
            raise bad_request("coordinates: a closed ring of at least four positions")
        return GeoQuery("within", polygon=ring)
    raise NgsiLdError(
        400, f"georel {relation!r}: near and within are supported", "OperationNotSupported"
    )


def _position(value: object, field_name: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise bad_request(f"{field_name}: positions are [longitude, latitude]")
    lon, lat = float(value[0]), float(value[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise bad_request(f"{field_name}: out of range")
    return lon, lat


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    return great_circle_m(*a, *b)


def point_in_polygon(point: tuple[float, float], ring: tuple[tuple[float, float], ...]) -> bool:
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


# -- temporal ----------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
AGGREGATIONS = ("avg", "min", "max", "totalCount")


@dataclass(frozen=True)
class TimeRange:
    start: datetime | None
    end: datetime | None


def parse_timerel(timerel: str | None, time_at: str | None, end_time_at: str | None) -> TimeRange:
    if timerel is None:
        if time_at or end_time_at:
            raise bad_request("timeAt needs timerel")
        return TimeRange(None, None)
    if time_at is None:
        raise bad_request("timerel needs timeAt")
    at = parse_time(time_at, "timeAt")
    if timerel == "before":
        return TimeRange(None, at)
    if timerel == "after":
        return TimeRange(at, None)
    if timerel == "between":
        if end_time_at is None:
            raise bad_request("timerel=between needs endTimeAt")
        end = parse_time(end_time_at, "endTimeAt")
        if end <= at:
            raise bad_request("endTimeAt must be after timeAt")
        return TimeRange(at, end)
    raise bad_request("timerel: before, after or between")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT"):
        raise bad_request("aggrPeriodDuration: an ISO 8601 duration such as PT1H or P1D")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    period = timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    if period < timedelta(seconds=1) or period > timedelta(days=366):
        raise bad_request("aggrPeriodDuration: from one second to a year")
    return period


def parse_aggregations(text: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in AGGREGATIONS]
    if not methods or unknown:
        raise NgsiLdError(
            400,
            f"aggrMethods: {', '.join(unknown) or 'none'}; supported: {', '.join(AGGREGATIONS)}",
            "OperationNotSupported" if unknown else None,
        )
    return methods

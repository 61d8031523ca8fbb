"""NGSI-LD entities <-> twin entities.

An NGSI-LD id is a URN, `urn:ngsi-ld:<type>:<entity id>`; the twin's resource name is
`tenants/<tenant>/entities/<entity id>`, the tenant coming from `NGSILD-Tenant` or the
caller. Numeric and boolean Properties are the entity's property values (their
`observedAt` and `unitCode` kept), `location` is the entity's point, other GeoProperties
are point properties, Relationships are the twin's relationships. Attribute and type
names given as full IRIs are compacted to their last segment (the twin's names), and
`@context` is accepted and echoed, not dereferenced (docs/ngsi-ld.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.ngsi_ld.problems import bad_request
from gateway.schemas.common import rfc3339_time
from services.kit.errors import InvalidArgument

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
URN_PREFIX = "urn:ngsi-ld:"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
# Units: UN/CEFACT common codes (what NGSI-LD's unitCode holds) <-> the twin's symbols.
UNIT_CODES = {
    "cm": "CMT",
    "mm": "MMT",
    "m": "MTR",
    "km/h": "KMH",
    "m/s": "MTS",
    "%": "P1",
    "Cel": "CEL",
    "°C": "CEL",
    "L/min": "L2",
    "L": "LTR",
    "kg": "KGM",
    "V": "VLT",
    "W": "WTT",
    "kWh": "KWH",
    "hPa": "A97",
    "dB": "2N",
    "ppm": "59",
    "lx": "LUX",
}
_UNIT_SYMBOLS = {code: symbol for symbol, code in UNIT_CODES.items() if symbol != "°C"}
RESERVED = {"id", "type", "@context", "scope", "createdAt", "modifiedAt"}
NAME_ATTRIBUTE = "name"


def compact(term: str) -> str:
    """A term given as a full IRI, as the twin names it (its last segment)."""
    if ":" in term and ("/" in term or "#" in term):
        return re.split(r"[/#]", term.rstrip("/#"))[-1]
    return term


def urn(entity_type: str, entity_id: str) -> str:
    return f"{URN_PREFIX}{entity_type}:{entity_id}"


def parse_urn(entity_urn: str, field_name: str = "id") -> tuple[str, str]:
    """(type, the twin's entity id) of `urn:ngsi-ld:<type>:<id>`, exactly four parts:
    `urn:ngsi-ld:A:b:c` is refused, not read as the entity `c`."""
    parts = entity_urn.split(":")
    if len(parts) != 4 or not entity_urn.startswith(URN_PREFIX):
        raise bad_request(
            f"{field_name}: {entity_urn[:80]!r} is not of the form urn:ngsi-ld:<type>:<id>"
        )
    if not _TYPE.match(parts[2]):
        raise bad_request(f"{field_name}: the type must be a letter, then letters, digits or '_'")
    if not _ID.match(parts[3]):
        raise bad_request(
            f"{field_name}: the id after the type must be 1-64 letters, digits, '_' or '-'"
        )
    return parts[2], parts[3]


def entity_id_of(entity_urn: str, field_name: str = "id") -> str:
    """The twin's entity id in an NGSI-LD id (see parse_urn)."""
    return parse_urn(entity_urn, field_name)[1]


def unit_symbol(code: str) -> str:
    return _UNIT_SYMBOLS.get(code, code)


def unit_code(symbol: str) -> str:
    return UNIT_CODES.get(symbol, symbol)


def parse_time(text: object, field_name: str) -> datetime:
    """A DateTime as the REST API reads every time (`rfc3339_time`: an offset, `Z` in
    NGSI-LD's examples, is required), refused in NGSI-LD's problem shape."""
    try:
        return rfc3339_time(text, field_name)
    except InvalidArgument as exc:
        raise bad_request(f"{field_name}: {exc.violations[0].description}") from None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Reading:
    """A property value an NGSI-LD request sets."""

    attribute: str
    value: float = 0.0
    unit: str = ""
    observed: datetime | None = None
    point: tuple[float, float] | None = None


@dataclass
class Draft:
    """An entity as an NGSI-LD create describes it."""

    entity_id: str
    entity_type: str
    location: tuple[float, float] | None = None
    display_name: str = ""
    readings: list[Reading] = field(default_factory=list)
    relationships: list[tuple[str, str]] = field(default_factory=list)  # (type, target id)


def parse_entity(document: object) -> Draft:
    """An NGSI-LD entity (normalized or concise form) as a twin entity draft."""
    if not isinstance(document, dict):
        raise bad_request("the entity must be a JSON object")
    named_type, entity_id = parse_urn(_text(document.get("id"), "id"))
    kind = document.get("type")
    if isinstance(kind, list) and len(kind) == 1:
        kind = kind[0]
    entity_type = compact(_text(kind, "type"))
    if not _TYPE.match(entity_type):
        raise bad_request("type: letters, digits and '_', starting with a letter")
    if named_type != entity_type:
        raise bad_request(
            f"id: names the type {named_type!r}, the entity's type is {entity_type!r}"
        )
    draft = Draft(entity_id, entity_type)
    _read_attributes(document, draft, allow_location=True)
    return draft


def parse_attributes(document: object) -> Draft:
    """The attributes of an update (PATCH or POST .../attrs)."""
    if not isinstance(document, dict):
        raise bad_request("the attributes must be a JSON object")
    draft = Draft("", "")
    _read_attributes(document, draft, allow_location=False)
    if not draft.readings and not draft.relationships and not draft.display_name:
        raise bad_request("no attribute to update")
    return draft


def _text(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{field_name}: required text")
    return value


def _read_attributes(document: dict[str, Any], draft: Draft, *, allow_location: bool) -> None:
    for key, attribute in document.items():
        if key in RESERVED:
            continue
        name = compact(key)
        if not _ATTRIBUTE.match(name):
            raise bad_request(f"{key}: not an attribute name the twin can hold")
        instances = attribute if isinstance(attribute, list) and attribute else [attribute]
        for instance in instances:
            _read_attribute(key, name, instance, draft, allow_location=allow_location)


def _read_attribute(
    key: str, name: str, attribute: object, draft: Draft, *, allow_location: bool
) -> None:
    """One instance of an attribute (a multi-attribute arrives as a list of them)."""
    if not isinstance(attribute, dict):
        attribute = {"type": "Property", "value": attribute}  # keyValues / concise form
    kind = attribute.get("type") or ("Relationship" if "object" in attribute else "Property")
    if kind == "Relationship":
        target = attribute.get("object")
        targets = target if isinstance(target, list) else [target]
        for one in targets:
            draft.relationships.append((name, entity_id_of(_text(one, f"{key}.object"))))
    elif kind == "GeoProperty" or (kind == "Property" and name == "location"):
        point = _point(attribute.get("value"), key)
        if name == "location":
            if not allow_location:
                raise bad_request("location: moving an entity is not supported here")
            draft.location = point
        else:
            draft.readings.append(Reading(name, point=point, observed=_observed(attribute, key)))
    elif kind == "Property":
        value = attribute.get("value")
        if name == NAME_ATTRIBUTE and isinstance(value, str):
            draft.display_name = value[:200]
            return
        draft.readings.append(
            Reading(
                name,
                _number(value, key),
                unit_symbol(str(attribute.get("unitCode", ""))),
                _observed(attribute, key),
            )
        )
    else:
        raise bad_request(
            f"{key}: type {kind!r} is not supported (Property, GeoProperty, Relationship)"
        )


def _number(value: object, key: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise bad_request(f"{key}.value: the twin holds numbers and booleans")


def _observed(attribute: dict[str, Any], key: str) -> datetime | None:
    value = attribute.get("observedAt")
    return None if value is None else parse_time(value, f"{key}.observedAt")


def _point(value: object, key: str) -> tuple[float, float]:
    if not isinstance(value, dict) or value.get("type") != "Point":
        raise bad_request(f"{key}.value: a GeoJSON Point")
    coordinates = value.get("coordinates")
    if (
        not isinstance(coordinates, list)
        or len(coordinates) < 2
        or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coordinates)
    ):
        raise bad_request(f"{key}.value.coordinates: [longitude, latitude]")
    lon, lat = float(coordinates[0]), float(coordinates[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise bad_request(f"{key}.value.coordinates: out of range")
    return lon, lat


# -- twin -> NGSI-LD ----------------------------------------------------------------------


@dataclass
class TwinView:
    """What the router read from the twin, in plain values."""

    entity_id: str
    entity_type: str
    display_name: str = ""
    location: tuple[float, float] | None = None
    properties: list[Reading] = field(default_factory=list)
    relationships: list[tuple[str, str, str]] = field(default_factory=list)  # type, id, type
    modified: datetime | None = None


def render(
    view: TwinView,
    *,
    attrs: set[str] | None = None,
    key_values: bool = False,
    context: object | None = None,
) -> dict[str, Any]:
    """The entity in NGSI-LD's normalized (or keyValues) form."""
    doc: dict[str, Any] = {"id": urn(view.entity_type, view.entity_id), "type": view.entity_type}

    def wanted(name: str) -> bool:
        return attrs is None or name in attrs

    if view.display_name and wanted(NAME_ATTRIBUTE):
        doc[NAME_ATTRIBUTE] = {"type": "Property", "value": view.display_name}
    if view.location is not None and wanted("location"):
        doc["location"] = _geo(view.location, None)
    for reading in view.properties:
        if not wanted(reading.attribute):
            continue
        if reading.point is not None:
            doc[reading.attribute] = _geo(reading.point, reading.observed)
            continue
        prop: dict[str, Any] = {"type": "Property", "value": reading.value}
        if reading.unit:
            prop["unitCode"] = unit_code(reading.unit)
        if reading.observed is not None:
            prop["observedAt"] = iso(reading.observed)
        doc[reading.attribute] = prop
    for rel_type, target_id, target_type in view.relationships:
        if not wanted(rel_type):
            continue
        rel = {"type": "Relationship", "object": urn(target_type, target_id)}
        existing = doc.get(rel_type)
        if existing is None:
            doc[rel_type] = rel
        else:
            doc[rel_type] = [*(existing if isinstance(existing, list) else [existing]), rel]
    if key_values:
        doc = {key: _simplified(value) for key, value in doc.items()}
    if context is not None:
        doc["@context"] = context
    return doc


def _geo(point: tuple[float, float], observed: datetime | None) -> dict[str, Any]:
    geo: dict[str, Any] = {
        "type": "GeoProperty",
        "value": {"type": "Point", "coordinates": [point[0], point[1]]},
    }
    if observed is not None:
        geo["observedAt"] = iso(observed)
    return geo


def _simplified(value: Any) -> Any:
    if isinstance(value, list):
        return [_simplified(v) for v in value]
    if isinstance(value, dict) and value.get("type") == "Relationship":
        return value["object"]
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value

"""Checks on a report before anything is located or stored."""

from __future__ import annotations

import math
import re

import numpy as np

from services.events.domain.model import Point
from services.kit import crs
from services.kit.errors import FieldViolation, InvalidArgument

MAX_DESCRIPTION_CHARS = 4000
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


MAX_MEDIA = 10
MAX_URI = 2048
MAX_CONTACT = 100
MAX_ADDRESS = 500


def check_details(
    *, severity: int, media: list[str], contact: str, address: str = "", prefix: str = "event."
) -> None:
    """Severity, media references and contact: optional, but well formed when given."""
    violations: list[FieldViolation] = []
    if not 0 <= severity <= 5:
        violations.append(FieldViolation(f"{prefix}severity", "must be 1 to 5 (0: default)"))
    if len(media) > MAX_MEDIA:
        violations.append(FieldViolation(f"{prefix}media_uris", f"at most {MAX_MEDIA}"))
    for i, uri in enumerate(media[:MAX_MEDIA]):
        if not uri.startswith(("https://", "http://")) or len(uri) > MAX_URI or " " in uri:
            violations.append(FieldViolation(f"{prefix}media_uris[{i}]", "must be an http(s) URI"))
    if len(address) > MAX_ADDRESS:
        violations.append(FieldViolation(f"{prefix}address", f"at most {MAX_ADDRESS} characters"))
    if len(contact) > MAX_CONTACT:
        violations.append(
            FieldViolation(f"{prefix}reporter_contact", f"at most {MAX_CONTACT} characters")
        )
    if violations:
        raise InvalidArgument(violations)


def check_report(
    *,
    category: str,
    description: str,
    longitude: float,
    latitude: float,
    has_location: bool,
    request_id: str,
    prefix: str = "event.",
) -> None:
    """Collect every violation at once, so a client fixes its request in one go."""
    violations: list[FieldViolation] = []
    if not category:
        violations.append(FieldViolation(f"{prefix}category", "is required"))
    if not description.strip():
        violations.append(FieldViolation(f"{prefix}description", "is required"))
    elif len(description) > MAX_DESCRIPTION_CHARS:
        violations.append(
            FieldViolation(
                f"{prefix}description",
                f"has {len(description)} characters; at most {MAX_DESCRIPTION_CHARS}",
            )
        )
    if not has_location:
        violations.append(FieldViolation(f"{prefix}location", "is required"))
    else:
        if not (math.isfinite(latitude) and -90 <= latitude <= 90):
            violations.append(
                FieldViolation(f"{prefix}location.latitude", f"{latitude} is not in [-90, 90]")
            )
        if not (math.isfinite(longitude) and -180 <= longitude <= 180):
            violations.append(
                FieldViolation(f"{prefix}location.longitude", f"{longitude} is not in [-180, 180]")
            )
    if not REQUEST_ID_PATTERN.match(request_id):
        violations.append(
            FieldViolation(
                "request_id",
                "is required: 1-128 letters, digits or '.', '_', ':', '-'",
            )
        )
    if violations:
        raise InvalidArgument(violations)


def storage_point(longitude: float, latitude: float, reported_crs: str) -> Point:
    """The point in the storage CRS (WGS84), remembering the CRS it was reported in.

    Phones in China report GCJ-02; events are stored and located in WGS84. A CRS
    that is not accepted is INVALID_ARGUMENT on `event.location.crs`.
    """
    name = crs.normalise_crs(reported_crs, "event.location.crs")
    lon, lat = crs.to_storage(np.array([longitude]), np.array([latitude]), name)
    return Point(float(lon[0]), float(lat[0]), name)

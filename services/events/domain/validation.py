"""Checks on a report before anything is located or stored.

Lengths, counts and ranges are the contract's (`(grassroots.type.v1.limits)` on the
event fields, checked by the server before the adapter runs, ADR 22); what is left
here is what the contract cannot say: what is required and what a value means.
"""

from __future__ import annotations

import math

import numpy as np

from services.events.domain import attachments
from services.events.domain.model import Point
from services.kit import crs
from services.kit.errors import FieldViolation, InvalidArgument


def check_details(*, media: list[str], prefix: str = "event.") -> None:
    """Media references: optional, but links a browser can open when given, or photos
    kept by the events service (`tenants/{tenant}/attachments/{attachment}`)."""
    violations = [
        FieldViolation(f"{prefix}media_uris[{i}]", "must be an http(s) URI or an attachment's name")
        for i, uri in enumerate(media)
        if (not uri.startswith(("https://", "http://")) or " " in uri)
        and attachments.parse_reference(uri) is None
    ]
    if violations:
        raise InvalidArgument(violations)


def location_violations(
    longitude: float, latitude: float, has_location: bool, prefix: str = "event."
) -> list[FieldViolation]:
    """What is wrong with a reported position: missing, or off the globe."""
    if not has_location:
        return [FieldViolation(f"{prefix}location", "is required")]
    violations = []
    if not (math.isfinite(latitude) and -90 <= latitude <= 90):
        violations.append(
            FieldViolation(f"{prefix}location.latitude", f"{latitude} is not in [-90, 90]")
        )
    if not (math.isfinite(longitude) and -180 <= longitude <= 180):
        violations.append(
            FieldViolation(f"{prefix}location.longitude", f"{longitude} is not in [-180, 180]")
        )
    return violations


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
    violations += location_violations(longitude, latitude, has_location, prefix)
    if not request_id:
        violations.append(
            FieldViolation("request_id", "is required: 1-128 letters, digits or '.', '_', ':', '-'")
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

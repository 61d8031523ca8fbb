"""When is a new report a repeat of an open event?

Same category, within R metres and T minutes of an open event (R and T per
category): the resident is told the original's id and follows its progress instead
of a second crew being sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from services.events.domain.categories import Category
from services.events.domain.model import Event, Point

EARTH_RADIUS_M = 6_371_008.8


def ground_distance_m(a: Point, b: Point) -> float:
    """Haversine on the mean Earth radius: within 0.5% on any scale, plenty here."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def search_window(
    point: Point, category: Category, now: datetime
) -> tuple[tuple[float, float, float, float], datetime]:
    """A lon/lat box surely holding every candidate, and the earliest time to look at."""
    dlat = category.duplicate_radius_m / 111_000 * 1.01
    dlon = dlat / max(math.cos(math.radians(point.latitude)), 1e-6)
    box = (
        point.longitude - dlon,
        point.latitude - dlat,
        point.longitude + dlon,
        point.latitude + dlat,
    )
    return box, now - timedelta(minutes=category.duplicate_window_minutes)


def original_of(point: Point, category: Category, candidates: Iterable[Event]) -> Event | None:
    """The nearest open candidate within the category's radius (oldest on a tie)."""
    best: tuple[float, datetime, Event] | None = None
    for event in candidates:
        distance = ground_distance_m(point, event.location)
        if distance > category.duplicate_radius_m:
            continue
        key = (distance, event.create_time, event)
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best else None

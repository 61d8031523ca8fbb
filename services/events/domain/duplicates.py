"""When is a new report a repeat of an open event?

Same category, within R metres and T minutes of an open event (R and T per
category): the resident is told the original's id and follows its progress instead
of a second crew being sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np

from services.events.domain.categories import Category
from services.events.domain.model import Event, Point
from services.kit import crs


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
    events = list(candidates)
    if not events:
        return None
    distances = crs.ground_distance_m(
        np.full(len(events), point.longitude),
        np.full(len(events), point.latitude),
        np.array([e.location.longitude for e in events]),
        np.array([e.location.latitude for e in events]),
    )
    inside = [
        (float(d), e.create_time, i)
        for i, (d, e) in enumerate(zip(distances, events, strict=True))
        if d <= category.duplicate_radius_m
    ]
    return events[min(inside)[2]] if inside else None

"""Choosing the handler: on duty, holding the role, under capacity, nearest, fair.

Candidates are columns (numpy arrays), not objects: one decision over a thousand
handlers is a handful of vector operations (a mask, a distance, a sort key), so a
district's dispatch keeps up with thousands of decisions a second. Distance is the
great-circle distance in metres between WGS84 positions; a handler who never reported
a position is taken only when nobody with one is available. Among handlers at the same
distance (to the metre), the one given work longest ago goes first, so a team shares
the load.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.command.domain.model import HandlerProfile, Position, Shift
from services.command.domain.routing import LOCAL_TIME

EARTH_RADIUS_M = 6_371_008.8
_NEVER = -1.0e18


def on_shift(shifts: Sequence[Shift], moment: datetime) -> bool:
    """Whether a weekly shift covers the local time; no shifts means always."""
    if not shifts:
        return True
    local = moment.astimezone(LOCAL_TIME)
    minute = local.hour * 60 + local.minute
    weekday = local.isoweekday()
    yesterday = 7 if weekday == 1 else weekday - 1
    for shift in shifts:
        start = _minutes(shift.start)
        end = _minutes(shift.end)
        days = shift.weekdays or tuple(range(1, 8))
        if start <= end:
            if weekday in days and start <= minute < end:
                return True
        elif (weekday in days and minute >= start) or (yesterday in days and minute < end):
            return True
    return False


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def available(profile: HandlerProfile, moment: datetime) -> bool:
    """On duty: switched on, and inside a shift when shifts are given."""
    return profile.on_duty and on_shift(profile.shifts, moment)


@dataclass
class Roster:
    """Handlers as columns, for one decision or many (the benchmark keeps one)."""

    users: list[str]
    profiles: list[HandlerProfile]
    lon: np.ndarray
    lat: np.ndarray
    has_position: np.ndarray
    capacity: np.ndarray
    open_tasks: np.ndarray
    on_duty: np.ndarray
    last_assigned: np.ndarray

    @classmethod
    def of(cls, profiles: Sequence[HandlerProfile], moment: datetime) -> Roster:
        count = len(profiles)
        lon = np.zeros(count)
        lat = np.zeros(count)
        has_position = np.zeros(count, dtype=bool)
        for i, p in enumerate(profiles):
            if p.position is not None:
                lon[i], lat[i], has_position[i] = p.position.longitude, p.position.latitude, True
        return cls(
            users=[p.user for p in profiles],
            profiles=list(profiles),
            lon=lon,
            lat=lat,
            has_position=has_position,
            capacity=np.fromiter((p.capacity for p in profiles), dtype=np.int64, count=count),
            open_tasks=np.fromiter((p.open_tasks for p in profiles), dtype=np.int64, count=count),
            on_duty=np.fromiter((available(p, moment) for p in profiles), dtype=bool, count=count),
            last_assigned=np.fromiter(
                (p.last_assigned.timestamp() if p.last_assigned else _NEVER for p in profiles),
                dtype=np.float64,
                count=count,
            ),
        )


def distances_m(lon: np.ndarray, lat: np.ndarray, to: Position) -> np.ndarray:
    """Great-circle metres from each (lon, lat) to `to` (haversine, vectorised)."""
    phi1 = np.radians(lat)
    phi2 = np.radians(to.latitude)
    dphi = phi2 - phi1
    dlam = np.radians(to.longitude - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


@dataclass(frozen=True)
class Choice:
    index: int
    user: str
    profile: HandlerProfile
    distance_m: float


def choose(roster: Roster, where: Position, exclude: Collection[str] = ()) -> Choice | None:
    """The best available handler for a task at `where`, or None."""
    if not roster.users:
        return None
    eligible = roster.on_duty & (roster.open_tasks < roster.capacity)
    if exclude:
        eligible &= ~np.isin(np.asarray(roster.users, dtype=object), list(exclude))
    if not eligible.any():
        return None
    distance = distances_m(roster.lon, roster.lat, where)
    # Without a position: after everyone with one.
    rank = np.where(roster.has_position, np.round(distance), np.inf)
    rank = np.where(eligible, rank, np.nan)
    # lexsort sorts by the last key first: distance, then least recently assigned.
    order = np.lexsort((roster.last_assigned, rank))
    best = int(order[0])
    if not eligible[best]:
        return None
    return Choice(
        best,
        roster.users[best],
        roster.profiles[best],
        float(distance[best]) if roster.has_position[best] else 0.0,
    )

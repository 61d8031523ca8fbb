"""Choosing the handler: on duty, holding the role, under capacity, nearest, fair.

Candidates are columns (numpy arrays), not objects: one decision over a thousand
handlers is a handful of vector operations (a mask, a distance, a sort key), so a
district's dispatch keeps up with thousands of decisions a second. Distance is the
great-circle distance in metres between WGS84 positions, or the distance by road where
the village keeps a road layer (`roads.py`); a handler who never reported
a position is taken only when nobody with one is available. Among handlers at the same
distance (to the metre), the one given work longest ago goes first, so a team shares
the load.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from services.command.domain.model import HandlerProfile, Position, Shift
from services.command.domain.roads import RoadNetwork
from services.command.domain.routing import LOCAL_TIME
from services.kit.geodesy import EARTH_RADIUS_M, great_circle_m

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
    """Handlers as columns, for one decision or many (the desk keeps one per routing
    target for a moment; the benchmark keeps one)."""

    users: list[str]
    profiles: list[HandlerProfile]
    lon: np.ndarray  # radians
    lat: np.ndarray  # radians
    has_position: np.ndarray
    capacity: np.ndarray
    open_tasks: np.ndarray
    on_duty: np.ndarray
    last_assigned: np.ndarray
    index: dict[str, int]
    # Offers counted on this roster, in order, so a fresh read of the store can take
    # over the ones made while it ran.
    offers: list[tuple[str, datetime]] = field(default_factory=list)

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
            lon=np.radians(lon),
            lat=np.radians(lat),
            has_position=has_position,
            capacity=np.fromiter((p.capacity for p in profiles), dtype=np.int64, count=count),
            open_tasks=np.fromiter((p.open_tasks for p in profiles), dtype=np.int64, count=count),
            on_duty=np.fromiter((available(p, moment) for p in profiles), dtype=bool, count=count),
            last_assigned=np.fromiter(
                (p.last_assigned.timestamp() if p.last_assigned else _NEVER for p in profiles),
                dtype=np.float64,
                count=count,
            ),
            index={p.user: i for i, p in enumerate(profiles)},
        )

    def assigned(self, user: str, when: datetime) -> None:
        """Count an offer made to `user` (so the next decision sees the load)."""
        self.offers.append((user, when))
        i = self.index.get(user)
        if i is not None:
            self.open_tasks[i] += 1
            self.last_assigned[i] = when.timestamp()


def metres_from(roster: Roster, to: Position) -> np.ndarray:
    """Metres from each handler to `to`: the equirectangular approximation, within a
    fraction of a per cent of the great circle over a district, and a few vector
    operations instead of trigonometry per handler."""
    lat0 = np.radians(to.latitude)
    x = (roster.lon - np.radians(to.longitude)) * np.cos(lat0)
    y = roster.lat - lat0
    return EARTH_RADIUS_M * np.hypot(x, y)


def distance_m(a: Position, b: Position) -> float:
    """Great-circle metres between two points."""
    return great_circle_m(a.longitude, a.latitude, b.longitude, b.latitude)


@dataclass(frozen=True)
class Choice:
    index: int
    user: str
    profile: HandlerProfile
    distance_m: float
    by_road: bool = False


# Ranks candidates the roads do not reach after every one they do.
_OFF_ROAD_PENALTY_M = 1.0e9
_SEARCH_FACTOR = 3.0


def _ranks(
    roster: Roster, where: Position, usable: np.ndarray, roads: RoadNetwork | None
) -> tuple[np.ndarray, np.ndarray]:
    """Metres from each usable handler to `where` (inf for the others), and whether each
    was measured by road."""
    straight = np.where(usable, metres_from(roster, where), np.inf)
    by_road = np.zeros(len(straight), dtype=bool)
    if roads is None or not usable.any():
        return straight, by_road
    rows = np.flatnonzero(usable)
    lon, lat = np.degrees(roster.lon[rows]), np.degrees(roster.lat[rows])
    # A road is never shorter than the straight line: searching the roads up to a few
    # times the nearest candidate's straight distance finds the nearest by road, unless
    # nobody is reached within it; then the whole network is searched.
    near = straight[rows]
    road = roads.metres_to(
        where, lon, lat, limit_m=_SEARCH_FACTOR * near.min() + 300, straight_m=near
    )
    if not np.isfinite(road).any():
        road = roads.metres_to(where, lon, lat)
    reached = np.isfinite(road)
    metres = straight.copy()
    metres[rows] = np.where(reached, road, straight[rows] + _OFF_ROAD_PENALTY_M)
    by_road[rows[reached]] = True
    return metres, by_road


def choose(
    roster: Roster,
    where: Position | None,
    exclude: Collection[str] = (),
    roads: RoadNetwork | None = None,
) -> Choice | None:
    """The best available handler for a task at `where`, or None; nearest by road over
    `roads` (the village's road network) when there is one, else in a straight line.
    A task with no place (a plan without a location) goes to whoever was given work
    longest ago."""
    if not roster.users:
        return None
    eligible = roster.on_duty & (roster.open_tasks < roster.capacity)
    for user in exclude:
        i = roster.index.get(user)
        if i is not None:
            eligible[i] = False
    if not eligible.any():
        return None
    if where is None:
        candidates = np.flatnonzero(eligible)
        first = int(candidates[np.argmin(roster.last_assigned[candidates])])
        return Choice(first, roster.users[first], roster.profiles[first], 0.0)
    metres, by_road = _ranks(roster, where, eligible & roster.has_position, roads)
    rank = np.round(metres)
    nearest = rank.min()
    # Ties (to the metre, or nobody with a position): least recently assigned first.
    ties = np.flatnonzero(rank == nearest) if np.isfinite(nearest) else np.flatnonzero(eligible)
    best = int(ties[np.argmin(roster.last_assigned[ties])])
    profile = roster.profiles[best]
    if by_road[best]:
        return Choice(best, roster.users[best], profile, float(metres[best]), by_road=True)
    metres_away = distance_m(profile.position, where) if profile.position is not None else 0.0
    return Choice(best, roster.users[best], profile, metres_away)

"""The demo town's history: a few hundred reports over the past four weeks, in every state.

A newcomer's first `GET .../events` should show a village at work, not an empty list.
The reports go through the events service's public gRPC contract, as an import by a
platform service (only services may date a report in the past), and are moved along
their lifecycle with the same calls staff make. Everything is derived from a fixed
seed and every report has a fixed `request_id`, so a second start replays the same
reports and only finishes the moves an interrupted start left undone.

ALL REPORTS HERE ARE INVENTED.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pyogrio
import shapely
from google.protobuf.timestamp_pb2 import Timestamp

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal

SEED = 20261203
COUNT = 320
DAYS = 28
TOWN = "sh/jiading/anting"
# The import runs as a platform service of the town, as a records import would.
IMPORTER = Principal(
    subject="services/demo-import",
    tenant=TOWN,
    kind="service",
    scopes=frozenset({"events:read", "events:write", "map:read"}),
)
S = pb.Event
# Moves from `reported` to each state, in order.
PATHS: dict[int, tuple[int, ...]] = {
    S.STATE_REPORTED: (),
    S.STATE_ACCEPTED: (S.STATE_ACCEPTED,),
    S.STATE_DISPATCHED: (S.STATE_ACCEPTED, S.STATE_DISPATCHED),
    S.STATE_IN_PROGRESS: (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS),
    S.STATE_RESOLVED: (S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS, S.STATE_RESOLVED),
    S.STATE_CLOSED: (
        *(S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS),
        *(S.STATE_RESOLVED, S.STATE_CLOSED),
    ),
    S.STATE_REOPENED: (
        *(S.STATE_ACCEPTED, S.STATE_DISPATCHED, S.STATE_IN_PROGRESS),
        *(S.STATE_RESOLVED, S.STATE_REOPENED),
    ),
    S.STATE_REJECTED: (S.STATE_REJECTED,),
    S.STATE_WITHDRAWN: (S.STATE_WITHDRAWN,),  # its reporter took it back
    S.STATE_DUPLICATE: (),  # detected when stored: it repeats an open report (see plan)
}
# What residents and grid workers report, with a typical description each.
REPORTS = (
    ("environment.garbage", "Bins overflowing at the lane entrance", 18),
    ("environment.sewage", "Drain blocked, water standing after rain", 8),
    ("environment.living", "Rubbish heaped behind the old granary", 8),
    ("roads.damage", "Pothole on the village road", 10),
    ("public.facility", "Street light out by the bridge", 12),
    ("safety.ebike_charging", "E-bike charged in the stairwell overnight", 9),
    ("safety.fire_hazard", "Firewood stacked against the kitchen wall", 6),
    ("construction.illegal", "New shed built on farmland", 6),
    ("neighbourhood.dispute", "Neighbours arguing over a blocked path", 7),
    ("care.elderly_welfare", "Elderly resident living alone not seen for two days", 6),
    ("safety.flooding", "Waterlogged underpass", 4),
    ("safety.smoke_alarm", "Smoke alarm sounding in an empty flat", 6),
)


@dataclass(frozen=True)
class PlannedReport:
    request_id: str
    village: str
    category: str
    description: str
    longitude: float
    latitude: float
    age: timedelta
    source: int
    target: int  # the state it ends in


def _cells(demo_gpkg: Path) -> list[tuple[str, shapely.Polygon]]:
    meta, _fids, geometry, columns = pyogrio.raw.read(str(demo_gpkg), layer="grid_cells")
    tenants = columns[list(meta["fields"]).index("tenant")]
    return list(zip((str(t) for t in tenants), shapely.from_wkb(geometry), strict=True))


def _target(rng: np.random.Generator, days_old: float) -> int:
    """Old reports are mostly finished; the last few days' are mostly still open."""
    if days_old < 2:
        weights = {S.STATE_REPORTED: 5, S.STATE_ACCEPTED: 3, S.STATE_DISPATCHED: 2}
        weights |= {S.STATE_IN_PROGRESS: 2, S.STATE_RESOLVED: 1, S.STATE_DUPLICATE: 1}
    elif days_old < 7:
        weights = {S.STATE_ACCEPTED: 1, S.STATE_DISPATCHED: 2, S.STATE_IN_PROGRESS: 3}
        weights |= {S.STATE_RESOLVED: 4, S.STATE_CLOSED: 3, S.STATE_REJECTED: 1}
        weights |= {S.STATE_DUPLICATE: 1, S.STATE_REOPENED: 1, S.STATE_WITHDRAWN: 1}
    else:
        weights = {S.STATE_RESOLVED: 2, S.STATE_CLOSED: 12, S.STATE_REJECTED: 2}
        weights |= {S.STATE_DUPLICATE: 1, S.STATE_REOPENED: 1, S.STATE_IN_PROGRESS: 1}
    states = list(weights)
    p = np.array([weights[s] for s in states], dtype=float)
    return int(states[rng.choice(len(states), p=p / p.sum())])


def plan(demo_gpkg: Path, count: int = COUNT) -> list[PlannedReport]:
    """The same reports every time: places inside grid cells, times over `DAYS` days."""
    rng = np.random.default_rng(SEED)
    cells = _cells(demo_gpkg)
    kinds = np.array([w for _, _, w in REPORTS], dtype=float)
    planned: list[PlannedReport] = []
    for i in range(count):
        village, polygon = cells[int(rng.integers(len(cells)))]
        minx, miny, maxx, maxy = polygon.bounds
        while True:
            lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if polygon.contains(shapely.Point(lon, lat)):
                break
        category, description, _ = REPORTS[int(rng.choice(len(REPORTS), p=kinds / kinds.sum()))]
        days_old = float(rng.beta(1.2, 2.0) * DAYS)
        target = _target(rng, days_old)
        if target == S.STATE_DUPLICATE and planned:
            # A second resident reports the same thing a few metres away ten minutes later.
            first = planned[int(rng.integers(len(planned)))]
            while first.target == S.STATE_DUPLICATE:
                first = planned[int(rng.integers(len(planned)))]
            planned.append(
                replace(
                    first,
                    request_id=f"demo-history-{i:04d}",
                    longitude=round(first.longitude + 0.00003, 6),
                    age=first.age - min(timedelta(minutes=10), first.age / 2),
                    source=S.SOURCE_RESIDENT,
                    target=target,
                )
            )
            continue
        planned.append(
            PlannedReport(
                request_id=f"demo-history-{i:04d}",
                village=village,
                category=category,
                description=description,
                longitude=round(lon, 6),
                latitude=round(lat, 6),
                age=timedelta(days=days_old),
                source=S.SOURCE_RESIDENT if rng.random() < 0.6 else S.SOURCE_GRID_PATROL,
                target=S.STATE_REPORTED if target == S.STATE_DUPLICATE else target,
            )
        )
    return planned


def _create_request(report: PlannedReport, now: datetime) -> pb.CreateEventRequest:
    when = Timestamp()
    when.FromDatetime(now - report.age)
    return pb.CreateEventRequest(
        parent=tenancy.tenant_name(report.village),
        request_id=report.request_id,
        event=pb.Event(
            category=report.category,
            description=report.description,
            location=geo_pb2.GeoPoint(longitude=report.longitude, latitude=report.latitude),
            source=report.source,  # type: ignore[arg-type]
            create_time=when,
        ),
    )


async def install(channel: grpc.aio.Channel, demo_gpkg: Path) -> dict[str, int]:
    """Import the history (or replay it) and finish every move; counts by state name."""
    stub = pb_grpc.EventsServiceStub(channel)
    metadata = IMPORTER.to_metadata()
    now = datetime.now(UTC)
    planned = plan(demo_gpkg)
    counts: dict[str, int] = {}
    # Repeats go in after what they repeat, so the original is stored and open by then.
    waves = [
        [r for r in planned if r.target != S.STATE_DUPLICATE],
        [r for r in planned if r.target == S.STATE_DUPLICATE],
    ]
    for wave, village in [(w, v) for w in waves for v in sorted({r.village for r in planned})]:
        mine = [r for r in wave if r.village == village]
        if not mine:
            continue
        created = await stub.BatchCreateEvents(
            pb.BatchCreateEventsRequest(
                parent=tenancy.tenant_name(village),
                requests=[_create_request(r, now) for r in mine],
            ),
            metadata=metadata,
            timeout=60,
        )
        for report, event in zip(mine, created.events, strict=True):
            state = await _finish(stub, metadata, event, report.target)
            name = S.State.Name(state).removeprefix("STATE_").lower()
            counts[name] = counts.get(name, 0) + 1
    return counts


async def _finish(
    stub: pb_grpc.EventsServiceAsyncStub,
    metadata: tuple[tuple[str, bytes], ...],
    event: pb.Event,
    target: int,
) -> pb.Event.State.ValueType:
    """Make the moves from the event's state to `target` that are not made yet."""
    path = PATHS[target]
    state = event.state
    if state == target or state == S.STATE_DUPLICATE or target == S.STATE_DUPLICATE:
        return state  # done, or found to repeat an open report when it was stored
    remaining = path[path.index(state) + 1 :] if state in path else path
    for step in remaining:
        moved = await stub.TransitionEvent(
            pb.TransitionEventRequest(name=event.name, state=step, note="demo history"),  # type: ignore[arg-type]
            metadata=metadata,
        )
        state = moved.state
    return state

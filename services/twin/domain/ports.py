"""What the twin domain needs from the outside world, as interfaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from services.twin.domain.entities import Entity, Latest, Point
from services.twin.domain.geofence import LayerShape
from services.twin.domain.models import Model
from services.twin.domain.rules import Rule, RuleState

SeriesKey = tuple[str, str, str]  # (tenant path, entity id, property)
EntityKey = tuple[str, str]  # (tenant path, entity id)
RuleKey = tuple[str, str]  # (tenant path, rule id)


@dataclass(frozen=True)
class Alarm:
    """One thing for the alarm relay to tell others, written with the readings that caused
    it: `fire` creates an event, `clear` updates it, `level` publishes twin.level_changed."""

    kind: str  # "fire" | "clear" | "level"
    episode: str
    rule: RuleKey
    entity: EntityKey
    at_ms: int
    value: float
    level: int = 0
    old_level: int = 0
    seq: int = 0  # assigned by the store


@dataclass
class ReadingRows:
    """Accepted readings as columns, ready for one bulk insert."""

    series_ids: npt.NDArray[np.int64]
    observed_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    longitudes: npt.NDArray[np.float64] | None = None
    latitudes: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return len(self.series_ids)


@dataclass
class SeriesReadings:
    """Every reading of one series in a time range, oldest first."""

    series_id: int
    times: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    longitudes: npt.NDArray[np.float64] | None = None
    latitudes: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True)
class SeriesRef:
    series_id: int
    tenant: str
    entity_id: str


class TwinStore(Protocol):
    """Entities, models, rules, readings, rule states and the alarm outbox."""

    async def create_entity(self, entity: Entity) -> None:
        """ALREADY_EXISTS when the tenant has an entity of that id."""
        ...

    async def delete_entity(self, key: EntityKey) -> bool: ...

    async def get_entities(self, keys: list[EntityKey]) -> list[Entity]:
        """The entities that exist among `keys`, without latest values."""
        ...

    async def list_entities(
        self, subtree: str, entity_type: str, limit: int, after: EntityKey | None
    ) -> list[Entity]:
        """Entities of a tenant subtree ordered by (tenant, id), after a cursor."""
        ...

    async def related(
        self, key: EntityKey, incoming: bool, relationship_type: str
    ) -> list[tuple[str, EntityKey]]:
        """(relationship type, other entity) for links from (or, incoming, to) `key`."""
        ...

    async def save_model(self, model: Model) -> None: ...

    async def list_models(self) -> list[Model]: ...

    async def save_rule(self, rule: Rule) -> None:
        """ALREADY_EXISTS when the tenant has a rule of that id."""
        ...

    async def list_rules(self) -> list[Rule]: ...

    async def delete_rule(self, key: tuple[str, str]) -> bool:
        """Remove a rule and its per-entity states; False when there was none."""
        ...

    async def series_ids(self, keys: list[SeriesKey]) -> list[int]:
        """The id of each series, created when new."""
        ...

    async def find_series(
        self,
        subtree: str,
        prop: str,
        entities: list[EntityKey],
        entity_type: str,
        box: tuple[float, float, float, float] | None,
    ) -> list[SeriesRef]:
        """Series of one property over the named entities (or all of the subtree), of a
        model and inside a box when given."""
        ...

    async def record(
        self,
        rows: ReadingRows,
        states: dict[tuple[RuleKey, EntityKey], RuleState],
        alarms: list[Alarm],
    ) -> None:
        """Readings, changed rule states and new alarms, in one transaction: a crash keeps
        all of them or none."""
        ...

    async def latest_of(self, series_ids: list[int] | None) -> dict[int, Latest]:
        """The newest reading of each series from history (None: every series)."""
        ...

    async def readings(self, series: list[int], start_ms: int, end_ms: int) -> list[SeriesReadings]:
        """The readings of each series in [start, end), in series order."""
        ...

    async def rule_states(self) -> dict[tuple[RuleKey, EntityKey], RuleState]: ...

    async def next_epoch(self) -> int:
        """Count one more start of the service and return the count (1 on the first)."""
        ...

    async def compact(self, limit: int) -> int:
        """Move up to `limit` logged batches into per-series chunks; returns how many moved."""
        ...

    async def pending_alarms(self, limit: int) -> list[Alarm]:
        """Alarms not yet delivered, oldest first."""
        ...

    async def alarm_delivered(self, seq: int, episode: str, event: str) -> None:
        """Mark an alarm done; for a fire, remember the event it made for its episode."""
        ...

    async def event_of(self, episode: str) -> str:
        """The event an episode made ("" if none yet)."""
        ...

    async def close(self) -> None: ...


@dataclass
class LatestBatch:
    """The newest fresh reading of each series a batch touched, as columns."""

    series_ids: npt.NDArray[np.int64]
    observed_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    longitudes: npt.NDArray[np.float64] | None = None  # NaN where not a position
    latitudes: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return len(self.series_ids)

    def items(self) -> list[tuple[int, Latest]]:
        """Per series, its Latest (for the few callers that want objects)."""
        out = []
        for i, (sid, t, v) in enumerate(
            zip(
                self.series_ids.tolist(),
                self.observed_ms.tolist(),
                self.values.tolist(),
                strict=True,
            )
        ):
            point = None
            if self.longitudes is not None and self.latitudes is not None:
                lon, lat = float(self.longitudes[i]), float(self.latitudes[i])
                point = Point(lon, lat) if lon == lon and lat == lat else None
            out.append((sid, Latest(v, t, point)))
        return out


class LatestState(Protocol):
    """The newest value of each series, where readers find it fast."""

    async def get_many(self, series_ids: list[int]) -> list[Latest | None]: ...

    async def times_of(self, series_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The observed time of each series' stored value; -1 where there is none."""
        ...

    async def put_newer(self, batch: LatestBatch) -> None:
        """Store each value unless a newer one is stored already."""
        ...

    async def close(self) -> None: ...


class EventSink(Protocol):
    """The events service, as the alarm relay uses it."""

    async def raise_event(self, alarm: Alarm, rule: Rule, entity: Entity) -> str:
        """Create the episode's event (idempotent on alarm.episode); returns its name."""
        ...

    async def clear_event(self, event: str, alarm: Alarm, rule: Rule) -> None:
        """Tell the episode's event that the condition cleared."""
        ...


class LayerSource(Protocol):
    """The map service's layers, as geofence rules read them."""

    async def shape(self, tenant: str, layer: str, buffer_m: float) -> LayerShape:
        """The layer as `tenant` sees it, widened by `buffer_m`: fetched once, then kept
        and refreshed when the layer changes. NotFound when the tenant cannot see it;
        Unavailable when the map service cannot be reached and nothing is kept."""
        ...


class FactSink(Protocol):
    async def level_changed(self, alarm: Alarm, rule: Rule) -> None:
        """Publish twin.level_changed on the bus."""
        ...

"""Checking telemetry against its models, column by column with numpy.

A batch arrives as parallel columns (entity, property, value, time, unit). Readings
repeat the same few (entity, property) pairs, so each distinct pair is looked up
once and its model's rules (kind, unit, range) are broadcast back over the readings;
the checks themselves are whole-array comparisons. Every reading ends with a reason
code: OK, or why it was refused. Refused readings are never stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from services.kit.errors import FieldViolation, InvalidArgument
from services.twin.domain.entities import Entity
from services.twin.domain.models import Kind, Model, PropertySpec

MAX_BATCH = 100_000
# Readings further ahead than this are refused: a device's clock is wrong.
MAX_FUTURE_MS = 5 * 60 * 1000
# Before 2000-01-01: a device that lost its clock.
MIN_TIME_MS = 946_684_800_000
# How many refusals a response lists one by one (the counts are always exact).
MAX_LISTED_REJECTIONS = 1000

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Reason(IntEnum):
    """Why a reading was refused; OK for an accepted one. First failing check wins."""

    OK = 0
    UNKNOWN_ENTITY = 1
    UNKNOWN_PROPERTY = 2
    WRONG_UNIT = 3
    BAD_TIME = 4
    NOT_FINITE = 5
    OUT_OF_RANGE = 6
    NOT_INTEGER = 7
    NOT_BOOLEAN = 8


# The column each reason blames.
FIELD_OF: dict[Reason, str] = {
    Reason.UNKNOWN_ENTITY: "entities",
    Reason.UNKNOWN_PROPERTY: "properties",
    Reason.WRONG_UNIT: "units",
    Reason.BAD_TIME: "observe_times_ms",
    Reason.NOT_FINITE: "values",
    Reason.OUT_OF_RANGE: "values",
    Reason.NOT_INTEGER: "values",
    Reason.NOT_BOOLEAN: "values",
}


@dataclass
class Columns:
    """A batch of readings as parallel columns."""

    entities: Sequence[str]
    properties: Sequence[str]
    values: F64
    observed_ms: I64 | None = None  # None: every reading observed now
    units: Sequence[str] | None = None  # None: every reading in its model's unit
    longitudes: F64 | None = None
    latitudes: F64 | None = None
    # False when the batch sent no values at all (a batch of positions needs none).
    values_given: bool = True

    def __len__(self) -> int:
        return len(self.entities)

    @classmethod
    def of(
        cls,
        entities: Sequence[str],
        properties: Sequence[str],
        values: Sequence[float] | F64,
        observed_ms: Sequence[int] | I64 | None = None,
        units: Sequence[str] | None = None,
        longitudes: Sequence[float] | F64 | None = None,
        latitudes: Sequence[float] | F64 | None = None,
    ) -> Columns:
        """Columns from any sequences; empty optional columns mean 'not given'.

        INVALID_ARGUMENT when the columns differ in length or the batch is too large.
        """
        n = len(entities)
        if n > MAX_BATCH:
            raise InvalidArgument.field("columns.entities", f"at most {MAX_BATCH} readings a call")
        problems: list[FieldViolation] = []

        def same(name: str, column: Sequence[object] | npt.NDArray[np.generic] | None) -> bool:
            if column is None or len(column) == 0:
                return False
            if len(column) != n:
                problems.append(
                    FieldViolation(f"columns.{name}", f"has {len(column)} items, entities has {n}")
                )
            return True

        if not same("properties", properties) and n:
            problems.append(FieldViolation("columns.properties", "required, one per reading"))
        has_values = same("values", values)
        has_times = same("observe_times_ms", observed_ms)
        has_units = same("units", units)
        has_lon = same("longitudes", longitudes)
        has_lat = same("latitudes", latitudes)
        if has_lon != has_lat:
            problems.append(FieldViolation("columns.latitudes", "give both coordinates or neither"))
        if problems:
            raise InvalidArgument(problems)
        return cls(
            entities=entities,
            properties=properties,
            values=np.asarray(values, dtype=np.float64) if has_values else np.full(n, np.nan),
            observed_ms=np.asarray(observed_ms, dtype=np.int64) if has_times else None,
            units=units if has_units else None,
            longitudes=np.asarray(longitudes, dtype=np.float64) if has_lon else None,
            latitudes=np.asarray(latitudes, dtype=np.float64) if has_lat else None,
            values_given=has_values or not n,
        )


@dataclass(frozen=True)
class Series:
    """What one (entity, property) pair resolves to: the entity, the model's rules for the
    property, the series' id in the store and the rules that watch it. The hub caches
    these, so a batch costs one dictionary lookup per distinct pair."""

    entity: Entity
    spec: PropertySpec
    model: Model
    series_id: int = -1
    watchers: tuple[object, ...] = ()  # domain.rules.Rule, kept opaque here
    entity_slot: int = -1  # the hub's dense number for the entity (sequence numbers)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.entity.tenant, self.entity.entity_id, self.spec.name)

    @property
    def lo(self) -> float:
        return -math.inf if self.spec.minimum is None else self.spec.minimum

    @property
    def hi(self) -> float:
        return math.inf if self.spec.maximum is None else self.spec.maximum


@dataclass
class Checked:
    """A checked batch: per reading its reason, its series index, its value and time."""

    reasons: npt.NDArray[np.uint8]
    series_index: npt.NDArray[np.int32]  # index into `series`; -1 where unknown
    series: list[Series]
    values: F64
    observed_ms: I64
    longitudes: F64 | None
    latitudes: F64 | None
    # Per distinct pair, why it is unknown (for messages), keyed by pair index.
    raw_pairs: list[tuple[str, str]]
    pair_index: npt.NDArray[np.int32]

    @property
    def accepted(self) -> npt.NDArray[np.bool_]:
        return self.reasons == Reason.OK

    def rejected_count(self) -> int:
        return int(np.count_nonzero(self.reasons))


def factorize(items: Sequence[str]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Codes 0..k-1 per item and the k distinct items, in order of first appearance."""
    codes = {key: i for i, key in enumerate(dict.fromkeys(items))}
    if len(codes) == 1:
        return np.zeros(len(items), dtype=np.int64), list(codes)
    return np.fromiter(map(codes.__getitem__, items), np.int64, len(items)), list(codes)


@dataclass
class Pairs:
    """The distinct (entity, property) pairs of a batch and each reading's pair."""

    distinct: list[tuple[str, str]]
    index: npt.NDArray[np.int32]


def pairs_of(columns: Columns) -> Pairs:
    entity_codes, entity_names = factorize(columns.entities)
    prop_codes, prop_names = factorize(columns.properties)
    if len(prop_names) == 1:
        prop = prop_names[0]
        return Pairs([(e, prop) for e in entity_names], entity_codes.astype(np.int32))
    combined = entity_codes * len(prop_names) + prop_codes
    pair_codes, inverse = np.unique(combined, return_inverse=True)
    width = len(prop_names)
    distinct = [(entity_names[c // width], prop_names[c % width]) for c in pair_codes.tolist()]
    return Pairs(distinct, inverse.astype(np.int32))


def check(columns: Columns, pairs: Pairs, targets: list[Series | Reason], now_ms: int) -> Checked:
    """Check every reading against its model; nothing here touches a store.

    `targets[i]` is what `pairs.distinct[i]` resolves to, or why it does not.
    """
    n = len(columns)
    raw_pairs, pair_index = pairs.distinct, pairs.index
    count = len(raw_pairs)
    pair_reason = np.fromiter((t if type(t) is Reason else 0 for t in targets), np.uint8, count)
    known = pair_reason == 0
    series: list[Series] = [t for t in targets if type(t) is Series]
    pair_series = np.full(count, -1, dtype=np.int32)
    pair_series[known] = np.arange(len(series), dtype=np.int32)
    lo = np.full(count, -np.inf)
    hi = np.full(count, np.inf)
    kind = np.zeros(count, dtype=np.uint8)
    if series:
        lo[known] = [s.lo for s in series]
        hi[known] = [s.hi for s in series]
        kind[known] = [s.spec.kind for s in series]

    reasons = pair_reason[pair_index]
    values = columns.values
    if columns.observed_ms is None:
        observed = np.full(n, now_ms, dtype=np.int64)
    else:
        observed = np.where(columns.observed_ms == 0, now_ms, columns.observed_ms)

    def refuse(mask: npt.NDArray[np.bool_], reason: Reason) -> None:
        np.copyto(reasons, np.uint8(reason), where=mask & (reasons == Reason.OK))

    if columns.units is not None:
        units = [""] * count
        for i, s in zip(np.flatnonzero(known).tolist(), series, strict=True):
            units[i] = s.spec.unit
        given = np.asarray(columns.units, dtype=object)
        expected = np.asarray(units, dtype=object)[pair_index]
        refuse((given != "") & (given != expected), Reason.WRONG_UNIT)
    refuse((observed < MIN_TIME_MS) | (observed > now_ms + MAX_FUTURE_MS), Reason.BAD_TIME)
    reading_kind = kind[pair_index]
    is_point = reading_kind == Kind.POINT
    if columns.longitudes is not None and columns.latitudes is not None:
        lon, lat = columns.longitudes, columns.latitudes
        bad_point = ~(np.isfinite(lon) & np.isfinite(lat))
        refuse(is_point & bad_point, Reason.NOT_FINITE)
        refuse(is_point & ((np.abs(lon) > 180) | (np.abs(lat) > 90)), Reason.OUT_OF_RANGE)
    else:
        refuse(is_point, Reason.NOT_FINITE)
    scalar = ~is_point
    if not columns.values_given:
        # One mistake in the request, not one per reading: say which column is missing.
        wanting = np.flatnonzero(known & (kind != Kind.POINT))
        if wanting.size:
            names = sorted({raw_pairs[i][1] for i in wanting.tolist()})
            raise InvalidArgument.field(
                "columns.values",
                f"is empty, but {', '.join(repr(p) for p in names[:5])} need one value a reading",
            )
    with np.errstate(invalid="ignore"):
        refuse(scalar & ~np.isfinite(values), Reason.NOT_FINITE)
        refuse(
            scalar & ((values < lo[pair_index]) | (values > hi[pair_index])), Reason.OUT_OF_RANGE
        )
        whole = values == np.floor(values)
        refuse((reading_kind == Kind.INTEGER) & ~whole, Reason.NOT_INTEGER)
        refuse(
            (reading_kind == Kind.BOOLEAN) & ~((values == 0) | (values == 1)), Reason.NOT_BOOLEAN
        )
    return Checked(
        reasons=reasons,
        series_index=pair_series[pair_index],
        series=series,
        values=values,
        observed_ms=observed,
        longitudes=columns.longitudes,
        latitudes=columns.latitudes,
        raw_pairs=raw_pairs,
        pair_index=pair_index,
    )


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    reason: str
    description: str


def describe(checked: Checked, limit: int = MAX_LISTED_REJECTIONS) -> list[Rejection]:
    """The first `limit` refusals, each with a sentence naming what was wrong."""
    out: list[Rejection] = []
    for index in np.flatnonzero(checked.reasons)[:limit]:
        i = int(index)
        reason = Reason(int(checked.reasons[i]))
        raw_entity, prop = checked.raw_pairs[int(checked.pair_index[i])]
        s = int(checked.series_index[i])
        spec = checked.series[s].spec if s >= 0 else None
        value = float(checked.values[i])
        text = {
            Reason.UNKNOWN_ENTITY: f"no entity {raw_entity!r} you may write to",
            Reason.UNKNOWN_PROPERTY: f"{raw_entity!r} has no property {prop!r} in its model",
            Reason.WRONG_UNIT: f"{prop!r} is measured in {spec.unit if spec else ''!r}",
            Reason.BAD_TIME: "observed time is before 2000 or more than 5 minutes ahead",
            Reason.NOT_FINITE: f"{prop!r} needs a finite value",
            Reason.NOT_INTEGER: f"{prop!r} takes whole numbers, not {value}",
            Reason.NOT_BOOLEAN: f"{prop!r} takes 0 or 1, not {value}",
        }.get(reason)
        if reason is Reason.OUT_OF_RANGE and spec is not None:
            span = f"{_bound(spec.minimum)}..{_bound(spec.maximum)}"
            text = f"{value} is outside {prop!r}'s range {span}"
        out.append(Rejection(i, FIELD_OF[reason], reason.name, text or reason.name))
    return out


def _bound(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:g}"

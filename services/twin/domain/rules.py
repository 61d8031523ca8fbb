"""Rules: conditions on readings that open and close episodes.

An episode is one stretch of time in which a rule holds for one entity ("level above
30 cm for 5 minutes" from 10:02 until it fell below 25 cm at 11:40). Each episode
raises exactly one event (its idempotency key is derived from the episode) and its
end updates that event; readings in between change nothing, so a flapping sensor
never makes a storm. A rule's state per entity is a small record (`RuleState`) that
the store keeps, so an episode survives a restart.

Evaluation is sequential per entity by nature, but almost every batch changes no
state: a whole-array test decides that first, and only series that may change a
state are walked reading by reading.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from services.kit.errors import FieldViolation, InvalidArgument

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
LAYER_NAME = re.compile(r"^tenants/[a-z0-9-]+/layers/[^/]{1,128}\Z")
CATEGORY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*\Z")
MAX_BUFFER_M = 10_000.0


class Direction(IntEnum):
    ABOVE = 1
    BELOW = 2


class GeofenceMode(IntEnum):
    INSIDE = 1
    OUTSIDE = 2


@dataclass(frozen=True)
class Threshold:
    direction: Direction
    trigger: float
    clear: float
    min_duration_ms: int = 0


@dataclass(frozen=True)
class Levels:
    bounds: tuple[float, ...]
    hysteresis: float = 0.0
    event_from_level: int = 0


@dataclass(frozen=True)
class Inactivity:
    silence_ms: int


@dataclass(frozen=True)
class Geofence:
    layer: str
    mode: GeofenceMode = GeofenceMode.INSIDE
    buffer_m: float = 0.0  # features widened on the ground (a route's lines -> a corridor)
    dwell_ms: int = 0  # how long a breach must hold before it fires
    speed_property: str = ""  # when set, a position counts only while stopped...
    stopped_at_most: float = 0.0  # ...that is, with this speed or less

    @property
    def as_threshold(self) -> Threshold:
        """A breach is a 0/1 series: firing past 0.5 for `dwell_ms`, clearing under it, so
        geofence episodes follow exactly the threshold's state machine."""
        return Threshold(Direction.ABOVE, 0.5, 0.5, self.dwell_ms)


Condition = Threshold | Levels | Inactivity | Geofence


@dataclass(frozen=True)
class Rule:
    tenant: str
    rule_id: str
    entity_type: str
    watched: str  # the property the rule watches
    condition: Condition
    event_category: str
    display_name: str = ""
    severity: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.rule_id)


class Phase(IntEnum):
    IDLE = 0
    PENDING = 1  # past the threshold, waiting out the minimum duration
    ACTIVE = 2  # an episode is open


@dataclass(frozen=True)
class RuleState:
    phase: Phase = Phase.IDLE
    since_ms: int = 0  # when the pending stretch or the episode began
    level: int = 0
    episode: str = ""  # the open episode's key


IDLE = RuleState()


@dataclass(frozen=True)
class Fired:
    """An episode opened: raise one event under `episode` as its idempotency key."""

    episode: str
    at_ms: int
    value: float


@dataclass(frozen=True)
class Cleared:
    episode: str
    at_ms: int
    value: float


@dataclass(frozen=True)
class LevelChanged:
    old: int
    new: int
    at_ms: int
    value: float


Outcome = Fired | Cleared | LevelChanged


def episode_key(rule: Rule, entity: tuple[str, str], start_ms: int) -> str:
    """The idempotency key of an episode: the same rule, entity and start give the same key,
    so a retry after a crash finds the event the first attempt made."""
    digest = hashlib.sha256(
        f"{rule.tenant}|{rule.rule_id}|{entity[0]}|{entity[1]}|{start_ms}".encode()
    ).hexdigest()
    return f"twin:{digest[:40]}"


def _past(rule: Threshold, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return values > rule.trigger if rule.direction == Direction.ABOVE else values < rule.trigger


def _cleared(rule: Threshold, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return values < rule.clear if rule.direction == Direction.ABOVE else values > rule.clear


def _level_of(levels: Levels, current: int, value: float) -> int:
    level = current
    while level < len(levels.bounds) and value >= levels.bounds[level]:
        level += 1
    while level > 0 and value < levels.bounds[level - 1] - levels.hysteresis:
        level -= 1
    return level


def evaluate(
    rule: Rule,
    entity: tuple[str, str],
    state: RuleState,
    values: npt.NDArray[np.float64],
    times: npt.NDArray[np.int64],
) -> tuple[RuleState, list[Outcome]]:
    """Walk one entity's new readings (ascending time) through a rule."""
    cond = rule.condition
    if isinstance(cond, Threshold):
        if state.phase == Phase.IDLE and not _past(cond, values).any():
            return state, []
        if state.phase == Phase.ACTIVE and not _cleared(cond, values).any():
            return state, []
        return _walk_threshold(rule, cond, entity, state, values, times)
    if isinstance(cond, Levels):
        lo = cond.bounds[state.level - 1] - cond.hysteresis if state.level > 0 else -math.inf
        hi = cond.bounds[state.level] if state.level < len(cond.bounds) else math.inf
        if bool(((values >= lo) & (values < hi)).all()):
            return state, []
        return _walk_levels(rule, cond, entity, state, values, times)
    if isinstance(cond, Inactivity):
        if state.phase == Phase.ACTIVE and len(values):
            return IDLE, [Cleared(state.episode, int(times[0]), float(values[0]))]
        return state, []
    return state, []  # geofences are walked over positions (see geofence_walk)


def is_busy(state: RuleState) -> bool:
    """A state that new readings may move even when they cross nothing."""
    return state.phase != Phase.IDLE or state.level != 0


def may_cross(
    rule: Rule, group_min: npt.NDArray[np.float64], group_max: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Per idle entity, whether its new readings (their min and max) could open anything:
    False is certain, True is checked reading by reading by `evaluate`."""
    cond = rule.condition
    if isinstance(cond, Threshold):
        if cond.direction == Direction.ABOVE:
            return group_max > cond.trigger
        return group_min < cond.trigger
    if isinstance(cond, Levels):
        return group_max >= cond.bounds[0]
    return np.zeros(len(group_min), dtype=bool)


def _walk_threshold(
    rule: Rule,
    cond: Threshold,
    entity: tuple[str, str],
    state: RuleState,
    values: npt.NDArray[np.float64],
    times: npt.NDArray[np.int64],
) -> tuple[RuleState, list[Outcome]]:
    out: list[Outcome] = []
    above = cond.direction == Direction.ABOVE
    for v, t in zip(values.tolist(), times.tolist(), strict=True):
        past = v > cond.trigger if above else v < cond.trigger
        if state.phase == Phase.IDLE:
            if past:
                state = RuleState(Phase.PENDING, t)
        elif state.phase == Phase.PENDING and not past:
            state = IDLE
        if state.phase == Phase.PENDING and t - state.since_ms >= cond.min_duration_ms:
            key = episode_key(rule, entity, state.since_ms)
            state = RuleState(Phase.ACTIVE, state.since_ms, 0, key)
            out.append(Fired(key, t, v))
            continue
        if state.phase == Phase.ACTIVE and (v < cond.clear if above else v > cond.clear):
            out.append(Cleared(state.episode, t, v))
            state = IDLE
    return state, out


def _walk_levels(
    rule: Rule,
    cond: Levels,
    entity: tuple[str, str],
    state: RuleState,
    values: npt.NDArray[np.float64],
    times: npt.NDArray[np.int64],
) -> tuple[RuleState, list[Outcome]]:
    out: list[Outcome] = []
    for v, t in zip(values.tolist(), times.tolist(), strict=True):
        level = _level_of(cond, state.level, v)
        if level == state.level:
            continue
        out.append(LevelChanged(state.level, level, t, v))
        alarming = cond.event_from_level > 0 and level >= cond.event_from_level
        if alarming and state.phase != Phase.ACTIVE:
            key = episode_key(rule, entity, t)
            state = RuleState(Phase.ACTIVE, t, level, key)
            out.append(Fired(key, t, v))
        elif not alarming and state.phase == Phase.ACTIVE:
            out.append(Cleared(state.episode, t, v))
            state = RuleState(Phase.IDLE, 0, level)
        else:
            state = replace(state, level=level)
    return state, out


def silence_step(
    rule: Rule, entity: tuple[str, str], state: RuleState, last_ms: int, now_ms: int
) -> tuple[RuleState, list[Outcome]]:
    """An inactivity rule at time `now_ms`, given the newest reading's time."""
    assert isinstance(rule.condition, Inactivity)
    if state.phase == Phase.IDLE and now_ms - last_ms >= rule.condition.silence_ms:
        start = last_ms + rule.condition.silence_ms
        key = episode_key(rule, entity, start)
        return RuleState(Phase.ACTIVE, start, 0, key), [Fired(key, now_ms, math.nan)]
    return state, []


def geofence_walk(
    rule: Rule,
    entity: tuple[str, str],
    state: RuleState,
    breach: npt.NDArray[np.bool_],
    times: npt.NDArray[np.int64],
) -> tuple[RuleState, list[Outcome]]:
    """A geofence rule over one entity's new positions (ascending time), given for each
    whether it is on the firing side (and stopped, when the rule asks); the outcomes
    carry 1 for a breach and 0 for its end."""
    assert isinstance(rule.condition, Geofence)
    cond = rule.condition.as_threshold
    if state.phase == Phase.IDLE and not breach.any():
        return state, []
    if state.phase == Phase.ACTIVE and breach.all():
        return state, []
    return _walk_threshold(rule, cond, entity, state, breach.astype(np.float64), times)


def validate_rule(rule: Rule) -> Rule:
    problems: list[FieldViolation] = []
    if not RULE_ID.match(rule.rule_id):
        problems.append(FieldViolation("rule_id", "1-63 of a-z, 0-9, '_', '-'"))
    if not rule.entity_type:
        problems.append(FieldViolation("rule.entity_type", "required"))
    if not rule.watched:
        problems.append(FieldViolation("rule.property", "required"))
    if not CATEGORY.match(rule.event_category or "-"):
        problems.append(FieldViolation("rule.event_category", "a category code, e.g. safety.fire"))
    if not 0 <= rule.severity <= 5:
        problems.append(FieldViolation("rule.severity", "0 to 5"))
    if len(rule.display_name) > 200:
        problems.append(FieldViolation("rule.display_name", "at most 200 characters"))
    cond = rule.condition
    if isinstance(cond, Threshold):
        if not (math.isfinite(cond.trigger) and math.isfinite(cond.clear)):
            problems.append(
                FieldViolation("rule.threshold.trigger", "trigger and clear must be finite")
            )
        elif (cond.direction == Direction.ABOVE and cond.clear > cond.trigger) or (
            cond.direction == Direction.BELOW and cond.clear < cond.trigger
        ):
            problems.append(
                FieldViolation("rule.threshold.clear", "must lie on the calm side of trigger")
            )
        if cond.min_duration_ms < 0:
            problems.append(FieldViolation("rule.threshold.min_duration", "must not be negative"))
    elif isinstance(cond, Levels):
        bounds = cond.bounds
        if not bounds or len(bounds) > 10 or not all(math.isfinite(b) for b in bounds):
            problems.append(FieldViolation("rule.levels.bounds", "1 to 10 finite bounds"))
        elif any(b >= c for b, c in itertools.pairwise(bounds)):
            problems.append(FieldViolation("rule.levels.bounds", "must ascend"))
        if not (math.isfinite(cond.hysteresis) and cond.hysteresis >= 0):
            problems.append(FieldViolation("rule.levels.hysteresis", "a finite value >= 0"))
        if not 0 <= cond.event_from_level <= len(bounds):
            problems.append(
                FieldViolation("rule.levels.event_from_level", "0 to the number of levels")
            )
    elif isinstance(cond, Inactivity) and cond.silence_ms <= 0:
        problems.append(FieldViolation("rule.inactivity.silence", "must be positive"))
    elif isinstance(cond, Geofence):
        problems.extend(_geofence_problems(cond))
    if problems:
        raise InvalidArgument(problems)
    return rule


def _geofence_problems(cond: Geofence) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if not LAYER_NAME.match(cond.layer):
        problems.append(FieldViolation("rule.geofence.layer", "a map layer's resource name"))
    if not (math.isfinite(cond.buffer_m) and 0 <= cond.buffer_m <= MAX_BUFFER_M):
        problems.append(FieldViolation("rule.geofence.buffer_meters", "0 to 10000"))
    if cond.dwell_ms < 0:
        problems.append(FieldViolation("rule.geofence.dwell", "must not be negative"))
    if cond.speed_property and not (
        math.isfinite(cond.stopped_at_most) and 0 <= cond.stopped_at_most <= 1000
    ):
        problems.append(FieldViolation("rule.geofence.stopped.at_most", "0 to 1000"))
    return problems

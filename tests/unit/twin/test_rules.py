"""Rule state machines on their own: hysteresis, minimum duration, levels, silence."""

from __future__ import annotations

import numpy as np
import pytest

from services.kit.errors import InvalidArgument
from services.twin.domain.rules import (
    IDLE,
    Cleared,
    Direction,
    Fired,
    Inactivity,
    LevelChanged,
    Levels,
    Phase,
    Rule,
    Threshold,
    evaluate,
    silence_step,
    validate_rule,
)

V = "sh/jiading/anting/xingming"
GAUGE = (V, "gauge-1")


def run(rule, values, times, state=IDLE):
    return evaluate(rule, GAUGE, state, np.asarray(values, float), np.asarray(times, np.int64))


def threshold(trigger=30.0, clear=25.0, min_ms=0, direction=Direction.ABOVE):
    return Rule(
        V,
        "r",
        "WaterLevelGauge",
        "level_cm",
        Threshold(direction, trigger, clear, min_ms),
        "safety.flooding",
    )


def test_hysteresis_keeps_one_episode_through_flapping():
    state, out = run(threshold(), [10, 31, 28, 33, 26, 35], range(6))
    assert [type(o) for o in out] == [Fired]
    assert state.phase == Phase.ACTIVE
    state2, out2 = run(threshold(), [24], [10], state)
    assert [type(o) for o in out2] == [Cleared] and out2[0].episode == out[0].episode
    assert state2 == IDLE


def test_minimum_duration_fires_only_after_staying_past():
    rule = threshold(min_ms=300_000)
    state, out = run(rule, [35, 36, 29], [0, 240_000, 250_000])
    assert out == [] and state == IDLE
    state, out = run(rule, [31, 32, 33], [400_000, 600_000, 700_000])
    assert len(out) == 1 and isinstance(out[0], Fired) and out[0].at_ms == 700_000


def test_minimum_duration_counts_observed_time_across_batches():
    """The clock is the readings' own time: a pending stretch carried from one batch to
    the next fires once it has held long enough, keyed by when it began."""
    rule = threshold(min_ms=300_000)
    state, out = run(rule, [31], [1_000_000])
    assert out == [] and state.phase == Phase.PENDING and state.since_ms == 1_000_000
    state, out = run(rule, [34, 33], [1_120_000, 1_240_000], state)
    assert out == [] and state.phase == Phase.PENDING
    state, out = run(rule, [32], [1_300_000], state)
    assert len(out) == 1 and out[0].at_ms == 1_300_000 and state.phase == Phase.ACTIVE
    _, straight = run(rule, [31, 32], [1_000_000, 1_300_000])
    assert straight[0].episode == out[0].episode  # the key comes from the stretch's start
    # Inside the episode, values between clear (25) and trigger (30) change nothing.
    state, out = run(rule, [27, 29, 26], [1_400_000, 1_500_000, 1_600_000], state)
    assert out == [] and state.phase == Phase.ACTIVE
    state, out = run(rule, [24.9], [1_700_000], state)
    assert [type(o) for o in out] == [Cleared] and state == IDLE


def test_a_dip_under_the_trigger_restarts_the_minimum_duration():
    rule = threshold(min_ms=300_000)
    # Held 4 minutes, dipped to 28 (under the trigger, above clear), held 4 more: nothing.
    state, out = run(rule, [35, 36, 28, 35, 35], [0, 240_000, 250_000, 260_000, 500_000])
    assert out == [] and state.phase == Phase.PENDING and state.since_ms == 260_000
    state, out = run(rule, [31], [560_000], state)
    assert len(out) == 1 and out[0].at_ms == 560_000


def test_below_direction_and_same_episode_key_for_the_same_start():
    rule = threshold(trigger=5, clear=8, direction=Direction.BELOW)
    _, first = run(rule, [10, 4], [0, 1000])
    _, again = run(rule, [10, 4], [0, 1000])
    assert first[0].episode == again[0].episode  # a replay after a crash finds the same event


def test_levels_step_up_at_once_and_down_only_past_the_hysteresis():
    rule = Rule(
        V, "crowd", "CrowdCounter", "count", Levels((300, 600, 900), 50, 3), "safety.fire_hazard"
    )
    state, out = run(rule, [100, 650, 980], [0, 1, 2])
    assert [(o.old, o.new) for o in out if isinstance(o, LevelChanged)] == [(0, 2), (2, 3)]
    assert sum(isinstance(o, Fired) for o in out) == 1 and state.level == 3
    state, out = run(rule, [880, 860], [3, 4], state)  # within 50 below 900: stays at 3
    assert out == [] and state.level == 3
    state, out = run(rule, [840], [5], state)
    kinds = [type(o) for o in out]
    assert kinds == [LevelChanged, Cleared] and state.level == 2 and state.phase == Phase.IDLE


def test_silence_fires_once_and_a_reading_clears():
    rule = Rule(
        V, "quiet", "WaterMeter", "flow_l_min", Inactivity(86_400_000), "care.elderly_welfare"
    )
    state, out = silence_step(rule, GAUGE, IDLE, last_ms=0, now_ms=86_400_001)
    assert len(out) == 1 and state.phase == Phase.ACTIVE
    state2, out2 = silence_step(rule, GAUGE, state, last_ms=0, now_ms=99_000_000)
    assert out2 == [] and state2 == state
    state3, out3 = run(rule, [3.0], [99_000_001], state)
    assert [type(o) for o in out3] == [Cleared] and state3 == IDLE


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (threshold(trigger=30, clear=35), "rule.threshold.clear"),
        (Rule(V, "Bad Id", "X", "p", Inactivity(1), "a.b"), "rule_id"),
        (Rule(V, "r", "X", "p", Levels((5, 3)), "a.b"), "rule.levels.bounds"),
        (Rule(V, "r", "X", "p", Inactivity(0), "a.b"), "rule.inactivity.silence"),
        (Rule(V, "r", "X", "p", Inactivity(1), "Not A Code"), "rule.event_category"),
    ],
)
def test_bad_rules_name_the_field(rule, field):
    with pytest.raises(InvalidArgument) as caught:
        validate_rule(rule)
    assert field in {v.field for v in caught.value.violations}

"""Growing sign-in delays: free failures, then doubling waits up to a cap, forgotten later."""

from __future__ import annotations

from datetime import timedelta

from services.empower.domain.signin_throttle import SignInThrottle, ThrottlePolicy

from .conftest import T0


def test_the_wait_doubles_after_the_free_failures_up_to_fifteen_minutes():
    policy = ThrottlePolicy(free=3)
    waits = [policy.delay(n).total_seconds() for n in range(1, 16)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3:8] == [1, 2, 4, 8, 16]
    assert waits[-1] == 900 and waits == sorted(waits)
    assert policy.delay(10_000) == timedelta(minutes=15)


def test_an_attempt_waits_exactly_its_delay():
    throttle = SignInThrottle()
    for _ in range(3):
        assert throttle.may_try("li.na", "", T0)
        throttle.failed("li.na", "", T0)
    assert throttle.may_try("li.na", "", T0)  # the fourth, checked, reserves its second
    assert not throttle.may_try("li.na", "", T0)
    throttle.failed("li.na", "", T0)
    throttle.failed("li.na", "", T0)
    # Five failures: the fifth asked for two seconds.
    assert not throttle.may_try("li.na", "", T0 + timedelta(seconds=1.9))
    assert throttle.may_try("li.na", "", T0 + timedelta(seconds=2))
    # Other names are not held back.
    assert throttle.may_try("wang.fang", "", T0)


def test_counts_are_forgotten_after_an_idle_hour_and_memory_is_bounded():
    throttle = SignInThrottle(max_entries=100)
    for _ in range(10):
        throttle.failed("li.na", "198.51.100.9", T0)
    later = T0 + timedelta(hours=1, seconds=1)
    assert throttle.may_try("li.na", "198.51.100.9", later)
    for i in range(1000):
        throttle.failed(f"name{i}", f"10.0.{i // 256}.{i % 256}", T0)
        assert len(throttle._entries) <= 100

"""The handler choice: on duty, under capacity, nearest, then least recently assigned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.command.domain.dispatch import Roster, choose, on_shift
from services.command.domain.event_sync import moves
from services.command.domain.model import HandlerProfile, Position, Shift

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # Thursday 10:00 in Shanghai
HERE = Position(121.160, 31.290)


def handler(n: int, dx: float, **extra) -> HandlerProfile:
    return HandlerProfile(
        tenant="sh/jiading/anting/xingming",
        id=f"h{n}",
        user=f"users/h{n}",
        roles=("grid_worker",),
        position=Position(HERE.longitude + dx, HERE.latitude),
        **extra,
    )


def test_the_nearest_available_handler_is_chosen():
    roster = Roster.of(
        [
            handler(1, 0.001),
            handler(2, 0.0001, on_duty=False),
            handler(3, 0.0002, open_tasks=5, capacity=5),
            handler(4, 0.0005),
        ],
        T0,
    )
    choice = choose(roster, HERE)
    assert choice is not None and choice.user == "users/h4"
    assert 40 < choice.distance_m < 60  # 0.0005 degrees of longitude at 31.29 N


def test_equal_distance_goes_to_the_least_recently_assigned():
    roster = Roster.of(
        [
            handler(1, 0.001, last_assigned=T0 - timedelta(minutes=1)),
            handler(2, -0.001, last_assigned=T0 - timedelta(hours=1)),
        ],
        T0,
    )
    first = choose(roster, HERE)
    assert first is not None and first.user == "users/h2"
    roster.assigned(first.user, T0)
    second = choose(roster, HERE)
    assert second is not None and second.user == "users/h1"


def test_excluded_handlers_and_a_full_roster_leave_no_choice():
    roster = Roster.of([handler(1, 0.001), handler(2, 0.002, capacity=1, open_tasks=1)], T0)
    assert choose(roster, HERE, exclude=["users/h1"]) is None
    assert choose(Roster.of([], T0), HERE) is None


def test_handlers_without_a_position_come_after_those_with_one():
    far = handler(1, 0.05)
    unknown = HandlerProfile(tenant=far.tenant, id="h2", user="users/h2", roles=("grid_worker",))
    roster = Roster.of([unknown, far], T0)
    assert choose(roster, HERE).user == "users/h1"
    assert choose(roster, HERE, exclude=["users/h1"]).user == "users/h2"


def test_shifts_in_local_time_including_overnight():
    day = (Shift((4,), "08:00", "17:00"),)  # Thursdays
    assert on_shift(day, T0)
    assert not on_shift(day, T0 + timedelta(hours=8))  # 18:00
    night = (Shift((3,), "22:00", "06:00"),)  # Wednesday night into Thursday
    assert on_shift(night, T0 - timedelta(hours=6))  # Thursday 04:00
    assert not on_shift(night, T0)


def test_events_are_walked_to_the_state_their_task_stands_for():
    assert moves("reported", "dispatched") == ["accepted", "dispatched"]
    assert moves("dispatched", "dispatched") == []
    assert moves("in_progress", "accepted") == ["dispatched", "accepted"]
    assert moves("reopened", "resolved") == ["in_progress", "resolved"]
    assert moves("withdrawn", "accepted") == []
    assert moves("closed", "resolved") == []

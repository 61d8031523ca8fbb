"""A service's clock can be moved forward through a file, for drills and end-to-end tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.kit.clock import move_forward, offset_clock, utcnow


def test_without_a_file_the_clock_is_the_wall_clock():
    assert offset_clock(None) is utcnow


def test_moving_forward_is_seen_by_the_running_clock(tmp_path: Path):
    path = tmp_path / "offset"
    clock = offset_clock(path)
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)  # no file yet: no shift
    assert move_forward(path, 360) == 360
    assert move_forward(path, 60) == 420
    shift = clock() - datetime.now(UTC)
    assert timedelta(seconds=419) < shift < timedelta(seconds=421)
    path.write_text("not a number")
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)

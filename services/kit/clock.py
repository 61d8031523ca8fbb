"""The time a service's deadlines follow: the wall clock, or the wall clock moved forward
by a number of seconds written in a file.

Only drills and end-to-end tests set the file (`GRASSROOTS_<SERVICE>_CLOCK_OFFSET_FILE`):
they move a running service's SLA clocks forward instead of sleeping through them. The
file is read again only when it changes, so the clock stays a cheap call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def offset_clock(path: Path | None) -> Clock:
    """`utcnow`, plus the seconds in `path` (missing, empty or unreadable: none)."""
    if path is None:
        return utcnow
    seen: list[object] = [None, timedelta(0)]

    def now() -> datetime:
        try:
            stamp: object = os.stat(path).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != seen[0]:
            seen[0] = stamp
            try:
                seen[1] = timedelta(seconds=float(path.read_text().strip() or 0))
            except (OSError, ValueError):
                seen[1] = timedelta(0)
        shift = seen[1]
        assert isinstance(shift, timedelta)
        return datetime.now(UTC) + shift

    return now


def move_forward(path: Path, seconds: float) -> float:
    """Add `seconds` to the offset in `path` (for the drills and tests that own it)."""
    try:
        current = float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        current = 0.0
    total = current + seconds
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{total}\n")
    os.replace(tmp, path)
    return total

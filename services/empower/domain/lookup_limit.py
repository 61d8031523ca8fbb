"""How often one caller may look people up by a sealed value (ID number, phone).

An exact lookup answers "is this the number?" even when nothing is shown, so
without a bound it recovers a masked value by guessing (an ID number's check
character leaves a handful of candidates; a phone at most 10,000). Lookups need
`people:read_sensitive` and a purpose and are audited; this window also bounds how
many guesses a holder of that scope, or a stolen token, can make per minute.
The window is per replica: with N replicas a caller gets at most N times the limit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from services.kit.errors import ResourceExhausted

# Enough for a secretary working through a paper list; far too few to guess numbers.
DEFAULT_LOOKUPS = 30
DEFAULT_WINDOW = timedelta(minutes=1)
_MAX_CALLERS = 10_000


class LookupLimit:
    """A sliding window of lookup times per caller subject."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        lookups: int = DEFAULT_LOOKUPS,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        self.clock = clock
        self.lookups = lookups
        self.window = window
        self._seen: dict[str, deque[datetime]] = {}

    def take(self, subject: str) -> None:
        """Count one lookup, or RESOURCE_EXHAUSTED (with the seconds to wait) over the limit."""
        now = self.clock()
        times = self._seen.setdefault(subject, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.lookups:
            wait = math.ceil((times[0] + self.window - now).total_seconds())
            raise ResourceExhausted(
                f"at most {self.lookups} lookups by ID number or phone per "
                f"{int(self.window.total_seconds())} s; try again in {max(wait, 1)} s",
                reason="LOOKUP_LIMIT",
                metadata={"retry_after_seconds": str(max(wait, 1))},
            )
        times.append(now)
        if len(self._seen) > _MAX_CALLERS:
            self._forget_idle(now)

    def _forget_idle(self, now: datetime) -> None:
        for subject in [s for s, t in self._seen.items() if not t or now - t[-1] >= self.window]:
            del self._seen[subject]

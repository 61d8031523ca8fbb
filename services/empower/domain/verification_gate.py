"""A bounded queue in front of password checks, so a flood of sign-ins is refused at once.

argon2 is slow on purpose: on a loaded two-core machine one check takes most of a
second. Unbounded, a few concurrent sign-ins from one address queued every check
behind the others until each took longer than the gateway's deadline, and the
owner of an account got a timeout too. The gate lets `parallel` checks run and
`queue` more wait, at most `per_source` of them from one address; beyond that, or
when a waiting check could not start within `max_wait`, the attempt is refused
promptly with a status the gateway answers as 429 or 503 with Retry-After (never
504). The per-account and per-address delays (`SignInThrottle`) still apply first.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from services.kit.errors import ResourceExhausted, Unavailable

# ErrorInfo reason of a sign-in refused because too many are being checked.
SIGN_IN_BUSY = "SIGN_IN_BUSY"
_RETRY_AFTER = {"retry_after_seconds": "1"}


@dataclass(frozen=True)
class GateLimits:
    """How many password checks run at once, wait, and come from one address."""

    parallel: int = 2
    queue: int = 8
    per_source: int = 2
    max_wait: timedelta = timedelta(seconds=2)


class VerificationGate:
    """Admits password checks: a few run, a few wait, the rest are refused at once."""

    def __init__(self, limits: GateLimits = GateLimits()) -> None:
        self.limits = limits
        self._running = asyncio.Semaphore(limits.parallel)
        self._admitted = 0
        self._by_source: Counter[str] = Counter()

    @property
    def admitted(self) -> int:
        """Checks running or waiting now."""
        return self._admitted

    @asynccontextmanager
    async def slot(self, source: str, budget: float | None = None) -> AsyncIterator[None]:
        """Hold one of the running places for the body, or raise at once.

        RESOURCE_EXHAUSTED when the address already has `per_source` checks in the gate
        or the queue is full; UNAVAILABLE when no place came free within `max_wait`, or
        within `budget` seconds (what is left of the caller's deadline once the check
        itself is paid for), so the caller hears "busy" before its deadline passes.
        """
        wait = self.limits.max_wait.total_seconds()
        if budget is not None:
            wait = min(wait, budget)
        if wait <= 0:
            raise Unavailable("sign-in is busy; try again in a moment", reason=SIGN_IN_BUSY)
        if source and self._by_source[source] >= self.limits.per_source:
            raise ResourceExhausted(
                "a sign-in from your address is already being checked; try again in 1 s",
                reason=SIGN_IN_BUSY,
                metadata=_RETRY_AFTER,
            )
        if self._admitted >= self.limits.parallel + self.limits.queue:
            raise ResourceExhausted(
                "too many sign-ins are being checked; try again in 1 s",
                reason=SIGN_IN_BUSY,
                metadata=_RETRY_AFTER,
            )
        self._admitted += 1
        if source:
            self._by_source[source] += 1
        try:
            try:
                async with asyncio.timeout(wait):
                    await self._running.acquire()
            except TimeoutError:
                raise Unavailable(
                    "sign-in is busy; try again in a moment", reason=SIGN_IN_BUSY
                ) from None
            try:
                yield
            finally:
                self._running.release()
        finally:
            self._admitted -= 1
            if source:
                self._by_source[source] -= 1
                if self._by_source[source] <= 0:
                    del self._by_source[source]

"""Sources that keep failing to authenticate are refused before any credential is checked.

Every request without valid credentials (none, malformed, unknown, revoked, forged)
spends a token of its source address's bucket. Once the bucket is empty, requests
from that address answer 429 before authentication, so a flood of invented API keys
costs neither identity lookups nor room in the key cache. Callers with valid
credentials never touch the bucket: checking whether a source is refused is a
lookup in process memory, not a Redis round trip. The bucket itself lives with the
other limits (Redis when configured), so every replica refuses the source after its
own first failure from it.
"""

from __future__ import annotations

import math
import time

from gateway.security.ratelimit import Decision, Limit, RateLimiter


class AuthenticationFailures:
    """Counts failed authentications per source and remembers who is refused."""

    def __init__(self, limiter: RateLimiter, per_minute: int, max_sources: int = 10_000) -> None:
        self.limiter = limiter
        self.per_minute = per_minute
        self.max_sources = max_sources
        self._refused_until: dict[str, float] = {}

    def refused(self, source: str) -> Decision | None:
        """A refusal (with its wait) while `source` has no failures left, else None."""
        until = self._refused_until.get(source)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._refused_until[source]
            return None
        return Decision(False, max(1, math.ceil(left)))

    async def failed(self, source: str) -> Decision:
        """Spend a token for a failure; a refusal once the source has none left."""
        decision = await self.limiter.check(
            Limit.per_minute_with_burst(f"unauth:{source}", self.per_minute)
        )
        if not decision.allowed:
            self._remember(source, decision.retry_after_seconds)
        elif decision.remaining <= 0:
            # That was the last token: the next request waits for one to come back
            # instead of costing a lookup to find out.
            self._remember(source, math.ceil(60 / self.per_minute))
        return decision

    def _remember(self, source: str, seconds: int) -> None:
        now = time.monotonic()
        if len(self._refused_until) >= self.max_sources:
            self._refused_until = {s: t for s, t in self._refused_until.items() if t > now}
            if len(self._refused_until) >= self.max_sources:
                self._refused_until.clear()
        self._refused_until[source] = now + seconds

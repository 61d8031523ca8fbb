"""When and how long to wait before trying a call again.

429 (over quota) and 503 (a component down or busy) are answered before anything is
done, so trying again is safe; creates carry an idempotency key that stays the same on
every attempt, so even a retry after a lost answer (502, 504, a broken connection) makes
one resource. The server's
`Retry-After` wins over the client's own back-off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    attempts: int = 4  # tries in all, the first included; 1 turns retrying off
    backoff: float = 0.5  # seconds before the second try, doubled for each further one
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a server asking for a longer wait is not waited for
    statuses: frozenset[int] = frozenset({429, 503})
    # A gateway timeout may come after the work was done: retried only when repeating is
    # harmless (reads, and creates carrying their idempotency key).
    idempotent_statuses: frozenset[int] = frozenset({502, 504})

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait after failed try number `attempt` (0 = the first), or None to
        give up."""
        if attempt + 1 >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


NO_RETRY = Retry(attempts=1)

"""The outbox relay every service runs: committed facts to the bus, at least once (ADR 6).

A change is committed with its outbox rows; this loop publishes pending rows in order
and marks them published. While the bus is down the outbox keeps them and the loop
backs off; a crash between publishing and marking publishes a row again, and the
message key lets consumers drop the repeat. Each service says only how to read its
outbox as bus messages (whose `offset` is the row's sequence) and how to mark rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from services.kit import metrics
from services.kit.bus import Bus, BusMessage

log = logging.getLogger("grassroots.outbox")

Fetch = Callable[[int], Awaitable[Sequence[BusMessage]]]
Mark = Callable[[list[int]], Awaitable[None]]
Wait = Callable[[float], Awaitable[None]]


class OutboxRelay:
    def __init__(
        self,
        fetch: Fetch,
        mark: Mark,
        bus: Bus,
        stream: str,
        *,
        batch: int = 500,
        idle_seconds: float = 0.5,
        max_backoff: float = 5.0,
        wait: Wait | None = None,
    ) -> None:
        """`wait(seconds)` returns when a change is committed or the time is up; without
        it the relay waits for `notify()`."""
        self.fetch = fetch
        self.mark = mark
        self.bus = bus
        self.stream = stream
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.max_backoff = max_backoff
        self._wait = wait
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A change was committed: publish now instead of at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish what is pending now, in one round trip; how many went out."""
        messages = list(await self.fetch(self.batch))
        if not messages:
            return 0
        await self.bus.publish_many(self.stream, messages)
        await self.mark([m.offset for m in messages])
        metrics.OUTBOX_PUBLISHED.labels(self.stream).inc(len(messages))
        return len(messages)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                sent = await self.publish_pending()
                backoff = 0.1
            except Exception as exc:  # the bus is down: keep the outbox, retry later
                metrics.OUTBOX_PUBLISH_FAILURES.labels(self.stream).inc()
                log.warning("bus unavailable, %s outbox kept (%s)", self.stream, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if sent < self.batch:
                await self._idle()

    async def _idle(self) -> None:
        if self._wait is not None:
            await self._wait(self.idle_seconds)
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.idle_seconds)

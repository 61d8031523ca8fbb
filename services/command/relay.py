"""The outbox relay: publishes stored `task.*` facts to the bus, at least once.

A task change is committed with its facts; this loop publishes them in order and marks
them published. A crash between the two publishes a fact again; its key
(`<task id>:<fact>:<version>`) lets consumers drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.command.domain.ports import CommandStore
from services.kit.bus import Bus, BusMessage

log = logging.getLogger("grassroots.command.relay")

STREAM = "command"


class OutboxRelay:
    def __init__(self, store: CommandStore, bus: Bus, *, stream: str = STREAM, batch: int = 500):
        self.store = store
        self.bus = bus
        self.stream = stream
        self.batch = batch
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A change was committed: publish now instead of at the next poll."""
        self._wake.set()

    async def publish_pending(self) -> int:
        entries = await self.store.unpublished(self.batch)
        if not entries:
            return 0
        await self.bus.publish_many(
            self.stream,
            [
                BusMessage(type=e.type, key=e.key, tenant=e.tenant, offset=e.seq, payload=e.payload)
                for e in entries
            ],
        )
        await self.store.mark_published([e.seq for e in entries])
        return len(entries)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                sent = await self.publish_pending()
                backoff = 0.1
            except Exception as exc:  # the bus is down: keep the outbox, retry later
                log.warning("bus unavailable, outbox kept (%s)", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if sent < self.batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)

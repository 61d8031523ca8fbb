"""The outbox relay: publishes stored domain events to the bus, at least once.

An event is committed together with its outbox entry; this loop publishes entries in
order and marks them published. If the bus is down (Redis restarting), creates go
on succeeding and the relay catches up when it is back. A crash between publishing
and marking publishes an entry twice; consumers de-duplicate by the message key.
"""

from __future__ import annotations

import asyncio
import logging

from services.events.domain.ports import EventStore
from services.events.feed import ChangeFeed
from services.kit.bus import Bus, BusMessage

log = logging.getLogger("grassroots.events.relay")

STREAM = "events"


class OutboxRelay:
    def __init__(
        self,
        store: EventStore,
        bus: Bus,
        feed: ChangeFeed,
        *,
        stream: str = STREAM,
        batch: int = 500,
        max_backoff: float = 5.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.feed = feed
        self.stream = stream
        self.batch = batch
        self.max_backoff = max_backoff

    async def publish_pending(self) -> int:
        """Publish what is pending now, in one round trip; returns how many went out."""
        entries = await self.store.unpublished(self.batch)
        if not entries:
            return 0
        await self.bus.publish_many(
            self.stream,
            [
                BusMessage(
                    type=entry.type,
                    key=f"{entry.event_id}:{entry.seq}",
                    tenant=entry.tenant,
                    offset=entry.seq,
                    payload=entry.payload,
                    headers={"event_id": entry.event_id},
                )
                for entry in entries
            ],
        )
        await self.store.mark_published([entry.seq for entry in entries])
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
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if sent < self.batch:
                await self.feed.wait(0.5)

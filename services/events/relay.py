"""The events outbox as bus messages, for the kit's relay (ADR 6).

Keys are `<event id>:<offset>`; watchers read the outbox itself, not the bus.
"""

from __future__ import annotations

from services.events.domain.ports import EventStore
from services.events.feed import ChangeFeed
from services.kit.bus import Bus, BusMessage
from services.kit.outbox_relay import OutboxRelay
from services.kit.tracing import TRACEPARENT

STREAM = "events"


def events_relay(store: EventStore, bus: Bus, feed: ChangeFeed, *, batch: int) -> OutboxRelay:
    """The relay of the events outbox, woken by the same feed as the watchers."""

    async def fetch(limit: int) -> list[BusMessage]:
        return [
            BusMessage(
                type=entry.type,
                key=f"{entry.event_id}:{entry.seq}",
                tenant=entry.tenant,
                offset=entry.seq,
                payload=entry.payload,
                headers={"event_id": entry.event_id}
                | ({TRACEPARENT: entry.trace_context} if entry.trace_context else {}),
            )
            for entry in await store.unpublished(limit)
        ]

    return OutboxRelay(fetch, store.mark_published, bus, STREAM, batch=batch, wait=feed.wait)

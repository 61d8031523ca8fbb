"""Telling a component's other replicas that data they keep in memory changed (ADR 23).

Replicas keep rarely changing data in memory: events its category tree, the map every
layer's index and the grid. The replica that changes such data publishes a notice on
the component's `<component>.changes` stream. Every replica reads that stream through a
consumer group of its own, created when it starts at the stream's end, so each replica
sees every later notice (a shared group would hand each notice to one member only) and
reloads what the notice names from the store. A replica skips its own notices.

The notice follows the store's commit and is not in its transaction: if the bus is down
at that moment the notice is lost and other replicas keep the old copy until they
restart (the change itself is stored). Notices are rare, so the stream is never trimmed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from services.kit.bus import Bus, BusMessage, Consumer, Delivery

log = logging.getLogger("grassroots.cache")

ORIGIN_HEADER = "x-replica"
Reload = Callable[[BusMessage], Awaitable[None]]


def changes_stream(component: str) -> str:
    return f"{component}.changes"


class CacheNotices:
    """Publish this replica's changes; reload on the other replicas' changes."""

    def __init__(self, bus: Bus, component: str, reload: Reload) -> None:
        self.bus = bus
        self.stream = changes_stream(component)
        self.replica = uuid.uuid4().hex[:12]
        self.group = f"replica-{self.replica}"
        self.reload = reload
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join at the stream's end now, so no notice after this call is missed."""
        await self.bus.ensure_group(self.stream, self.group, "$")
        consumer = Consumer(
            self.bus, self.stream, self.group, self.replica, self._handle, block_ms=500
        )
        self._task = asyncio.create_task(consumer.run(self._stop), name="cache-notices")

    async def announce(self, type: str, key: str, tenant: str = "") -> None:
        """Tell the other replicas; a bus outage is logged, never raised (see above)."""
        message = BusMessage(
            type=type,
            key=key,
            tenant=tenant,
            offset=0,
            payload=b"",
            headers={ORIGIN_HEADER: self.replica},
        )
        try:
            await self.bus.publish(self.stream, message)
        except Exception as exc:
            log.warning("could not tell other replicas of %s %s (%s)", type, key, exc)

    async def _handle(self, delivery: Delivery) -> None:
        if delivery.message.headers.get(ORIGIN_HEADER) == self.replica:
            return
        await self.reload(delivery.message)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

"""A consumer loop that keeps a group moving: retry, take over, and park poison messages.

Services write an async handler per event type and run one `Consumer` per group member.
Handler failures are logged and the delivery stays pending, so it is retried once it has
been idle for `min_idle_ms` (by this consumer or any other member, which also covers a
member that died). A message delivered more than `max_deliveries` times goes to
`<stream>.dead` with an `x-dead-reason` header and is acked, so one bad message cannot
stall the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from services.kit import metrics, tracing
from services.kit.bus.base import DEAD_REASON_HEADER, Bus, Delivery, dead_stream, entry_id_key

logger = logging.getLogger(__name__)

Handler = Callable[[Delivery], Awaitable[None]]
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]

_REMEMBERED_ERRORS = 1024


class Consumer:
    """One member of a consumer group, driving `handler` until `run` is told to stop."""

    def __init__(
        self,
        bus: Bus,
        stream: str,
        group: str,
        name: str,
        handler: Handler,
        *,
        max_deliveries: int = 5,
        min_idle_ms: int = 30_000,
        count: int = 10,
        block_ms: int = 1_000,
        error_backoff_ms: int = 1_000,
        start: str = "0",
        batch_handler: BatchHandler | None = None,
    ) -> None:
        """`batch_handler`, when given, takes the deliveries of one read together (so a
        burst costs the handler one store commit, not one each); should it fail, each
        delivery is handled on its own by `handler`, so one bad message holds back no other."""
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.bus = bus
        self.stream = stream
        self.group = group
        self.name = name
        self.handler = handler
        self.max_deliveries = max_deliveries
        self.min_idle_ms = min_idle_ms
        self.count = count
        self.block_ms = block_ms
        self.error_backoff_ms = error_backoff_ms
        self.start = start
        self.batch_handler = batch_handler
        self.dead_stream = dead_stream(stream)
        # Last handler error per entry id, so the dead letter can say what went wrong.
        self._errors: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; bus outages are logged and retried, never raised."""
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    await self.bus.ensure_group(self.stream, self.group, self.start)
                    ready = True
                await self.run_once()
            except Exception:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being stopped: an error raised on the way out is not retried
                logger.exception(
                    "bus consumer error; retrying",
                    extra={"stream": self.stream, "group": self.group, "consumer": self.name},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.error_backoff_ms / 1000)

    async def run_once(self) -> int:
        """Claim stale entries, read new ones, handle them all; return how many were seen."""
        deliveries = await self.bus.claim_stale(
            self.stream, self.group, self.name, self.min_idle_ms, self.count
        )
        # Do not wait for new entries while taken-over ones are ready to be handled.
        block = 0 if deliveries else self.block_ms
        deliveries += await self.bus.read(self.stream, self.group, self.name, self.count, block)
        fresh: list[Delivery] = []
        for delivery in deliveries:
            if delivery.delivery_count > self.max_deliveries:
                await self._bury(delivery)
                continue
            self._observe_lag(delivery)
            fresh.append(delivery)
        if self.batch_handler is not None and len(fresh) > 1:
            await self._handle_batch(self.batch_handler, fresh)
        else:
            for delivery in fresh:
                await self._handle(delivery)
        return len(deliveries)

    def _observe_lag(self, delivery: Delivery) -> None:
        if delivery.delivery_count == 1:
            published_ms = entry_id_key(delivery.id)[0]
            metrics.BUS_DELIVERY_LAG.labels(self.stream, self.group).observe(
                max(0.0, time.time() - published_ms / 1000)
            )

    async def _handle_batch(self, handler: BatchHandler, deliveries: list[Delivery]) -> None:
        try:
            with tracing.consuming_many(self.stream, [d.message.headers for d in deliveries]):
                await handler(deliveries)
        except Exception:
            logger.warning(
                "bus batch handler failed; its entries are handled one by one",
                exc_info=True,
                extra={"stream": self.stream, "group": self.group, "entries": len(deliveries)},
            )
            for delivery in deliveries:
                await self._handle(delivery)
            return
        for delivery in deliveries:
            self._errors.pop(delivery.id, None)
        await self.bus.ack(self.stream, self.group, [d.id for d in deliveries])

    async def _handle(self, delivery: Delivery) -> None:
        try:
            # The handler continues the trace of the request that made the message.
            with tracing.consuming(self.stream, delivery.message.headers):
                await self.handler(delivery)
        except Exception as exc:
            self._remember(delivery.id, exc)
            logger.warning(
                "bus handler failed; the entry stays pending and will be retried",
                exc_info=True,
                extra={
                    "stream": self.stream,
                    "group": self.group,
                    "entry_id": delivery.id,
                    "event_type": delivery.message.type,
                    "event_key": delivery.message.key,
                    "delivery_count": delivery.delivery_count,
                },
            )
            return
        self._errors.pop(delivery.id, None)
        await self.bus.ack(self.stream, self.group, [delivery.id])

    async def _bury(self, delivery: Delivery) -> None:
        """Publish to the dead stream first, then ack: a crash in between duplicates it."""
        metrics.BUS_DEAD_LETTERS.labels(self.stream, self.group).inc()
        last_error = self._errors.pop(delivery.id, "unknown (failed in another consumer)")
        reason = (
            f"delivered {delivery.delivery_count} times, more than max_deliveries="
            f"{self.max_deliveries}; last error: {last_error}"
        )
        headers = {
            **delivery.message.headers,
            DEAD_REASON_HEADER: reason,
            "x-dead-stream": self.stream,
            "x-dead-group": self.group,
            "x-dead-entry-id": delivery.id,
        }
        await self.bus.publish(self.dead_stream, replace(delivery.message, headers=headers))
        await self.bus.ack(self.stream, self.group, [delivery.id])
        logger.error(
            "bus message moved to the dead stream",
            extra={
                "stream": self.stream,
                "group": self.group,
                "entry_id": delivery.id,
                "event_type": delivery.message.type,
                "event_key": delivery.message.key,
                "dead_stream": self.dead_stream,
                "reason": reason,
            },
        )

    def _remember(self, entry_id: str, exc: Exception) -> None:
        self._errors.pop(entry_id, None)
        self._errors[entry_id] = f"{type(exc).__name__}: {exc}"[:500]
        while len(self._errors) > _REMEMBERED_ERRORS:
            del self._errors[next(iter(self._errors))]

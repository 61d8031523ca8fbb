"""The plans part of the command service, started beside dispatch by `wiring`.

Three loops run next to the gRPC servicer: the outbox relay publishes
`emergency.level_changed` facts, a consumer group follows `twin.level_changed`
signals, and the service-order scheduler makes each occurrence's orders ahead of
time. The scheduler keeps its state in the store (each plan's next occurrence), so a
restart loses nothing and an occurrence due while the service was down is made once
when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from grassroots.command.v1 import plans_service_pb2_grpc as pb_grpc
from services.command.config import CommandSettings
from services.command.domain.plan_facts import STREAM, TWIN_LEVEL_CHANGED, TWIN_STREAM
from services.command.domain.plans_desk import PlansDesk
from services.command.plans_api import (
    SERVICE_NAME,
    PlansServicer,
    change_to_bytes,
    signal_from_bytes,
)
from services.command.store.plans_postgres import PostgresPlansStore
from services.command.store.plans_sqlite import SqlitePlansStore
from services.kit.bus import Bus, BusMessage, Consumer, Delivery

log = logging.getLogger("grassroots.command.plans")

SIGNAL_GROUP = "command-plans"


async def open_plans_store(settings: CommandSettings) -> SqlitePlansStore | PostgresPlansStore:
    if settings.backend == "postgres":
        return await PostgresPlansStore.open(settings.postgres_dsn)
    return SqlitePlansStore(settings.database, synchronous=settings.sqlite_synchronous)


class PlansRelay:
    """Publishes the plans outbox in order, at least once (consumers de-duplicate by key)."""

    def __init__(self, store: SqlitePlansStore | PostgresPlansStore, bus: Bus, batch: int) -> None:
        self.store = store
        self.bus = bus
        self.batch = batch
        self.wake = asyncio.Event()

    async def publish_pending(self) -> int:
        pending = await self.store.unpublished(self.batch)
        if not pending:
            return 0
        await self.bus.publish_many(
            STREAM,
            [
                BusMessage(type=f.type, key=f.key, tenant=f.tenant, offset=seq, payload=f.payload)
                for seq, f in pending
            ],
        )
        await self.store.mark_published([seq for seq, _ in pending])
        return len(pending)

    async def run(self, stop: asyncio.Event, poll_seconds: float) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                sent = await self.publish_pending()
            except Exception as exc:  # the bus is down: the outbox keeps the facts
                log.warning("bus unavailable, plans outbox kept (%s)", exc)
                sent = 0
            if sent < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), poll_seconds)


async def run_scheduler(
    desk: PlansDesk,
    lead: timedelta,
    poll_seconds: float,
    stop: asyncio.Event,
    wake: asyncio.Event,
) -> None:
    """Make due occurrences' orders until stopped, looking every `poll_seconds` and
    whenever `wake` is set (a new plan); a failing round is logged and retried."""
    while not stop.is_set():
        wake.clear()
        try:
            while await desk.generate_due(lead):
                pass
        except Exception:
            log.exception("service order generation failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_seconds)


def signal_handler(desk: PlansDesk) -> Callable[[Delivery], Awaitable[None]]:
    async def handle(delivery: Delivery) -> None:
        if delivery.message.type != TWIN_LEVEL_CHANGED:
            return
        await desk.apply_signal(signal_from_bytes(delivery.message.payload))

    return handle


@dataclass
class Plans:
    """The started plans part: what to register on the server and what to stop."""

    servicer: PlansServicer
    desk: PlansDesk
    store: SqlitePlansStore | PostgresPlansStore
    relay: PlansRelay
    stop: Callable[[], Awaitable[None]]

    def registration(self) -> tuple[PlansServicer, Callable[..., None]]:
        return self.servicer, pb_grpc.add_PlansServiceServicer_to_server


async def assemble_plans(settings: CommandSettings, bus: Bus, member: str) -> Plans:
    store = await open_plans_store(settings)
    relay = PlansRelay(store, bus, settings.outbox_batch)
    scheduler_wake = asyncio.Event()
    desk = PlansDesk(
        store, change_to_bytes, on_fact=relay.wake.set, on_service_plan=scheduler_wake.set
    )
    consumer = Consumer(bus, TWIN_STREAM, SIGNAL_GROUP, member, signal_handler(desk))
    stop = asyncio.Event()
    lead = timedelta(hours=settings.service_order_lead_hours)
    tasks = [
        asyncio.create_task(relay.run(stop, settings.plans_poll_seconds)),
        asyncio.create_task(consumer.run(stop)),
        asyncio.create_task(
            run_scheduler(desk, lead, settings.service_order_poll_seconds, stop, scheduler_wake)
        ),
    ]

    async def stop_all() -> None:
        stop.set()
        relay.wake.set()
        scheduler_wake.set()
        await asyncio.gather(*tasks)
        result = store.close()
        if asyncio.iscoroutine(result):
            await result

    return Plans(PlansServicer(desk), desk, store, relay, stop_all)


__all__ = ["SERVICE_NAME", "Plans", "assemble_plans"]

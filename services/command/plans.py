"""The plans part of the command service, started beside dispatch by `wiring`.

Two loops run next to the gRPC servicer: the outbox relay publishes
`emergency.level_changed` facts, and a consumer group follows `twin.level_changed`
signals. Service orders ride on command's durable timers: each plan's next
occurrence is a timer row due a lead before the visit, so a restart loses nothing
and an occurrence due while the service was down is made once when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from grassroots.command.v1 import plans_service_pb2_grpc as pb_grpc
from services.command.config import CommandSettings
from services.command.domain.plan_facts import STREAM, TWIN_LEVEL_CHANGED, TWIN_STREAM
from services.command.domain.plans_desk import FollowPlan, Handlers, PlansDesk
from services.command.domain.ports import PeoplePort
from services.command.domain.service_orders import ServicePlan
from services.command.domain.timers import Scheduler, Timer
from services.command.plans_api import (
    SERVICE_NAME,
    PlansServicer,
    change_to_bytes,
    signal_from_bytes,
)
from services.command.store.plans_postgres import PostgresPlansStore
from services.command.store.plans_rows import from_us, us
from services.command.store.plans_sqlite import SqlitePlansStore
from services.kit.bus import Bus, BusMessage, Consumer, Delivery
from services.kit.clock import Clock, utcnow
from services.kit.lease import Singletons
from services.kit.outbox_relay import OutboxRelay

log = logging.getLogger("grassroots.command.plans")

SIGNAL_GROUP = "command-plans"


async def open_plans_store(settings: CommandSettings) -> SqlitePlansStore | PostgresPlansStore:
    if settings.backend == "postgres":
        return await PostgresPlansStore.open(settings.postgres_dsn)
    return SqlitePlansStore(settings.database, synchronous=settings.sqlite_synchronous)


def plans_relay(
    store: SqlitePlansStore | PostgresPlansStore, bus: Bus, batch: int, poll_seconds: float
) -> OutboxRelay:
    """The plans outbox (`emergency.level_changed`) on the command stream, at least once."""

    async def fetch(limit: int) -> list[BusMessage]:
        return [
            BusMessage(type=f.type, key=f.key, tenant=f.tenant, offset=seq, payload=f.payload)
            for seq, f in await store.unpublished(limit)
        ]

    return OutboxRelay(
        fetch, store.mark_published, bus, STREAM, batch=batch, idle_seconds=poll_seconds
    )


OCCURRENCE = "plans.occurrence"
MISSED = "plans.missed"
RELAY_LEASE = "command.plans-relay"


class OccurrenceTimers:
    """Each service plan's next occurrence as a durable timer (services/command/domain/
    timers.py), due `lead` before the visit; firing it makes the occurrence's orders and
    schedules the next one. Timer ids name the plan and the occurrence, so scheduling is
    idempotent and a replayed firing makes nothing twice."""

    def __init__(self, scheduler: Scheduler, lead: timedelta) -> None:
        self.scheduler = scheduler
        self.lead = lead
        self.desk: PlansDesk | None = None

    async def schedule(self, plan: ServicePlan) -> None:
        occurrence = plan.next_occurrence
        if occurrence is None:
            return
        timer = Timer(
            id=f"{OCCURRENCE}/{plan.id}/{us(occurrence)}",
            tenant=plan.tenant,
            kind=OCCURRENCE,
            due=occurrence - self.lead,
            payload=plan.id,
        )
        await self.scheduler.schedule([timer])

    async def forget(
        self, plan_id: str, occurrence: datetime | None, missed: Sequence[datetime] = ()
    ) -> None:
        ids = [f"{MISSED}/{plan_id}/{us(m)}" for m in missed]
        if occurrence is not None:
            ids.append(f"{OCCURRENCE}/{plan_id}/{us(occurrence)}")
        if ids:
            await self.scheduler.cancel(ids)

    async def fire(self, timers: Sequence[Timer]) -> None:
        assert self.desk is not None, "the desk is attached before the scheduler runs"
        for timer in timers:
            plan = await self.desk.catch_up(timer.payload, self.lead)
            if plan is not None:
                await self.schedule(plan)

    async def escalate_after(self, plan: ServicePlan, occurrence: datetime) -> None:
        """A timer at the occurrence's due time that escalates its missed orders."""
        due = occurrence + timedelta(minutes=plan.definition.visit_minutes)
        timer = Timer(
            id=f"{MISSED}/{plan.id}/{us(occurrence)}",
            tenant=plan.tenant,
            kind=MISSED,
            due=due,
            payload=f"{plan.id}/{us(occurrence)}",
        )
        await self.scheduler.schedule([timer])

    async def fire_missed(self, timers: Sequence[Timer]) -> None:
        assert self.desk is not None, "the desk is attached before the scheduler runs"
        for timer in timers:
            plan_id, occurrence = timer.payload.rsplit("/", 1)
            await self.desk.escalate_missed(plan_id, from_us(int(occurrence)))

    async def reconcile(self, store: SqlitePlansStore | PostgresPlansStore) -> int:
        """At start, a timer for every plan's next occurrence: a crash between storing a
        plan and scheduling its timer must not leave the plan silent forever."""
        plans = await store.due_service_plans(FAR_FUTURE, RECONCILE_LIMIT)
        for plan in plans:
            await self.schedule(plan)
        return len(plans)


FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)
RECONCILE_LIMIT = 1_000_000


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
    relay: OutboxRelay
    stop: Callable[[], Awaitable[None]]

    def registration(self) -> tuple[PlansServicer, Callable[..., None]]:
        return self.servicer, pb_grpc.add_PlansServiceServicer_to_server


async def assemble_plans(
    settings: CommandSettings,
    bus: Bus,
    member: str,
    scheduler: Scheduler,
    singletons: Singletons,
    clock: Clock = utcnow,
    handlers: Handlers | None = None,
    follow_plan: FollowPlan | None = None,
    people: PeoplePort | None = None,
) -> Plans:
    """Store, desk, relay and signal consumer; service orders ride on `scheduler`'s timers
    (register before the scheduler runs its first round). The relay runs under
    `singletons`, in one replica at a time; the caller stops them. `handlers` reads
    dispatch's handler profiles (plans that name no carers, escalations); `follow_plan`
    opens and closes the tasks of a plan whose level changed (dispatch's desk), and is
    run over every plan at start; `people` (identity) checks the carers a plan names."""
    store = await open_plans_store(settings)
    relay = plans_relay(store, bus, settings.outbox_batch, settings.plans_poll_seconds)
    lead = timedelta(hours=settings.service_order_lead_hours)
    occurrences = OccurrenceTimers(scheduler, lead)
    desk = PlansDesk(
        store,
        change_to_bytes,
        on_fact=relay.notify,
        occurrences=occurrences,
        clock=clock,
        handlers=handlers,
        follow_plan=follow_plan,
        people=people,
    )
    occurrences.desk = desk
    scheduler.on(OCCURRENCE, occurrences.fire)
    scheduler.on(MISSED, occurrences.fire_missed)
    await occurrences.reconcile(store)
    await desk.follow_all()
    consumer = Consumer(bus, TWIN_STREAM, SIGNAL_GROUP, member, signal_handler(desk))
    singletons.start(RELAY_LEASE, relay.run)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consumer.run(stop))]

    async def stop_all() -> None:
        stop.set()
        await asyncio.gather(*tasks)
        result = store.close()
        if asyncio.iscoroutine(result):
            await result

    return Plans(PlansServicer(desk), desk, store, relay, stop_all)


__all__ = ["SERVICE_NAME", "Plans", "assemble_plans"]

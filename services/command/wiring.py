"""Assemble the command service from its settings: the one start-up `__main__` and tests share."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from services.command.api import build_component, serialize_task
from services.command.config import CommandSettings
from services.command.domain.service import CommandDesk
from services.command.domain.timers import Scheduler
from services.command.events_client import EventsClient
from services.command.intake import EventSync, Intake
from services.command.people_client import IdentityPeople
from services.command.plans import SERVICE_NAME as PLANS_SERVICE_NAME
from services.command.plans import Plans, assemble_plans
from services.command.relay import STREAM, command_relay
from services.command.roads_client import MapRoads
from services.command.store.postgres import PostgresCommandStore
from services.command.store.sqlite import SqliteCommandStore
from services.kit import metrics
from services.kit.bus import Bus, Consumer, open_bus
from services.kit.clock import offset_clock
from services.kit.component import ServiceComponent
from services.kit.lease import Singletons
from services.kit.map_layers import follow_map_notices
from services.kit.outbox_relay import OutboxRelay

RELAY_LEASE = "command.outbox-relay"
log = logging.getLogger("grassroots.command")


def check_backend(settings: CommandSettings) -> None:
    """Refuse to start, naming the variable, when PostgreSQL is chosen without a DSN."""
    if settings.backend == "postgres" and not settings.postgres_dsn:
        raise SystemExit(
            "invalid configuration for CommandSettings: GRASSROOTS_COMMAND_POSTGRES_DSN must be "
            "set when GRASSROOTS_COMMAND_BACKEND is postgres"
        )


async def open_store(settings: CommandSettings) -> SqliteCommandStore | PostgresCommandStore:
    """The store the settings choose; PostgreSQL is reached (and its schema made) here."""
    check_backend(settings)
    if settings.backend == "postgres":
        return await PostgresCommandStore.open(settings.postgres_dsn)
    return SqliteCommandStore(settings.database, synchronous=settings.sqlite_synchronous)


def member_name(settings: CommandSettings) -> str:
    """This process's name in the consumer group and as the owner of timer leases."""
    return settings.consumer_name or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Command:
    """A started command service: its component and the parts behind it (tests look in)."""

    component: ServiceComponent
    store: SqliteCommandStore | PostgresCommandStore
    bus: Bus
    scheduler: Scheduler
    relay: OutboxRelay
    desk: CommandDesk
    events: EventsClient
    plans: Plans
    singletons: Singletons


async def assemble(settings: CommandSettings) -> Command:
    """Store, bus, durable timers and the outbox relay, as production runs them."""
    store = await open_store(settings)
    bus = open_bus(settings.bus_url or str(settings.database.with_name("events-bus.sqlite3")))
    name = member_name(settings)
    clock = offset_clock(settings.clock_offset_file)
    scheduler = Scheduler(
        store,
        owner=name,
        batch=settings.timer_batch,
        lease=timedelta(seconds=settings.timer_lease_seconds),
        poll_seconds=settings.timer_poll_seconds,
        clock=clock,
    )
    relay = command_relay(store, bus, batch=settings.outbox_batch)
    events = EventsClient(settings.events_address, settings.call_timeout_seconds)
    roads = (
        MapRoads(
            settings.map_address,
            settings.call_timeout_seconds,
            settings.road_layer,
            settings.layer_recheck_seconds,
        )
        if settings.map_address
        else None
    )
    people = (
        IdentityPeople(settings.empower_address, settings.call_timeout_seconds)
        if settings.empower_address
        else None
    )
    if people is None:
        log.warning("no empower address: handler profiles' users are not checked in identity")
    notices = await follow_map_notices(settings.bus_url, bus, roads.on_notice) if roads else None
    desk = CommandDesk(
        store,
        events,
        scheduler,
        serialize=serialize_task,
        on_change=relay.notify,
        on_breach=metrics.record_sla_breach,
        clock=clock,
        roads=roads,
        people=people,
    )
    # Several members read the group at once, so one report waiting on the store does
    # not hold up the next; each delivery still goes to exactly one of them.
    intake_handler = Intake(desk)
    intake = [
        Consumer(
            bus,
            settings.events_stream,
            settings.consumer_group,
            f"{name}-{n}",
            intake_handler,
            min_idle_ms=settings.redelivery_idle_ms,
            block_ms=200,
            count=settings.intake_batch,
            batch_handler=intake_handler.many,
        )
        for n in range(settings.intake_members)
    ]
    sync = Consumer(
        bus,
        STREAM,
        settings.consumer_group + "-event-sync",
        name,
        EventSync(events),
        min_idle_ms=settings.redelivery_idle_ms,
        block_ms=200,
    )
    # Emergency plans, service orders and the command log (services/command/plans.py);
    # their timer kinds are registered before the scheduler's first round.
    # The outbox relays run in one replica at a time (ADR 23); timers are claimed row by
    # row and consumer groups share deliveries, so those run in every replica.
    singletons = Singletons(
        settings.postgres_dsn if settings.backend == "postgres" else "", settings.lease_seconds
    )
    singletons.start(RELAY_LEASE, relay.run)
    plans = await assemble_plans(
        settings,
        bus,
        name,
        scheduler,
        singletons,
        clock,
        handlers=lambda tenant, role: store.candidates([tenant], role, ""),
        follow_plan=desk.follow_plan,
        people=people,
    )
    # Escalations that find nobody are decisions of the command log too.
    desk.log_entries = plans.store.append_log
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(scheduler.run(stop)),
        *(asyncio.create_task(member.run(stop)) for member in intake),
        asyncio.create_task(sync.run(stop)),
    ]

    async def stop_tasks() -> None:
        stop.set()
        scheduler.wake()
        await asyncio.gather(*tasks)
        await singletons.stop(relay.notify, plans.relay.notify)
        if notices is not None:
            await notices.stop()
        if roads is not None:
            await roads.close()
        if people is not None:
            await people.close()

    servicer, add = plans.registration()
    component = build_component(
        desk,
        [stop_tasks, plans.stop, events.close, bus.close, store.close],
        [(servicer, add, PLANS_SERVICE_NAME)],
    )
    return Command(component, store, bus, scheduler, relay, desk, events, plans, singletons)


async def build(settings: CommandSettings) -> ServiceComponent:
    """The component `run_service` serves."""
    return (await assemble(settings)).component

"""The empowerment half of the service: fill-once forms and reports, points, notices.

`open_empowerment` builds their stores, domain objects, servicers and background
loops from the settings; `wiring.build` adds them to the component beside tenants,
identity and people.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grassroots.empower.v1 import credit_service_pb2 as credit_pb
from grassroots.empower.v1 import credit_service_pb2_grpc as credit_grpc
from grassroots.empower.v1 import forms_service_pb2 as forms_pb
from grassroots.empower.v1 import forms_service_pb2_grpc as forms_grpc
from grassroots.empower.v1 import notices_service_pb2 as notices_pb
from grassroots.empower.v1 import notices_service_pb2_grpc as notices_grpc
from grassroots.empower.v1 import points_service_pb2 as points_pb
from grassroots.empower.v1 import points_service_pb2_grpc as points_grpc
from services.empower.config import EmpowerSettings
from services.empower.credit_api import CreditServicer, IdentityApps
from services.empower.domain import facts
from services.empower.domain.audit import AuditLog
from services.empower.domain.credit import CreditDesk
from services.empower.domain.forms import FormsDesk
from services.empower.domain.forms_model import FormRecord
from services.empower.domain.identity_ports import IdentityStore
from services.empower.domain.notices import NoticeBoard
from services.empower.domain.notices_model import Channel
from services.empower.domain.notices_ports import NoticeChannel
from services.empower.domain.people_ports import PeopleStore
from services.empower.domain.points import PointsLedger
from services.empower.domain.record_facts import record_fact
from services.empower.forms_api import FormsServicer
from services.empower.loop_activity import GrpcLoopActivity
from services.empower.map_addresses import MapAddresses
from services.empower.notice_audience import RegistryAudience
from services.empower.notice_channels import InAppChannel, SmsChannel, WeChatChannel
from services.empower.notices_api import NoticesServicer
from services.empower.plan_notices import PlanNotices
from services.empower.points_api import PointsServicer
from services.empower.points_facts import PointsFacts
from services.empower.store.credit_postgres import PostgresCreditStore
from services.empower.store.credit_sqlite import SqliteCreditStore
from services.empower.store.forms_postgres import PostgresFormsStore
from services.empower.store.forms_sqlite import SqliteFormsStore
from services.empower.store.notices_postgres import PostgresNoticesStore
from services.empower.store.notices_sqlite import SqliteNoticesStore
from services.empower.store.points_postgres import PostgresPointsStore
from services.empower.store.points_sqlite import SqlitePointsStore
from services.kit.bus import Bus, open_bus
from services.kit.lease import Singletons
from services.kit.outbox_relay import OutboxRelay
from services.kit.sealing import Sealer

FORMS_SERVICE = forms_pb.DESCRIPTOR.services_by_name["FormsService"].full_name
POINTS_SERVICE = points_pb.DESCRIPTOR.services_by_name["PointsService"].full_name
NOTICES_SERVICE = notices_pb.DESCRIPTOR.services_by_name["NoticesService"].full_name
CREDIT_SERVICE = credit_pb.DESCRIPTOR.services_by_name["CreditService"].full_name
SERVICE_NAMES = (FORMS_SERVICE, POINTS_SERVICE, NOTICES_SERVICE, CREDIT_SERVICE)
REPORTS_LEASE = "empower.scheduled-reports"
DELIVERIES_LEASE = "empower.notice-deliveries"
POINTS_RELAY_LEASE = "empower.points-outbox-relay"
NOTICES_RELAY_LEASE = "empower.notices-outbox-relay"


log = logging.getLogger("grassroots.empower")

Servicer = tuple[Any, Callable[[Any, Any], None]]


@dataclass
class Empowerment:
    ledger: PointsLedger
    desk: FormsDesk
    board: NoticeBoard
    bus: Bus
    servicers: list[Servicer]
    closers: list[Callable[[], Any]] = field(default_factory=list)
    singletons: Singletons | None = None


async def run_scheduled_reports(desk: FormsDesk, every_seconds: float, stop: asyncio.Event) -> None:
    """Run the reports whose schedule is due, every `every_seconds`, until stopped."""
    while not stop.is_set():
        try:
            await desk.run_due()
        except Exception:  # a bad template or a store outage must not stop the schedule
            log.exception("scheduled reports failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)


async def run_deliveries(board: NoticeBoard, every_seconds: float, stop: asyncio.Event) -> None:
    """Attempt due deliveries (first tries and retries) until stopped."""
    while not stop.is_set():
        try:
            await board.dispatch_due()
        except Exception:  # a store outage must not stop delivery for good
            log.exception("notice delivery failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)


def bus_url(settings: EmpowerSettings) -> str:
    return settings.bus_url or str(settings.database.with_name("bus.sqlite3"))


async def open_empowerment(
    settings: EmpowerSettings,
    audit: AuditLog,
    identity: IdentityStore,
    people: PeopleStore,
    sealer: Sealer,
) -> Empowerment:
    """Stores on the configured backend, the points consumers started on the bus."""
    points: SqlitePointsStore | PostgresPointsStore
    forms: SqliteFormsStore | PostgresFormsStore
    notices: SqliteNoticesStore | PostgresNoticesStore
    credit: SqliteCreditStore | PostgresCreditStore
    if settings.backend == "postgres":
        points = await PostgresPointsStore.open(settings.postgres_dsn)
        forms = await PostgresFormsStore.open(settings.postgres_dsn)
        notices = await PostgresNoticesStore.open(settings.postgres_dsn)
        credit = await PostgresCreditStore.open(settings.postgres_dsn)
    else:
        stem = settings.database.stem
        points = SqlitePointsStore(settings.database.with_name(stem + "-points.sqlite3"))
        forms = SqliteFormsStore(settings.database.with_name(stem + "-forms.sqlite3"))
        notices = SqliteNoticesStore(settings.database.with_name(stem + "-notices.sqlite3"))
        credit = SqliteCreditStore(settings.database.with_name(stem + "-credit.sqlite3"))
    ledger = PointsLedger(points)
    credit_desk = CreditDesk(credit, points, points, IdentityApps(identity), audit)
    closers: list[Callable[[], Any]] = []
    places = None
    if settings.map_address:
        # A record's grid cell and building must be its village's own, as the map knows it.
        places = MapAddresses(settings.map_address)
        closers.append(places.close)
    activity = None
    if settings.events_address and settings.command_address:
        # Reports over events and tasks read them from their own services.
        activity = GrpcLoopActivity(settings.events_address, settings.command_address)
        closers.append(activity.close)

    async def pay_for(record: FormRecord) -> None:
        """A record naming a household or person is a fact the points rules may pay for."""
        fact = record_fact(record)
        if fact is not None:
            await ledger.apply_fact(fact)

    desk = FormsDesk(forms, places=places, activity=activity, on_record=pay_for)
    channels: dict[Channel, NoticeChannel] = {Channel.IN_APP: InAppChannel()}
    if settings.sms_gateway_url:
        sms = SmsChannel(settings.sms_gateway_url, settings.sms_gateway_key.get_secret_value())
        channels[Channel.SMS] = sms
        closers.append(sms.close)
    if settings.wechat_gateway_url:
        wechat = WeChatChannel(
            settings.wechat_gateway_url, settings.wechat_gateway_key.get_secret_value()
        )
        channels[Channel.WECHAT] = wechat
        closers.append(wechat.close)
    board = NoticeBoard(
        notices, RegistryAudience(identity, people, sealer, notices), channels, audit
    )
    bus = open_bus(bus_url(settings))
    streams = tuple(s.strip() for s in settings.points_fact_streams.split(",") if s.strip())
    stop = asyncio.Event()
    # The points consumers share their groups with other replicas; scheduled reports and
    # notice deliveries run in one replica at a time (ADR 23), or a notice went out twice.
    tasks = [
        asyncio.create_task(PointsFacts(ledger, bus, streams, settings.consumer_name).run(stop)),
    ]
    plan_streams = tuple(s.strip() for s in settings.plan_fact_streams.split(",") if s.strip())
    if plan_streams:
        # An emergency level's notices become the village's notices (ADR 39).
        plan_notices = PlanNotices(board, bus, plan_streams, settings.consumer_name)
        tasks.append(asyncio.create_task(plan_notices.run(stop)))
    singletons = Singletons(
        settings.postgres_dsn if settings.backend == "postgres" else "", settings.lease_seconds
    )
    singletons.start(
        REPORTS_LEASE,
        lambda until: run_scheduled_reports(desk, settings.report_schedule_seconds, until),
    )
    singletons.start(
        DELIVERIES_LEASE,
        lambda until: run_deliveries(board, settings.notice_dispatch_seconds, until),
    )
    # Points and notices facts were committed with their changes; the relays put them
    # on the bus, one replica at a time, so none is lost on a crash (ADR 6).
    relays = [
        OutboxRelay(points.unpublished, points.mark_published, bus, facts.STREAM),
        OutboxRelay(notices.unpublished, notices.mark_published, bus, facts.STREAM),
    ]
    singletons.start(POINTS_RELAY_LEASE, relays[0].run)
    singletons.start(NOTICES_RELAY_LEASE, relays[1].run)

    async def stop_tasks() -> None:
        stop.set()
        await asyncio.gather(*tasks)
        await singletons.stop()

    servicers: list[Servicer] = [
        (FormsServicer(desk), forms_grpc.add_FormsServiceServicer_to_server),
        (PointsServicer(ledger), points_grpc.add_PointsServiceServicer_to_server),
        (NoticesServicer(board), notices_grpc.add_NoticesServiceServicer_to_server),
        (CreditServicer(credit_desk), credit_grpc.add_CreditServiceServicer_to_server),
    ]
    return Empowerment(
        ledger,
        desk,
        board,
        bus,
        servicers,
        [stop_tasks, *closers, bus.close, points.close, forms.close, notices.close, credit.close],
        singletons,
    )

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

from grassroots.empower.v1 import forms_service_pb2 as forms_pb
from grassroots.empower.v1 import forms_service_pb2_grpc as forms_grpc
from grassroots.empower.v1 import notices_service_pb2 as notices_pb
from grassroots.empower.v1 import notices_service_pb2_grpc as notices_grpc
from grassroots.empower.v1 import points_service_pb2 as points_pb
from grassroots.empower.v1 import points_service_pb2_grpc as points_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.audit import AuditLog
from services.empower.domain.forms import FormsDesk
from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.people import PeopleRegistry
from services.empower.domain.points import PointsLedger
from services.empower.forms_api import FormsServicer
from services.empower.points_api import PointsServicer
from services.empower.points_facts import PointsFacts
from services.empower.store.forms_postgres import PostgresFormsStore
from services.empower.store.forms_sqlite import SqliteFormsStore
from services.empower.store.points_postgres import PostgresPointsStore
from services.empower.store.points_sqlite import SqlitePointsStore
from services.kit.bus import Bus, open_bus
from services.kit.unimplemented import fill_unimplemented

FORMS_SERVICE = forms_pb.DESCRIPTOR.services_by_name["FormsService"].full_name
POINTS_SERVICE = points_pb.DESCRIPTOR.services_by_name["PointsService"].full_name
NOTICES_SERVICE = notices_pb.DESCRIPTOR.services_by_name["NoticesService"].full_name
SERVICE_NAMES = (FORMS_SERVICE, POINTS_SERVICE, NOTICES_SERVICE)


class NoticesServicer(notices_grpc.NoticesServiceServicer):
    pass


fill_unimplemented(NoticesServicer, NOTICES_SERVICE, "notices")

log = logging.getLogger("grassroots.empower")

Servicer = tuple[Any, Callable[[Any, Any], None]]


@dataclass
class Empowerment:
    ledger: PointsLedger
    desk: FormsDesk
    bus: Bus
    servicers: list[Servicer]
    closers: list[Callable[[], Any]] = field(default_factory=list)


async def run_scheduled_reports(desk: FormsDesk, every_seconds: float, stop: asyncio.Event) -> None:
    """Run the reports whose schedule is due, every `every_seconds`, until stopped."""
    while not stop.is_set():
        try:
            await desk.run_due()
        except Exception:  # a bad template or a store outage must not stop the schedule
            log.exception("scheduled reports failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)


def bus_url(settings: EmpowerSettings) -> str:
    return settings.bus_url or str(settings.database.with_name("bus.sqlite3"))


async def open_empowerment(
    settings: EmpowerSettings,
    registry: PeopleRegistry,
    directory: IdentityDirectory,
    audit: AuditLog,
) -> Empowerment:
    """Stores on the configured backend, the points consumers started on the bus."""
    points: SqlitePointsStore | PostgresPointsStore
    forms: SqliteFormsStore | PostgresFormsStore
    if settings.backend == "postgres":
        points = await PostgresPointsStore.open(settings.postgres_dsn)
        forms = await PostgresFormsStore.open(settings.postgres_dsn)
    else:
        stem = settings.database.stem
        points = SqlitePointsStore(settings.database.with_name(stem + "-points.sqlite3"))
        forms = SqliteFormsStore(settings.database.with_name(stem + "-forms.sqlite3"))
    ledger = PointsLedger(points)
    desk = FormsDesk(forms)
    bus = open_bus(bus_url(settings))
    streams = tuple(s.strip() for s in settings.points_fact_streams.split(",") if s.strip())
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(PointsFacts(ledger, bus, streams, settings.consumer_name).run(stop)),
        asyncio.create_task(run_scheduled_reports(desk, settings.report_schedule_seconds, stop)),
    ]

    async def stop_tasks() -> None:
        stop.set()
        await asyncio.gather(*tasks)

    servicers: list[Servicer] = [
        (FormsServicer(desk), forms_grpc.add_FormsServiceServicer_to_server),
        (PointsServicer(ledger), points_grpc.add_PointsServiceServicer_to_server),
        (NoticesServicer(), notices_grpc.add_NoticesServiceServicer_to_server),  # type: ignore[abstract]
    ]
    return Empowerment(
        ledger, desk, bus, servicers, [stop_tasks, bus.close, points.close, forms.close]
    )

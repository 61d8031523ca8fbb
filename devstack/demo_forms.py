"""Fill once, report many, in the demo town: one fire-safety inspection form, three reports.

The town defines the inspection once; grid workers of both villages have filled it in
for residential buildings over the past weeks; the fire brigade, the town's safety
office and the town's statistics each get their own table from the same records, so
the number of inspections, hazards and blocked exits agree wherever two tables count
them. Everything goes through the empower service's public gRPC contract, with fixed
request_ids, so a second start installs nothing twice.

ALL RECORDS HERE ARE INVENTED.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import grpc
import pyogrio

from grassroots.empower.v1 import forms_service_pb2 as pb
from grassroots.empower.v1 import forms_service_pb2_grpc as pb_grpc
from services.kit import tenancy
from services.kit.principal import Principal

SEED = 20261203
RECORDS = 48
TOWN = "sh/jiading/anting"
FORM_ID = "fire-safety-inspection"
FORM = f"{tenancy.tenant_name(TOWN)}/forms/{FORM_ID}"
INSTALLER = Principal(
    subject="services/demo-import",
    tenant=TOWN,
    kind="service",
    scopes=frozenset({"forms:write", "reports:read"}),
)
F = pb.FormField
C = pb.ReportColumn

FIELDS = [
    F(key="building", label="Building", type=F.TYPE_TEXT, required=True, max_length=64),
    F(key="inspected_on", label="Inspection date", type=F.TYPE_DATE, required=True),
    F(key="location", label="Where", type=F.TYPE_LOCATION),
    F(
        key="extinguishers",
        label="Extinguishers checked",
        type=F.TYPE_INTEGER,
        required=True,
        minimum=0,
        maximum=500,
    ),
    F(
        key="extinguishers_expired",
        label="Extinguishers expired",
        type=F.TYPE_INTEGER,
        minimum=0,
        maximum=500,
    ),
    F(key="exits_blocked", label="Escape route blocked", type=F.TYPE_BOOLEAN, required=True),
    F(key="ebike_charging_indoors", label="E-bikes charged indoors", type=F.TYPE_BOOLEAN),
    F(
        key="hazard_level",
        label="Worst hazard",
        type=F.TYPE_CHOICE,
        required=True,
        options=["none", "minor", "major"],
    ),
    F(
        key="hazards_found",
        label="Hazards found",
        type=F.TYPE_INTEGER,
        required=True,
        minimum=0,
        maximum=100,
    ),
    F(
        key="rectified_on_site",
        label="Rectified on the spot",
        type=F.TYPE_INTEGER,
        minimum=0,
        maximum=100,
    ),
    F(key="notes", label="Notes", type=F.TYPE_TEXT, max_length=500),
]

TEMPLATES = {
    "fire-brigade": pb.ReportTemplate(
        display_name="Fire brigade: building inspection ledger",
        department="Anting fire and rescue station",
        form=FORM,
        group_by=["building"],
        columns=[
            C(label="Building", aggregate=C.AGGREGATE_GROUP, field="building"),
            C(label="Inspections", aggregate=C.AGGREGATE_COUNT),
            C(label="Extinguishers checked", aggregate=C.AGGREGATE_SUM, field="extinguishers"),
            C(
                label="Extinguishers expired",
                aggregate=C.AGGREGATE_SUM,
                field="extinguishers_expired",
            ),
            C(label="Escape routes blocked", aggregate=C.AGGREGATE_COUNT_IF, field="exits_blocked"),
            C(label="Hazards found", aggregate=C.AGGREGATE_SUM, field="hazards_found"),
        ],
        schedule=pb.ReportTemplate.SCHEDULE_WEEKLY,
    ),
    "safety-office": pb.ReportTemplate(
        display_name="Safety office: hazards by grid cell",
        department="Anting town safety office",
        form=FORM,
        group_by=["grid_cell"],
        columns=[
            C(label="Grid cell", aggregate=C.AGGREGATE_GROUP, field="grid_cell"),
            C(label="Inspections", aggregate=C.AGGREGATE_COUNT),
            C(label="Hazards found", aggregate=C.AGGREGATE_SUM, field="hazards_found"),
            C(label="Rectified on the spot", aggregate=C.AGGREGATE_SUM, field="rectified_on_site"),
            C(
                label="Major hazards",
                aggregate=C.AGGREGATE_COUNT_IF,
                field="hazard_level",
                equals="major",
            ),
            C(
                label="E-bikes charged indoors",
                aggregate=C.AGGREGATE_COUNT_IF,
                field="ebike_charging_indoors",
            ),
        ],
        schedule=pb.ReportTemplate.SCHEDULE_DAILY,
    ),
    "town-statistics": pb.ReportTemplate(
        display_name="Town statistics: fire-safety inspections by village and month",
        department="Anting town statistics",
        form=FORM,
        group_by=["tenant", "month"],
        columns=[
            C(label="Village", aggregate=C.AGGREGATE_GROUP, field="tenant"),
            C(label="Month", aggregate=C.AGGREGATE_GROUP, field="month"),
            C(label="Inspections", aggregate=C.AGGREGATE_COUNT),
            C(label="Hazards found", aggregate=C.AGGREGATE_SUM, field="hazards_found"),
            C(label="Escape routes blocked", aggregate=C.AGGREGATE_COUNT_IF, field="exits_blocked"),
        ],
        schedule=pb.ReportTemplate.SCHEDULE_MONTHLY,
    ),
}


# What the loop did beside the inspections, read from events and command at each run:
# the safety office's fire and safety events by grid cell, and the town statistics'
# tasks against their SLA by village and team, both over the last 30 days.
LOOP_TEMPLATES = {
    "safety-office-events": pb.ReportTemplate(
        display_name="Safety office: events by grid cell and category, last 30 days",
        department="Anting town safety office",
        source=pb.ReportTemplate.SOURCE_EVENTS,
        period_days=30,
        group_by=["grid_cell", "category"],
        columns=[
            C(label="Grid cell", aggregate=C.AGGREGATE_GROUP, field="grid_cell"),
            C(label="Category", aggregate=C.AGGREGATE_GROUP, field="category"),
            C(label="Events", aggregate=C.AGGREGATE_COUNT),
            C(label="Still open", aggregate=C.AGGREGATE_COUNT_IF, field="open"),
        ],
        schedule=pb.ReportTemplate.SCHEDULE_DAILY,
    ),
    "town-statistics-tasks": pb.ReportTemplate(
        display_name="Town statistics: tasks against their SLA by village and team, last 30 days",
        department="Anting town statistics",
        source=pb.ReportTemplate.SOURCE_TASKS,
        period_days=30,
        group_by=["tenant", "team"],
        columns=[
            C(label="Village", aggregate=C.AGGREGATE_GROUP, field="tenant"),
            C(label="Team", aggregate=C.AGGREGATE_GROUP, field="team"),
            C(label="Tasks", aggregate=C.AGGREGATE_COUNT),
            C(label="Resolved", aggregate=C.AGGREGATE_COUNT_IF, field="resolved"),
            C(label="Resolved within SLA", aggregate=C.AGGREGATE_COUNT_IF, field="within_sla"),
            C(label="Overdue", aggregate=C.AGGREGATE_COUNT_IF, field="overdue"),
        ],
        schedule=pb.ReportTemplate.SCHEDULE_MONTHLY,
    ),
}


@dataclass(frozen=True)
class Building:
    building_id: str
    tenant: str
    grid_cell: str


def residential_buildings(map_file: Path) -> list[Building]:
    _, _, _, fields = pyogrio.raw.read(
        map_file,
        layer="buildings",
        read_geometry=False,
        columns=["building_id", "tenant", "grid_cell_id", "use"],
    )
    ids, tenants, cells, uses = fields
    return [
        Building(str(i), str(t), str(c))
        for i, t, c, u in zip(ids, tenants, cells, uses, strict=True)
        if str(u) == "residential"
    ]


def demo_records(buildings: list[Building], today: date) -> list[tuple[Building, dict[str, str]]]:
    """Fixed by the seed: the same buildings, findings and dates at every start."""
    rng = random.Random(SEED)  # noqa: S311  (invented demo data, not secrets)
    chosen = rng.sample(buildings, min(RECORDS, len(buildings)))
    records = []
    for n, building in enumerate(chosen):
        hazards = rng.choice([0, 0, 0, 1, 1, 2, 3])
        level = "none" if hazards == 0 else rng.choice(["minor", "minor", "major"])
        values = {
            "building": building.building_id,
            "inspected_on": (today - timedelta(days=n % 28)).isoformat(),
            "extinguishers": str(rng.randint(2, 12)),
            "extinguishers_expired": str(rng.choice([0, 0, 0, 1, 2])),
            "exits_blocked": "true" if hazards and rng.random() < 0.4 else "false",
            "ebike_charging_indoors": "true" if rng.random() < 0.15 else "false",
            "hazard_level": level,
            "hazards_found": str(hazards),
            "rectified_on_site": str(rng.randint(0, hazards)),
        }
        records.append((building, values))
    return records


async def install(channel: grpc.aio.Channel, map_file: Path, today: date) -> dict[str, int]:
    """The form, its records, its three templates and the two over events and tasks, each
    run once; returns counts."""
    stub = pb_grpc.FormsServiceStub(channel)
    metadata = INSTALLER.to_metadata()
    try:
        await stub.CreateForm(
            pb.CreateFormRequest(
                parent=tenancy.tenant_name(TOWN),
                form_id=FORM_ID,
                form=pb.Form(display_name="Fire-safety inspection of a building", fields=FIELDS),
            ),
            metadata=metadata,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    records = demo_records(residential_buildings(map_file), today)
    for n, (building, values) in enumerate(records):
        try:
            await stub.CreateFormRecord(
                pb.CreateFormRecordRequest(
                    parent=f"{tenancy.tenant_name(building.tenant)}/forms/{FORM_ID}",
                    record=pb.FormRecord(values=values, grid_cell=building.grid_cell),
                    request_id=f"demo-fire-inspection-{n}",
                ),
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            # A start on another day dates the same record differently: it is there.
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
    for template_id, template in {**TEMPLATES, **LOOP_TEMPLATES}.items():
        try:
            await stub.CreateReportTemplate(
                pb.CreateReportTemplateRequest(
                    parent=tenancy.tenant_name(TOWN),
                    report_template_id=template_id,
                    report_template=template,
                ),
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        await stub.RunReport(
            pb.RunReportRequest(name=f"{tenancy.tenant_name(TOWN)}/reportTemplates/{template_id}"),
            metadata=metadata,
        )
    return {"records": len(records), "reports": len(TEMPLATES) + len(LOOP_TEMPLATES)}

"""Fill once, report many: the town's form is filled in by villages and feeds three tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest

from services.empower.domain.forms import FormsDesk
from services.empower.domain.forms_model import (
    Aggregate,
    FieldType,
    FormField,
    ReportColumn,
    Schedule,
)
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.principal import Principal
from tests.conftest import TOWN, XIANGYANG, XINGMING

FORM = f"tenants/{TOWN.replace('/', '-')}/forms/fire-inspection"


def who(tenant: str, subject: str = "users/staff") -> Principal:
    return Principal(
        subject=subject, tenant=tenant, scopes=frozenset({"forms:write", "reports:read"})
    )


FIELDS = [
    FormField("building", "Building", FieldType.TEXT, required=True),
    FormField(
        "extinguishers", "Extinguishers", FieldType.INTEGER, required=True, minimum=0, maximum=50
    ),
    FormField("exits_blocked", "Exit blocked", FieldType.BOOLEAN, required=True),
    FormField(
        "hazard_level",
        "Hazard",
        FieldType.CHOICE,
        required=True,
        options=("none", "minor", "major"),
    ),
    FormField("hazards_found", "Hazards", FieldType.INTEGER, required=True, minimum=0),
    FormField("where", "Where", FieldType.LOCATION),
    FormField("notes", "Notes", FieldType.TEXT),
]


async def _setup(desk: FormsDesk) -> None:
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire-safety inspection", FIELDS)
    rows = [
        (XINGMING, "g01", "b1", "4", "true", "major", "2"),
        (XINGMING, "g01", "b2", "3", "false", "none", "0"),
        (XINGMING, "g02", "b3", "6", "false", "minor", "1"),
        (XIANGYANG, "y01", '=HYPERLINK("http://x")', "2", "true", "minor", "3"),
    ]
    for n, (village, cell, building, ext, blocked, level, hazards) in enumerate(rows):
        await desk.create_record(
            who(village, "users/grid-worker"),
            village,
            "fire-inspection",
            {
                "building": building,
                "extinguishers": ext,
                "exits_blocked": blocked,
                "hazard_level": level,
                "hazards_found": hazards,
            },
            cell,
            f"r{n}",
        )


async def test_one_form_feeds_three_departments_with_the_same_numbers(desk: FormsDesk) -> None:
    await _setup(desk)
    town = who(TOWN)
    await desk.create_template(
        town,
        TOWN,
        "fire-brigade",
        display_name="Fire brigade",
        department="Fire station",
        form_name=FORM,
        group_by=["building"],
        columns=[
            ReportColumn("Building", Aggregate.GROUP, "building"),
            ReportColumn("Inspections", Aggregate.COUNT),
            ReportColumn("Extinguishers", Aggregate.SUM, "extinguishers"),
            ReportColumn("Exits blocked", Aggregate.COUNT_IF, "exits_blocked"),
            ReportColumn("Hazards", Aggregate.SUM, "hazards_found"),
        ],
    )
    await desk.create_template(
        town,
        TOWN,
        "safety-office",
        display_name="Safety office",
        department="Safety",
        form_name=FORM,
        group_by=["grid_cell"],
        columns=[
            ReportColumn("Grid cell", Aggregate.GROUP, "grid_cell"),
            ReportColumn("Inspections", Aggregate.COUNT),
            ReportColumn("Hazards", Aggregate.SUM, "hazards_found"),
            ReportColumn("Major", Aggregate.COUNT_IF, "hazard_level", "major"),
        ],
    )
    await desk.create_template(
        town,
        TOWN,
        "town-statistics",
        display_name="Statistics",
        department="Statistics",
        form_name=FORM,
        group_by=["tenant"],
        columns=[
            ReportColumn("Village", Aggregate.GROUP, "tenant"),
            ReportColumn("Inspections", Aggregate.COUNT),
            ReportColumn("Hazards", Aggregate.SUM, "hazards_found"),
            ReportColumn("Exits blocked", Aggregate.COUNT_IF, "exits_blocked"),
        ],
    )
    fire = await desk.run(town, TOWN, "fire-brigade")
    safety = await desk.run(town, TOWN, "safety-office")
    stats = await desk.run(town, TOWN, "town-statistics")
    assert fire.record_count == safety.record_count == stats.record_count == 4
    assert fire.rows[-1] == ("Total", "4", "15", "2", "6")
    assert safety.rows == (
        ("g01", "2", "2", "1"),
        ("g02", "1", "1", "0"),
        ("y01", "1", "3", "0"),
        ("Total", "4", "6", "1"),
    )
    assert stats.rows == (
        (XIANGYANG, "1", "3", "1"),
        (XINGMING, "3", "3", "1"),
        ("Total", "4", "6", "2"),
    )
    # The overlap agrees: inspections, hazards and blocked exits.
    assert fire.rows[-1][1] == safety.rows[-1][1] == stats.rows[-1][1]
    assert fire.rows[-1][4] == safety.rows[-1][2] == stats.rows[-1][2]
    assert fire.rows[-1][3] == stats.rows[-1][3]

    # A village runs nothing of the town's, and sees only its own records.
    with pytest.raises(NotFound):
        await desk.run(who(XINGMING), TOWN, "fire-brigade")
    records, _ = await desk.list_records(who(XIANGYANG), XIANGYANG, "fire-inspection", 50, "")
    assert [r.tenant for r in records] == [XIANGYANG]

    content, media, name = await desk.export(town, TOWN, "fire-brigade", fire.id, "csv")
    assert media.startswith("text/csv") and name.startswith("fire-brigade-")
    assert name.endswith(".csv")
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert table[0] == ["Building", "Inspections", "Extinguishers", "Exits blocked", "Hazards"]
    assert table[1][0] == '\'=HYPERLINK("http://x")'  # a formula arrives as text
    assert table[-1] == ["Total", "4", "15", "2", "6"]

    content, media, _ = await desk.export(town, TOWN, "fire-brigade", fire.id, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[1][0] == '\'=HYPERLINK("http://x")'
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    assert values[-1] == ["Total", 4, 15, 2, 6]


async def test_a_record_is_checked_field_by_field_and_stored_once(desk: FormsDesk) -> None:
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire-safety inspection", FIELDS)
    worker = who(XINGMING, "users/gw")
    with pytest.raises(InvalidArgument) as refused:
        await desk.create_record(
            worker,
            XINGMING,
            "fire-inspection",
            {
                "building": "b1",
                "extinguishers": "-1",
                "exits_blocked": "maybe",
                "hazard_level": "apocalyptic",
                "where": "200,100",
                "colour": "red",
            },
            "g01",
            "r1",
        )
    fields = {v.field for v in refused.value.violations}
    assert fields == {
        "record.values.extinguishers",
        "record.values.exits_blocked",
        "record.values.hazard_level",
        "record.values.hazards_found",
        "record.values.where",
        "record.values.colour",
    }
    records, _ = await desk.list_records(who(XINGMING), XINGMING, "fire-inspection", 50, "")
    assert records == []
    values = {
        "building": "b1",
        "extinguishers": "3",
        "exits_blocked": "TRUE",
        "hazard_level": "none",
        "hazards_found": "0",
        "where": "121.16,31.29",
    }
    first = await desk.create_record(worker, XINGMING, "fire-inspection", values, "g01", "r1")
    again = await desk.create_record(worker, XINGMING, "fire-inspection", values, "g01", "r1")
    assert again.id == first.id
    # The same request_id with other values is another record, not a retry.
    for other, cell in (({**values, "hazards_found": "2"}, "g01"), (values, "g02")):
        with pytest.raises(FailedPrecondition) as reused:
            await desk.create_record(worker, XINGMING, "fire-inspection", other, cell, "r1")
        assert reused.value.reason == "REQUEST_ID_REUSED"
    assert first.values["exits_blocked"] == "true"
    assert first.values["where"] == "121.160000,31.290000"
    assert first.resource_name.startswith(
        "tenants/sh-jiading-anting-xingming/forms/fire-inspection/records/fr_"
    )
    # The village reads the town's form where it applies, and no other village's.
    form = await desk.get_form(worker, XINGMING, "fire-inspection")
    assert form.tenant == TOWN
    with pytest.raises(NotFound):
        await desk.create_record(worker, XIANGYANG, "fire-inspection", values, "g01", "r2")


async def test_a_template_naming_a_missing_field_is_refused(desk: FormsDesk) -> None:
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire-safety inspection", FIELDS)
    with pytest.raises(InvalidArgument) as refused:
        await desk.create_template(
            who(TOWN),
            TOWN,
            "broken",
            display_name="Broken",
            department="Fire station",
            form_name=FORM,
            group_by=["floor"],
            columns=[
                ReportColumn("Floor", Aggregate.GROUP, "floor"),
                ReportColumn("Sprinklers", Aggregate.SUM, "sprinklers"),
                ReportColumn("Notes", Aggregate.SUM, "notes"),
            ],
        )
    found = {(v.field, v.description) for v in refused.value.violations}
    assert ("report_template.group_by[0]", "form 'fire-inspection' has no field 'floor'") in found
    assert (
        "report_template.columns[1].field",
        "form 'fire-inspection' has no field 'sprinklers'",
    ) in found
    assert ("report_template.columns[2].field", "'notes' is not an integer") in found
    assert await desk.list_templates(who(TOWN), TOWN) == []


async def test_bad_form_definitions_name_the_field(desk: FormsDesk) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await desk.create_form(
            who(TOWN),
            TOWN,
            "bad",
            "Bad",
            [
                FormField("a", "A", FieldType.CHOICE),
                FormField("a", "Again", FieldType.TEXT),
                FormField("n", "N", FieldType.INTEGER, minimum=5, maximum=1),
            ],
        )
    assert {v.field for v in refused.value.violations} == {
        "form.fields[0].options",
        "form.fields[1].key",
        "form.fields[2].maximum",
    }
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire", FIELDS)
    with pytest.raises(AlreadyExists):
        await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire", FIELDS)


async def test_scheduled_templates_run_once_per_period(desk: FormsDesk) -> None:
    clock = [datetime(2026, 12, 1, 1, 0, tzinfo=UTC)]
    desk._clock = lambda: clock[0]
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire", FIELDS)
    await desk.create_template(
        who(TOWN),
        TOWN,
        "daily",
        display_name="Daily",
        department="Safety",
        form_name=FORM,
        group_by=[],
        columns=[ReportColumn("Inspections", Aggregate.COUNT)],
        schedule=Schedule.DAILY,
    )
    assert await desk.run_due() == 1
    assert await desk.run_due() == 0
    clock[0] = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert await desk.run_due() == 1
    runs = await desk.list_runs(who(TOWN), TOWN, "daily", 10)
    assert [r.scheduled for r in runs] == [True, True]
    assert runs[0].rows == (("0",),)


class VillagePlaces:
    """The map as far as records need it: each village's own grid cells and buildings."""

    def __init__(self) -> None:
        self.cells = {XINGMING: {"g01", "g02"}, XIANGYANG: {"y01"}}
        self.buildings = {XINGMING: {"b1", "b2"}, XIANGYANG: {"y-b1"}}
        self.asked: list[tuple[str, list[str], list[str]]] = []

    async def outside(
        self, village: str, grid_cells: Collection[str], buildings: Collection[str]
    ) -> tuple[set[str], set[str]]:
        self.asked.append((village, list(grid_cells), list(buildings)))
        return (
            set(grid_cells) - self.cells.get(village, set()),
            set(buildings) - self.buildings.get(village, set()),
        )


async def test_a_record_naming_another_villages_cell_or_building_is_refused(
    forms_store: Any,
) -> None:
    places = VillagePlaces()
    desk = FormsDesk(forms_store, places=places)
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire-safety inspection", FIELDS)
    worker = who(XINGMING, "users/gw")
    values = {
        "building": "b1",
        "extinguishers": "3",
        "exits_blocked": "false",
        "hazard_level": "none",
        "hazards_found": "0",
    }
    with pytest.raises(InvalidArgument) as refused:
        await desk.create_record(
            worker, XINGMING, "fire-inspection", {**values, "building": "y-b1"}, "y01", "r1"
        )
    assert {v.field for v in refused.value.violations} == {
        "record.grid_cell",
        "record.values.building",
    }
    # One question to the map per record, with both references.
    assert places.asked == [(XINGMING, ["y01"], ["y-b1"])]
    records, _ = await desk.list_records(who(XINGMING), XINGMING, "fire-inspection", 50, "")
    assert records == []
    stored = await desk.create_record(worker, XINGMING, "fire-inspection", values, "g01", "r2")
    assert stored.grid_cell == "g01"
    await desk.create_template(
        who(TOWN),
        TOWN,
        "by-cell",
        display_name="By cell",
        department="Safety",
        form_name=FORM,
        group_by=["grid_cell"],
        columns=[ReportColumn("Inspections", Aggregate.COUNT)],
    )
    run = await desk.run(who(TOWN, "users/officer"), TOWN, "by-cell")
    assert run.record_count == 1
    assert "y01" not in {cell for row in run.rows for cell in row}


async def test_a_date_outside_1900_to_2100_is_refused(desk: FormsDesk) -> None:
    fields = [FormField("inspected_on", "Inspected on", FieldType.DATE, required=True)]
    await desk.create_form(who(XINGMING), XINGMING, "dated", "Dated", fields)
    for n, bad in enumerate(("9999-12-31", "1899-12-31", "2101-01-01")):
        with pytest.raises(InvalidArgument) as refused:
            await desk.create_record(
                who(XINGMING), XINGMING, "dated", {"inspected_on": bad}, "", f"d{n}"
            )
        assert refused.value.violations[0].field == "record.values.inspected_on"
        assert "1900" in refused.value.violations[0].description
    ok = await desk.create_record(
        who(XINGMING), XINGMING, "dated", {"inspected_on": "2100-12-31"}, "", "ok"
    )
    assert ok.values["inspected_on"] == "2100-12-31"


async def test_a_weighted_sum_values_each_record_at_its_kinds_coefficient(desk: FormsDesk) -> None:
    await _setup(desk)
    town = who(TOWN)
    await desk.create_template(
        town,
        TOWN,
        "hazard-points",
        display_name="Hazard points by village",
        department="Safety",
        form_name=FORM,
        group_by=["tenant"],
        columns=[
            ReportColumn("Village", Aggregate.GROUP, "tenant"),
            ReportColumn(
                "Weighted hazards",
                Aggregate.SUM,
                "hazards_found",
                weight_field="hazard_level",
                weights=(("major", 2.25), ("minor", 1.0)),
            ),
            ReportColumn("Hazards", Aggregate.SUM, "hazards_found"),
        ],
    )
    # Xingming: 2 major (x 2.25) + 1 minor + 0 unweighted; Xiangyang: 3 minor.
    run = await desk.run(town, TOWN, "hazard-points")
    assert run.rows == (
        (XIANGYANG, "3", "3"),
        (XINGMING, "5.50", "3"),
        ("Total", "8.50", "6"),
    )
    template = await desk.get_template(town, TOWN, "hazard-points")
    assert template.columns[1].weights == (("major", 2.25), ("minor", 1.0))
    content, _, _ = await desk.export(town, TOWN, "hazard-points", run.id, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert [c.value for c in list(sheet.iter_rows())[-1]] == ["Total", 8.5, 6]


@pytest.mark.parametrize(
    ("column", "field"),
    [
        (
            ReportColumn("N", Aggregate.COUNT, weight_field="hazard_level", weights=(("a", 1),)),
            "report_template.columns[0].weight_field",
        ),
        (
            ReportColumn("V", Aggregate.SUM, "hazards_found", "", "colour", (("a", 1.0),)),
            "report_template.columns[0].weight_field",
        ),
        (
            ReportColumn("V", Aggregate.SUM, "hazards_found", "", "hazard_level", ()),
            "report_template.columns[0].weights",
        ),
        (
            ReportColumn(
                "V", Aggregate.SUM, "hazards_found", "", "hazard_level", (("a", float("inf")),)
            ),
            "report_template.columns[0].weights",
        ),
    ],
)
async def test_a_bad_weighted_column_names_the_field(
    desk: FormsDesk, column: ReportColumn, field: str
) -> None:
    await desk.create_form(who(TOWN), TOWN, "fire-inspection", "Fire-safety inspection", FIELDS)
    with pytest.raises(InvalidArgument) as refused:
        await desk.create_template(
            who(TOWN),
            TOWN,
            "bad",
            display_name="Bad",
            department="Safety",
            form_name=FORM,
            group_by=[],
            columns=[column],
        )
    assert [v.field for v in refused.value.violations] == [field]


async def test_records_are_found_by_their_values_and_grid_cell(desk: FormsDesk) -> None:
    await _setup(desk)
    town = who(TOWN)
    found, _ = await desk.list_records(
        town, TOWN, "fire-inspection", 50, "", 'values.hazard_level = "minor"'
    )
    assert sorted(r.values["building"] for r in found) == ['=HYPERLINK("http://x")', "b3"]
    found, _ = await desk.list_records(
        town,
        TOWN,
        "fire-inspection",
        50,
        "",
        'values.hazard_level = "minor" AND grid_cell = "g02"',
    )
    assert [r.values["building"] for r in found] == ["b3"]
    found, _ = await desk.list_records(
        who(XIANGYANG), XIANGYANG, "fire-inspection", 50, "", 'values.building = "b3"'
    )
    assert found == []  # another village's record is not found by its values either
    # Pages keep the filter.
    first, token = await desk.list_records(
        town, TOWN, "fire-inspection", 1, "", 'values.exits_blocked = "false"'
    )
    second, _ = await desk.list_records(
        town, TOWN, "fire-inspection", 1, token, 'values.exits_blocked = "false"'
    )
    assert {first[0].values["building"], second[0].values["building"]} == {"b2", "b3"}
    for bad in ('values.colour = "red"', 'values.building = "b1" AND values.building = "b2"'):
        with pytest.raises(InvalidArgument) as refused:
            await desk.list_records(town, TOWN, "fire-inspection", 50, "", bad)
        assert refused.value.violations[0].field == "filter"

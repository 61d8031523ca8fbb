"""The typed models read real answers: the map's locate, the twin's entities and readings,
the points ledger and fill-once forms, through the sync client."""

from __future__ import annotations

import uuid

import pytest
from conftest import XINGMING, Platform
from grassroots_sdk import BadRequest, Client


@pytest.fixture(scope="module")
def secretary(platform: Platform):  # type: ignore[no-untyped-def]
    platform.stack.install_demo_twin()  # make run's sensors and rules
    platform.stack.install_demo_forms()  # and the town's fire-safety inspection
    with Client(
        platform.url,
        username="xingming.secretary",
        password=platform.password("xingming.secretary"),
    ) as client:
        yield client


def test_locate_names_village_and_grid_cell(secretary: Client) -> None:
    inside, outside = secretary.map.locate([(121.1605, 31.2905), (0.0, 0.0)])
    assert inside.found and inside.village == XINGMING and inside.grid_cell
    assert not outside.found


def test_twin_entities_and_a_reading(secretary: Client) -> None:
    gauges = list(secretary.twin.iterate(entity_type="WaterLevelGauge", page_size=1))
    assert gauges and all(g.entity_type == "WaterLevelGauge" for g in gauges)
    gauge = gauges[0]
    result = secretary.twin.ingest([(gauge.id, "level_cm", 12.5)])
    assert (result.accepted_count, result.rejected_count) == (1, 0)
    assert secretary.twin.get(gauge.id).value("level_cm") == 12.5


def test_points_credit_once_per_request_id(secretary: Client) -> None:
    holder = f"household/sdk-{uuid.uuid4().hex[:8]}"
    account = secretary.points.create("household", holder)
    key = f"sdk-award-{uuid.uuid4()}"
    secretary.points.credit(account.id, 20, memo="River bank", request_id=key)
    secretary.points.credit(account.id, 20, memo="River bank", request_id=key)
    secretary.points.redeem(account.id, 15, memo="Village shop")
    assert secretary.points.get(account.id).balance == 5
    ledger = secretary.points.ledger(account.id)
    assert sorted(e.amount for e in ledger.items) == [-15, 20]  # credited once, then spent
    with pytest.raises(BadRequest) as refused:
        secretary.points.redeem(account.id, 50)
    assert refused.value.field == "amount"


def test_a_form_record_is_entered_once(secretary: Client) -> None:
    forms = {form.id: form for form in secretary.forms.list()}
    assert "fire-safety-inspection" in forms
    values = {
        "building": "xingming-b0001",
        "inspected_on": "2026-12-03",
        "extinguishers": "6",
        "exits_blocked": "false",
        "hazard_level": "none",
        "hazards_found": "0",
    }
    key = f"sdk-inspection-{uuid.uuid4()}"
    first = secretary.forms.create_record(
        "fire-safety-inspection", values, grid_cell="xingming-g01", request_id=key
    )
    again = secretary.forms.create_record(
        "fire-safety-inspection", values, grid_cell="xingming-g01", request_id=key
    )
    assert again.id == first.id and first.values["building"] == "xingming-b0001"
    records = [r.id for r in secretary.forms.iterate_records("fire-safety-inspection")]
    assert records.count(first.id) == 1

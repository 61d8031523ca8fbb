"""Shared parking: a lot's occupancy over a day in the twin -> hourly statistics from its
history show the off-peak hours -> the lot opens spaces to the public and the town's app
reads how many -> a household offering its own space off-peak earns points once, and the
report counts the offered spaces in its grid cell."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
BUSY_HOURS = range(8, 18)  # an office lot: full by day, nearly empty at night


def zulu(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_off_peak_spaces_are_found_opened_and_households_rewarded_for_sharing(
    platform: Platform,
):
    platform.install("parking-share", overrides={"points_per_offer": 4})
    assert platform.plan("parking-share", overrides={"points_per_offer": 4}).empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    lot = secretary.ok(
        "POST",
        f"{V}/entities",
        json={
            "entity_id": f"lot-{cell.cell_id.lower()}-{secrets.token_hex(2)}",
            "entity_type": "SharedParkingLot",
            "display_name": f"Office lot by {cell.cell_id}",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    lot_id = lot["name"].rsplit("/", 1)[-1]
    # Yesterday, every hour on the half hour: 38 of 40 spaces taken by day, 6 at night.
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    times = [int((day + timedelta(hours=h, minutes=30)).timestamp() * 1000) for h in range(24)]
    secretary.ok(
        "POST",
        f"{V}:ingestTelemetry",
        json={
            "entities": [lot_id] * 24,
            "properties": ["occupied"] * 24,
            "values": [38.0 if h in BUSY_HOURS else 6.0 for h in range(24)],
            "observe_times_ms": times,
        },
    )
    hourly = secretary.ok(
        "GET",
        f"{V}:queryHistory",
        params={
            "property": "occupied",
            "entity": [lot_id],
            "start_time": zulu(day),
            "end_time": zulu(day + timedelta(days=1)),
            "bucket_seconds": 3600,
        },
    )["points"]
    by_hour = {datetime.fromisoformat(p["time"].replace("Z", "+00:00")).hour: p for p in hourly}
    assert len(by_hour) == 24
    off_peak = sorted(h for h, p in by_hour.items() if p["max"] <= 10)
    assert off_peak == [h for h in range(24) if h not in BUSY_HOURS]
    # Off-peak, 34 of its 40 spaces stand free: the lot opens 30 of them to the public.
    secretary.ok(
        "POST",
        f"{V}:ingestTelemetry",
        json={
            "entities": [lot_id, lot_id],
            "properties": ["shared_open", "capacity"],
            "values": [30, 40],
        },
    )
    seen = platform.town_app().ok("GET", f"{V}/entities/{lot_id}")
    latest = {p["property"]: p["value"] for p in seen["properties"]}
    assert (latest["shared_open"], latest["capacity"], latest["occupied"]) == (30, 40, 6)

    # A household offers its own space at night: recorded once, paid once.
    household = f"xm-{cell.cell_id.lower()}-{secrets.token_hex(3)}"
    offer = {
        "values": {"household": household, "spaces": "2", "hours": "19:00-07:00"},
        "grid_cell": cell.cell_id,
        "request_id": "offer-" + household,
    }
    worker = platform.user(cell.grid_worker)
    for _ in range(2):  # the app sends it twice: one record, one credit
        worker.ok("POST", f"{V}/forms/parking-share-offer/records", json=offer)
    accounts = secretary.ok("GET", f"{V}/pointsAccounts", params={"holder": household})
    assert [a["balance"] for a in accounts["points_accounts"]] == [4]
    report = secretary.ok("POST", f"{V}/reportTemplates/parking-share-offers:run", json={})
    assert report["headings"] == ["Grid cell", "Offers", "Spaces"]
    assert {r[0]: r[1:] for r in report["rows"]}[cell.cell_id] == ["1", "2"]

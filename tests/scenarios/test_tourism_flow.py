"""Rural tourism flow: a scenic spot's visitor counter passes the village's capacity ->
an alert event at the spot's grid cell -> the crowd thins and the alert clears -> the
day's statistics per spot (readings, peak, mean) come out of the twin's history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
VISITORS = [120, 340, 560, 410, 90]


def test_over_capacity_alerts_and_daily_statistics_per_spot(platform: Platform):
    platform.install("tourism-flow", overrides={"capacity_visitors": 500, "clear_visitors": 400})
    assert platform.plan("tourism-flow").empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    spot = secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}/entities",
        json={
            "entity_id": f"spot-{cell.cell_id.lower()}-{int(time.time())}",
            "entity_type": "ScenicSpotCounter",
            "display_name": f"Old bridge viewpoint in {cell.cell_id}",
            "location": {"longitude": cell.lon, "latitude": cell.lat},
        },
    )
    spot_id = str(spot["name"]).rsplit("/", 1)[-1]
    now_ms = int(time.time() * 1000)
    times = [now_ms - 1000 * (len(VISITORS) - i) for i in range(len(VISITORS))]
    secretary.ok(
        "POST",
        f"/v1/tenants/{VILLAGE_ID}:ingestTelemetry",
        json={
            "entities": [spot_id] * len(VISITORS),
            "properties": ["visitors"] * len(VISITORS),
            "values": VISITORS,
            "observe_times_ms": times,
        },
    )

    alert = eventually(
        lambda: next(
            iter(platform.events(category="tourism.over_capacity", grid_cell=cell.cell_id)), None
        )
    )
    assert alert["source"] == "twin_rule"
    assert (alert["village"], alert["grid_cell"]) == (XINGMING, cell.cell_id)
    # 410 is above the 400 that clears; 90 is below it: cleared once.
    cleared = eventually(
        lambda: [
            c
            for c in secretary.ok("GET", f"/v1/{alert['name']}")["comments"]
            if c["text"].startswith("Cleared")
        ]
    )
    assert len(cleared) == 1
    assert len(platform.events(category="tourism.over_capacity", grid_cell=cell.cell_id)) == 1

    day = datetime.fromtimestamp(times[0] / 1000, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    stats = secretary.ok(
        "GET",
        f"/v1/tenants/{VILLAGE_ID}:queryHistory",
        params={
            "property": "visitors",
            "entity": [spot_id],
            "start_time": day.isoformat().replace("+00:00", "Z"),
            "end_time": (day + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "bucket_seconds": 86400,
        },
    )["points"]
    assert len(stats) == 1
    assert stats[0]["entity"].endswith(spot_id)
    assert int(stats[0]["count"]) == len(VISITORS)
    assert stats[0]["max"] == 560 and stats[0]["min"] == 90
    assert abs(stats[0]["mean"] - sum(VISITORS) / len(VISITORS)) < 1e-9

"""Farm produce traceability: a plot on the map -> sowing, fertilising, spraying and the
harvest recorded once each with the batch code -> a buyer's app, holding only the right
to read records, traces the batch to its plot and inputs (and nothing of other batches,
and may write nothing) -> the batches report -> frost at the plot's weather station
raises a warning in its grid cell."""

from __future__ import annotations

import json
import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Api, Platform, eventually

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
RECORDS = f"{V}/forms/farm-production-record/records"
D = 0.0005


def test_a_buyer_traces_a_batch_to_its_plot_and_inputs(platform: Platform):
    platform.install("farm-produce", overrides={"frost_celsius": 0.5})
    assert platform.plan("farm-produce", overrides={"frost_celsius": 0.5}).empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    tag = secrets.token_hex(3)
    plot = f"XM-{tag}"
    ring = [
        [cell.lon, cell.lat],
        [cell.lon + D, cell.lat],
        [cell.lon + D, cell.lat + D],
        [cell.lon, cell.lat + D],
        [cell.lon, cell.lat],
    ]
    secretary.ok(
        "POST",
        f"{V}/layers/farm-plots/features:import",
        files={
            "file": (
                "plots.geojson",
                json.dumps(
                    {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "id": plot,
                                "properties": {"plot": plot, "grower": "Wu family", "crop": "rice"},
                                "geometry": {"type": "Polygon", "coordinates": [ring]},
                            }
                        ],
                    }
                ),
                "application/geo+json",
            )
        },
        data={"format": "geojson"},
    )
    centre = [cell.lon + D / 2, cell.lat + D / 2]
    on_plot = secretary.ok(
        "POST",
        f"{V}/layers/farm-plots/features:search",
        json={
            "within_distance": {
                "geometry": {"type": "Point", "coordinates": centre},
                "distance_meters": 0,
            }
        },
    )["features"]
    assert [f["properties"]["plot"] for f in on_plot] == [plot]

    batch, other = f"B-{tag}-01", f"B-{tag}-02"
    worker = platform.user(cell.grid_worker)
    operations = (
        (batch, "sow", "Nanjing 46 seed", "30", None),
        (batch, "fertilise", "Organic manure", "400", None),
        (batch, "spray", "Bt biological insecticide", "2", "true"),
        (batch, "harvest", "", "5200", None),
        (other, "harvest", "", "800", None),
    )
    for code, activity, used, kg, interval in operations:
        values = {
            "plot": plot,
            "crop": "rice",
            "activity": activity,
            "quantity_kg": kg,
            "batch": code,
        }
        if used:
            values["input"] = used
        if interval:
            values["interval_kept"] = interval
        worker.ok(
            "POST",
            RECORDS,
            json={"values": values, "grid_cell": cell.cell_id, "request_id": secrets.token_hex(8)},
        )

    # The buyer's app can read records and nothing else.
    made = secretary.ok(
        "POST",
        f"{V}/apps",
        json={"display_name": f"Buyer trace {tag}", "scopes": ["reports:read"]},
    )
    buyer = Api(base_url=platform.url, headers={"X-API-Key": made["key"]}, timeout=20)
    traced = buyer.ok("GET", RECORDS, params={"filter": f'values.batch = "{batch}"'})["records"]
    assert [r["values"]["activity"] for r in traced] == ["sow", "fertilise", "spray", "harvest"]
    assert {(r["values"]["plot"], r["grid_cell"]) for r in traced} == {(plot, cell.cell_id)}
    assert [r["values"].get("input") for r in traced][:3] == [
        "Nanjing 46 seed",
        "Organic manure",
        "Bt biological insecticide",
    ]
    unknown = buyer.ok("GET", RECORDS, params={"filter": f'values.batch = "B-{tag}-99"'})
    assert unknown["records"] == []
    bad = buyer.get(RECORDS, params={"filter": 'values.price = "1"'})
    assert bad.status_code == 400
    forged = buyer.post(
        RECORDS,
        json={
            "values": dict(traced[-1]["values"], quantity_kg="9999"),
            "grid_cell": cell.cell_id,
            "request_id": secrets.token_hex(8),
        },
    )
    assert forged.status_code == 403
    assert buyer.get(f"{V}/people").status_code == 403

    report = secretary.ok("POST", f"{V}/reportTemplates/farm-produce-batches:run", json={})
    rows = {(r[0], r[1], r[2]): r[3:] for r in report["rows"]}
    assert rows[(batch, plot, "rice")] == ["4", "1", "5200", "400"]
    assert rows[(other, plot, "rice")] == ["1", "0", "800", "0"]

    # Frost at the plot's weather station: a warning in the plot's grid cell.
    station = secretary.ok(
        "POST",
        f"{V}/entities",
        json={
            "entity_id": f"wx-{tag}",
            "entity_type": "PlotWeatherStation",
            "display_name": f"Weather station at plot {plot}",
            "location": {"longitude": centre[0], "latitude": centre[1]},
        },
    )
    now_ms = platform.now_ms()
    secretary.ok(
        "POST",
        f"{V}:ingestTelemetry",
        json={
            "entities": [station["name"].rsplit("/", 1)[-1]] * 2,
            "properties": ["air_temp", "air_temp"],
            "values": [3.5, -1.5],
            "observe_times_ms": [now_ms - 60_000, now_ms],
        },
    )
    warning = eventually(
        lambda: next(
            iter(platform.events(category="farm.frost_risk", grid_cell=cell.cell_id)), None
        )
    )
    assert (warning["source"], warning["village"]) == ("twin_rule", XINGMING)

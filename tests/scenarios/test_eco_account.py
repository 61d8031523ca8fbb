"""Ecological account (GEP): the village's woods, wetland and pond on the map -> a
survey record per asset and year -> the account values each year's areas at the
coefficients the village set (the district's published ones) -> next year's survey,
with woodland lost to a road and a new pond, shows the change per village and kind."""

from __future__ import annotations

import json
import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
LAYER = f"{V}/layers/eco-assets"
D = 0.0004


def square(lon: float, lat: float) -> list[list[list[float]]]:
    return [[[lon, lat], [lon + D, lat], [lon + D, lat + D], [lon, lat + D], [lon, lat]]]


def test_assets_are_valued_at_published_coefficients_and_changes_show_per_year(
    platform: Platform,
):
    coefficients = {"forest_value_per_mu": 0.4, "wetland_value_per_mu": 0.65}
    platform.install("eco-account", overrides=coefficients)
    assert platform.plan("eco-account", overrides=coefficients).empty

    cell = platform.cell(XINGMING)
    secretary = platform.user("xingming.secretary")
    tag = secrets.token_hex(3)
    assets = {
        f"F-{tag}": ("forest", cell.lon, cell.lat),
        f"W-{tag}": ("wetland", cell.lon + D, cell.lat),
    }
    secretary.ok(
        "POST",
        f"{LAYER}/features:import",
        files={
            "file": (
                "assets.geojson",
                json.dumps(
                    {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "id": asset,
                                "properties": {"asset": asset, "asset_type": kind},
                                "geometry": {"type": "Polygon", "coordinates": square(x, y)},
                            }
                            for asset, (kind, x, y) in assets.items()
                        ],
                    }
                ),
                "application/geo+json",
            )
        },
        data={"format": "geojson"},
    )
    found = secretary.ok(
        "POST",
        f"{LAYER}/features:search",
        json={
            "within_distance": {
                "geometry": {"type": "Point", "coordinates": [cell.lon + D / 2, cell.lat + D / 2]},
                "distance_meters": 0,
            }
        },
    )["features"]
    assert [f["properties"]["asset"] for f in found] == [f"F-{tag}"]

    def account() -> dict[tuple[str, str], list[str]]:
        run = secretary.ok("POST", f"{V}/reportTemplates/eco-account-village:run", json={})
        assert run["headings"] == ["Village", "Year", "Assets", "Area (mu)", "Value (10,000 yuan)"]
        return {(r[0], r[1]): r[2:] for r in run["rows"]}

    def kinds() -> dict[tuple[str, str], list[str]]:
        run = secretary.ok("POST", f"{V}/reportTemplates/eco-account-kinds:run", json={})
        return {(r[0], r[1]): r[2:] for r in run["rows"]}

    before, kinds_before = account(), kinds()
    worker = platform.user(cell.grid_worker)
    surveys = (
        # asset, kind, area (mu), year
        (f"F-{tag}", "forest", "120", "2025"),
        (f"W-{tag}", "wetland", "40", "2025"),
        (f"F-{tag}", "forest", "110", "2026"),  # 10 mu went to the new road
        (f"W-{tag}", "wetland", "40", "2026"),
        (f"P-{tag}", "water", "16", "2026"),  # a new pond (at the default coefficient)
    )
    for asset, kind, area, year in surveys:
        worker.ok(
            "POST",
            f"{V}/forms/eco-asset-survey/records",
            json={
                "values": {"asset": asset, "asset_type": kind, "area_mu": area, "year": year},
                "grid_cell": cell.cell_id,
                "request_id": secrets.token_hex(8),
            },
        )
    after, kinds_after = account(), kinds()

    def added(table_after: dict, table_before: dict, key: tuple[str, str]) -> list[float]:
        old = table_before.get(key, ["0"] * len(table_after[key]))
        return [round(float(a) - float(b), 2) for a, b in zip(table_after[key], old, strict=True)]

    # 2025: 120 mu of woods at 0.40 and 40 of wetland at 0.65 -> 48 + 26 = 74.
    assert added(after, before, (XINGMING, "2025")) == [2, 160, 74.0]
    # 2026: 110 x 0.40 + 40 x 0.65 + 16 x 0.50 (the default for water) = 44 + 26 + 8 = 78.
    assert added(after, before, (XINGMING, "2026")) == [3, 166, 78.0]
    assert added(kinds_after, kinds_before, ("2026", "forest")) == [110, 44.0]
    assert added(kinds_after, kinds_before, ("2025", "forest")) == [120, 48.0]
    assert added(kinds_after, kinds_before, ("2026", "water")) == [16, 8.0]

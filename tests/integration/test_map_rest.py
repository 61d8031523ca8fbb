"""The map through the gateway's REST API, and the import CLI, against real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyproj
import pytest
import shapely

REPO = Path(__file__).resolve().parents[2]
VILLAGE = "sh-jiading-anting-xingming"
LAYERS = f"/v1/tenants/{VILLAGE}/layers"
TOWN = "sh-jiading-anting"  # the demo town app key's tenant


@pytest.fixture
def api(stack):
    with httpx.Client(
        base_url=stack.config.gateway_url, headers=stack.api_headers(), timeout=30
    ) as client:
        yield client


def test_demo_layers_are_listed_with_their_schema(api):
    layers = {
        layer["name"]: layer for layer in api.get(f"/v1/tenants/{TOWN}/layers").json()["layers"]
    }
    buildings = layers[f"tenants/{VILLAGE}/layers/buildings"]
    assert buildings["kind"] == "building"
    assert buildings["feature_count"] >= 2000
    assert {"floors", "use"} <= {f["name"] for f in buildings["fields"]}
    assert layers["tenants/sh-jiading-anting/layers/boundaries"]["shared"] is True


def test_features_page_as_geojson_with_filters(api):
    first = api.get(
        f"{LAYERS}/buildings/features", params={"page_size": 50, "filter": 'use = "residential"'}
    )
    assert first.headers["content-type"].startswith("application/geo+json")
    page = first.json()
    assert page["type"] == "FeatureCollection"
    assert len(page["features"]) == 50
    assert {f["properties"]["use"] for f in page["features"]} == {"residential"}
    second = api.get(
        f"{LAYERS}/buildings/features",
        params={
            "page_size": 50,
            "filter": 'use = "residential"',
            "page_token": page["next_page_token"],
        },
    ).json()
    assert not {f["id"] for f in page["features"]} & {f["id"] for f in second["features"]}
    one = api.get(f"{LAYERS}/buildings/features/{page['features'][0]['id']}").json()
    assert one["id"] == page["features"][0]["id"]
    bad = api.get(f"{LAYERS}/buildings/features", params={"filter": 'colour = "red"'})
    assert bad.status_code == 400
    assert bad.json()["error"]["field_violations"][0]["field"] == "filter"


def test_buildings_within_200_m_of_an_alarm(api):
    some = api.get(f"{LAYERS}/buildings/features", params={"page_size": 1}).json()["features"][0]
    centre = shapely.centroid(shapely.geometry.shape(some["geometry"]))
    response = api.post(
        f"{LAYERS}/buildings/features:search",
        json={
            "within_distance": {
                "geometry": {"type": "Point", "coordinates": [centre.x, centre.y]},
                "distance_meters": 200,
            }
        },
    )
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert features[0]["id"] == some["id"]
    distances = [f["distance_meters"] for f in features]
    assert distances == sorted(distances) and distances[-1] <= 200
    # An independent measure: an azimuthal equidistant projection centred on the alarm.
    aeqd = pyproj.Transformer.from_crs(
        "EPSG:4326",
        f"+proj=aeqd +lat_0={centre.y} +lon_0={centre.x} +datum=WGS84",
        always_xy=True,
    )
    for feature in features[:20]:
        shape = shapely.geometry.shape(feature["geometry"])
        local = shapely.transform(shape, lambda xy: np.column_stack(aeqd.transform(*xy.T)))
        metres = local.distance(shapely.Point(0, 0))
        assert abs(metres - feature["distance_meters"]) < 0.05


def test_create_import_export_and_delete_a_layer(api, tmp_path):
    created = api.post(
        LAYERS,
        json={
            "layer_id": "hydrants",
            "display_name": "Fire hydrants",
            "kind": "poi",
            "geometry_type": "Point",
            "fields": [{"name": "pressure", "type": "number"}],
        },
    )
    assert created.status_code == 201, created.text
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": f"h{i}",
                "properties": {"pressure": 0.3 + i / 10},
                "geometry": {"type": "Point", "coordinates": [121.16 + i / 1000, 31.29]},
            }
            for i in range(5)
        ],
    }
    imported = api.post(
        f"{LAYERS}/hydrants/features:import",
        files={"file": ("h.geojson", json.dumps(collection), "application/geo+json")},
        data={"format": "geojson"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["layer"]["feature_count"] == 5
    exported = api.get(f"{LAYERS}/hydrants/features:export", params={"format": "gpkg"})
    assert exported.status_code == 200
    assert exported.content.startswith(b"SQLite format 3")
    path = tmp_path / "h.gpkg"
    path.write_bytes(exported.content)
    import pyogrio

    assert pyogrio.read_info(path)["features"] == 5
    assert api.delete(f"{LAYERS}/hydrants").status_code == 204
    assert api.get(f"{LAYERS}/hydrants").status_code == 404


def test_bad_import_is_400_naming_the_feature_and_imports_nothing(api):
    api.post(
        LAYERS,
        json={
            "layer_id": "wells",
            "display_name": "Wells",
            "kind": "poi",
            "geometry_type": "Point",
        },
    )
    body = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [121.16, 31.29]},
            },
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [200.0, 31.29]},
            },
        ],
    }
    response = api.post(
        f"{LAYERS}/wells/features:import",
        files={"file": ("w.geojson", json.dumps(body))},
        data={"format": "geojson"},
    )
    assert response.status_code == 400
    violation = response.json()["error"]["field_violations"][0]
    assert violation["field"] == "file" and "feature 1" in violation["description"]
    assert api.get(f"{LAYERS}/wells").json()["feature_count"] == 0
    other = api.get("/v1/tenants/sh-jiading-anting-xiangyang/layers/nowhere")
    assert other.status_code == 404


def test_transform_and_locate_a_phone_report(api):
    wgs = {"longitudes": [121.16], "latitudes": [31.29]}
    gcj = api.post("/v1/coordinates:transform", json={**wgs, "target_crs": "GCJ-02"}).json()
    located = api.post(
        f"/v1/tenants/{TOWN}:locatePoints",
        json={"longitudes": gcj["longitudes"], "latitudes": gcj["latitudes"], "crs": "GCJ-02"},
    ).json()
    direct = api.post(f"/v1/tenants/{TOWN}:locatePoints", json=wgs).json()
    assert located["locations"][0] == direct["locations"][0]
    assert direct["locations"][0]["found"]


def test_counts_of_buildings_per_grid_cell(api):
    response = api.get(
        f"{LAYERS}/buildings/features:countByGridCell", params={"grid_tenant": VILLAGE}
    )
    counts = response.json()["counts"]
    assert len(counts) >= 12
    layer = api.get(f"{LAYERS}/buildings").json()
    assert sum(c["count"] for c in counts) == layer["feature_count"]
    by_path = api.get(
        f"{LAYERS}/buildings/features:countByGridCell",
        params={"grid_tenant": VILLAGE.replace("-", "/")},
    )
    assert by_path.json()["counts"] == counts
    bad = api.get(f"{LAYERS}/buildings/features:countByGridCell", params={"grid_tenant": "X Y"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field_violations"][0]["field"] == "grid_tenant"


def test_cli_imports_and_exports(stack, tmp_path, api):
    api.post(
        LAYERS,
        json={
            "layer_id": "shelters",
            "display_name": "Shelters",
            "kind": "poi",
            "geometry_type": "Point",
            "fields": [{"name": "name", "type": "string"}],
        },
    )
    source = tmp_path / "shelters.csv"
    source.write_text("id,name,lon,lat\ns1,East school,121.161,31.291\ns2,Hall,121.162,31.292\n")
    env = {
        **os.environ,
        "GRASSROOTS_EDGE_ADDRESS": stack.config.edge_address,
        "GRASSROOTS_API_KEY": stack.api_headers()["X-API-Key"],
    }
    layer = f"tenants/{VILLAGE}/layers/shelters"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.map.cli",
            "import",
            layer,
            str(source),
            "--id-field",
            "id",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 2 features" in result.stdout
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.map.cli",
            "import",
            layer,
            str(source),
            "--id-field",
            "id",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert "ALREADY_EXISTS" in again.stderr
    out = tmp_path / "out.geojson"
    exported = subprocess.run(
        [sys.executable, "-m", "services.map.cli", "export", layer, str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    features = json.loads(out.read_text())["features"]
    assert {f["properties"]["id"] for f in features} == {"s1", "s2"}

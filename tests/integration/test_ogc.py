"""OGC API - Features as GIS tools see it: GDAL's OAPIF driver and OWSLib."""

from __future__ import annotations

import httpx
import numpy as np
import pyogrio
import pytest
import shapely
from owslib.ogcapi.features import Features

COLLECTION = "sh-jiading-anting-xingming.grid-cells"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture
def ogc(stack):
    return f"{stack.config.gateway_url}/ogc"


@pytest.fixture
def key(stack):
    """GIS tools send the app's key as a header (GDAL: GDAL_HTTP_HEADERS; OWSLib: headers)."""
    return stack.api_headers()


def source_cells(demo_gpkg):
    meta, _, geometry, fields = pyogrio.raw.read(demo_gpkg, layer="grid_cells")
    columns = dict(zip(meta["fields"], fields, strict=True))
    rows = np.flatnonzero(columns["tenant"] == "sh/jiading/anting/xingming")
    return {
        str(columns["grid_cell_id"][i]): (
            shapely.from_wkb(geometry[i]),
            str(columns["grid_worker_id"][i]),
        )
        for i in rows
    }


def test_landing_conformance_and_collections(ogc, key):
    landing = httpx.get(ogc).json()
    assert {"conformance", "data", "service-desc"} <= {link["rel"] for link in landing["links"]}
    conforms = httpx.get(f"{ogc}/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conforms
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conforms
    assert httpx.get(f"{ogc}/collections").status_code == 401
    ids = {c["id"] for c in httpx.get(f"{ogc}/collections", headers=key).json()["collections"]}
    assert {
        COLLECTION,
        "sh-jiading-anting.boundaries",
        "sh-jiading-anting-xiangyang.buildings",
    } <= ids


def test_gdal_oapif_reads_the_layer_like_the_source(ogc, key, demo_gpkg, tmp_path):
    expected = source_cells(demo_gpkg)
    headers = tmp_path / "headers.txt"
    headers.write_text("".join(f"{name}: {value}\n" for name, value in key.items()))
    pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": str(headers)})
    try:
        meta, _, geometry, fields = pyogrio.raw.read(f"OAPIF:{ogc}", layer=COLLECTION)
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": None})
    columns = dict(zip(meta["fields"], fields, strict=True))
    ids = [str(v) for v in columns["id"]] if "id" in columns else None
    got = shapely.from_wkb(geometry)
    assert len(got) == len(expected)
    workers = columns["grid_worker_id"]
    for i, geom in enumerate(got):
        fid = ids[i] if ids else None
        match = (
            expected[fid]
            if fid
            else next(v for v in expected.values() if shapely.equals_exact(v[0], geom, 1e-9))
        )
        assert shapely.equals_exact(match[0], geom, tolerance=1e-9)
        assert match[1] == str(workers[i])


def test_owslib_pages_through_items(ogc, key, demo_gpkg):
    expected = source_cells(demo_gpkg)
    api = Features(ogc, headers=key)
    assert COLLECTION in [c["id"] for c in api.collections()["collections"]]
    seen = {}
    offset = 0
    while True:
        page = api.collection_items(COLLECTION, limit=4, offset=offset)
        for feature in page["features"]:
            seen[feature["id"]] = feature
        if page["numberReturned"] < 4:
            break
        offset += 4
    assert set(seen) == set(expected)
    for fid, feature in seen.items():
        assert shapely.equals_exact(
            shapely.geometry.shape(feature["geometry"]), expected[fid][0], tolerance=1e-9
        )
        assert feature["properties"]["grid_worker_id"] == expected[fid][1]
    one = api.collection_item(COLLECTION, next(iter(expected)))
    assert one["id"] == next(iter(expected))


def test_crs_part_2_swaps_axes_for_epsg_4326_and_projects_utm(ogc, key, demo_gpkg):
    expected = source_cells(demo_gpkg)
    fid = next(iter(expected))
    url = f"{ogc}/collections/{COLLECTION}/items/{fid}"
    plain = httpx.get(url, headers=key)
    assert plain.headers["content-crs"] == f"<{CRS84}>"
    epsg = httpx.get(url, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}, headers=key)
    assert epsg.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    lonlat = shapely.geometry.shape(plain.json()["geometry"])
    latlon = shapely.geometry.shape(epsg.json()["geometry"])
    swapped = shapely.transform(latlon, lambda xy: xy[:, ::-1])
    assert shapely.equals_exact(lonlat, swapped, tolerance=1e-12)
    utm = shapely.geometry.shape(
        httpx.get(
            url, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/32651"}, headers=key
        ).json()["geometry"]
    )
    assert 250_000 < utm.centroid.x < 400_000 and 3_400_000 < utm.centroid.y < 3_500_000
    bad = httpx.get(
        url, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/999999"}, headers=key
    )
    assert bad.status_code == 400


def test_crs_short_forms_mean_the_same_crs(ogc, key, demo_gpkg):
    fid = next(iter(source_cells(demo_gpkg)))
    url = f"{ogc}/collections/{COLLECTION}/items/{fid}"
    full = httpx.get(url, params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4490"}, headers=key)
    short = httpx.get(url, params={"crs": "EPSG:4490"}, headers=key)
    assert short.status_code == 200
    assert short.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    assert short.json()["geometry"] == full.json()["geometry"]
    assert httpx.get(url, params={"crs": "CRS84"}, headers=key).headers["content-crs"] == (
        f"<{CRS84}>"
    )
    bad = httpx.get(url, params={"crs": "EPSG:999999"}, headers=key)
    assert bad.status_code == 400 and "crs" in bad.text


def test_bbox_and_property_filters(ogc, key, demo_gpkg):
    expected = source_cells(demo_gpkg)
    fid, (geom, worker) = next(iter(expected.items()))
    point = shapely.point_on_surface(geom)
    bbox = f"{point.x - 1e-6},{point.y - 1e-6},{point.x + 1e-6},{point.y + 1e-6}"
    page = httpx.get(
        f"{ogc}/collections/{COLLECTION}/items", params={"bbox": bbox}, headers=key
    ).json()
    assert fid in {f["id"] for f in page["features"]}
    page = httpx.get(
        f"{ogc}/collections/{COLLECTION}/items", params={"grid_worker_id": worker}, headers=key
    ).json()
    assert [f["id"] for f in page["features"]] == [fid]
    assert page["numberMatched"] == 1
    unknown = httpx.get(
        f"{ogc}/collections/{COLLECTION}/items", params={"colour": "red"}, headers=key
    )
    assert unknown.status_code == 400


def test_unknown_collection_is_404(ogc, key):
    response = httpx.get(f"{ogc}/collections/sh-jiading-anting-xingming.nothing/items", headers=key)
    assert response.status_code == 404

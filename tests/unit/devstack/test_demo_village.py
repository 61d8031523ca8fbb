"""The synthetic demo town: deterministic, at the right place, and geometrically sound."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely

from devstack import demo_village
from devstack.demo_village import TOWN_TENANT, VILLAGE_TENANTS
from services.kit import gb11643

REPO_ROOT = Path(__file__).resolve().parents[3]
LAYERS = ("admin_boundaries", "grid_cells", "buildings", "pois", "roads", "residents")
# Metres per degree near 31.29 N; independent of the module's own constants on purpose.
M_PER_DEG_LON = 95_210.0
M_PER_DEG_LAT = 110_874.0


def read_layer(path: Path, layer: str) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    meta, _fids, wkb, field_data = pyogrio.raw.read(path, layer=layer)
    geoms = None if wkb is None else shapely.from_wkb(wkb)
    return geoms, dict(zip(meta["fields"], field_data, strict=True))


def read_all(path: Path) -> dict[str, tuple[np.ndarray | None, dict[str, np.ndarray]]]:
    return {layer: read_layer(path, layer) for layer in LAYERS}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """The default demo, generated once for the read-only tests of this module."""
    path = tmp_path_factory.mktemp("demo") / "demo-village.gpkg"
    summary = demo_village.generate(path)
    return path, summary, read_all(path)


def village_polygons(layers) -> dict[str, shapely.Geometry]:
    geoms, cols = layers["admin_boundaries"]
    rows = zip(cols["tenant"], geoms, cols["level"], strict=True)
    return {tenant: geom for tenant, geom, level in rows if level == "village"}


def gb11643_ok(id_number: str) -> bool:
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(d) * w for d, w in zip(id_number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == id_number[17]


def test_check_digit_matches_a_published_example():
    # The worked example of GB 11643-1999, appendix: 11010519491231002X.
    assert gb11643_ok("11010519491231002X")
    assert gb11643.check_character("11010519491231002") == "X"
    assert not gb11643_ok("110105194912310021")


def test_same_seed_gives_identical_layers_and_another_seed_other_buildings(tmp_path):
    first = demo_village.generate(tmp_path / "a.gpkg", seed=11, buildings_per_village=300)
    again = demo_village.generate(tmp_path / "b.gpkg", seed=11, buildings_per_village=300)
    demo_village.generate(tmp_path / "c.gpkg", seed=12, buildings_per_village=300)
    assert first.counts() == again.counts()
    a, b, c = (read_all(tmp_path / n) for n in ("a.gpkg", "b.gpkg", "c.gpkg"))
    for layer in LAYERS:
        geoms_a, cols_a = a[layer]
        geoms_b, cols_b = b[layer]
        if geoms_a is not None:
            assert list(shapely.to_wkb(geoms_a)) == list(shapely.to_wkb(geoms_b)), layer
        assert list(cols_a) == list(cols_b), layer
        for name in cols_a:
            assert np.array_equal(cols_a[name], cols_b[name]), (layer, name)
    buildings_a = set(shapely.to_wkb(a["buildings"][0]))
    buildings_c = set(shapely.to_wkb(c["buildings"][0]))
    assert not buildings_a & buildings_c
    # Territory does not move with the seed: only the contents do.
    assert shapely.equals(a["admin_boundaries"][0], c["admin_boundaries"][0]).all()


def test_layers_schema_crs_and_synthetic_flag(demo):
    path, _, layers = demo
    listed = {name: gtype for name, gtype in pyogrio.list_layers(path)}
    assert listed == {
        "admin_boundaries": "MultiPolygon",
        "grid_cells": "Polygon",
        "buildings": "Polygon",
        "pois": "Point",
        "residents": None,
        "roads": "LineString",
    }
    for layer in LAYERS:
        info = pyogrio.read_info(path, layer=layer)
        if listed[layer] is not None:
            assert info["crs"] == "EPSG:4326"
        assert info["layer_metadata"]["synthetic"] == "true", layer
        cols = layers[layer][1]
        assert (cols["synthetic"] == 1).all(), layer
    # Reading must not leave GDAL sidecar files next to the data file.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_counts(demo):
    _, summary, layers = demo
    assert summary.counts() == {
        layer: len(next(iter(layers[layer][1].values()))) for layer in LAYERS
    }
    assert summary.village_tenants == VILLAGE_TENANTS
    for tenant in VILLAGE_TENANTS:
        assert (layers["grid_cells"][1]["tenant"] == tenant).sum() >= 12
        assert (layers["buildings"][1]["tenant"] == tenant).sum() == 2400
        assert 300 <= (layers["residents"][1]["tenant"] == tenant).sum() <= 400
        assert 20 <= (layers["pois"][1]["tenant"] == tenant).sum() <= 40


def test_admin_boundaries_nest_and_do_not_overlap(demo):
    _, _, layers = demo
    geoms, cols = layers["admin_boundaries"]
    assert list(cols["tenant"]) == [TOWN_TENANT, *VILLAGE_TENANTS]
    assert list(cols["parent"]) == ["sh/jiading", TOWN_TENANT, TOWN_TENANT]
    assert all(re.fullmatch(r"310114\d{6}", code) for code in cols["admin_code"])
    assert shapely.is_valid(geoms).all()
    town, xingming, xiangyang = geoms
    assert shapely.contains(town, xingming) and shapely.contains(town, xiangyang)
    assert shapely.intersection(xingming, xiangyang).area < 1e-12
    xmin, ymin, xmax, ymax = town.bounds
    across_km = ((xmax - xmin) * M_PER_DEG_LON / 1000, (ymax - ymin) * M_PER_DEG_LAT / 1000)
    assert all(5.5 < d < 8.5 for d in across_km)


def test_demo_is_at_xingming_village_in_anting(demo):
    _, _, layers = demo
    xingming = village_polygons(layers)["sh/jiading/anting/xingming"]
    here = shapely.Point(121.16, 31.29)
    centroid = xingming.centroid
    distance_m = math.hypot(
        (centroid.x - here.x) * M_PER_DEG_LON, (centroid.y - here.y) * M_PER_DEG_LAT
    )
    assert xingming.contains(here) or distance_m < 2000


def test_grid_cells_tile_their_village(demo):
    _, _, layers = demo
    cells, cols = layers["grid_cells"]
    assert len(set(cols["grid_cell_id"])) == len(cells)
    assert (shapely.get_type_id(cells) == 3).all()  # Polygon
    assert shapely.is_valid(cells).all()
    for tenant, village in village_polygons(layers).items():
        mine = cells[cols["tenant"] == tenant]
        union = shapely.union_all(mine)
        assert shapely.symmetric_difference(union, village).area <= 1e-9 * village.area
        assert abs(shapely.area(mine).sum() - village.area) <= 1e-9 * village.area
        tree = shapely.STRtree(mine)
        left, right = tree.query(mine, predicate="intersects")
        pairs = left < right
        overlap = shapely.intersection(mine[left[pairs]], mine[right[pairs]])
        assert shapely.area(overlap).max(initial=0.0) <= 1e-12 * village.area


def test_buildings_sit_in_their_cell_and_village_and_do_not_overlap(demo):
    _, _, layers = demo
    buildings, cols = layers["buildings"]
    cells, cell_cols = layers["grid_cells"]
    cell_by_id = dict(zip(cell_cols["grid_cell_id"], cells, strict=True))
    tenant_of_cell = dict(zip(cell_cols["grid_cell_id"], cell_cols["tenant"], strict=True))
    assert len(set(cols["building_id"])) == len(buildings)
    assert shapely.is_valid(buildings).all()
    named_cells = np.array([cell_by_id[c] for c in cols["grid_cell_id"]], dtype=object)
    assert shapely.within(buildings, named_cells).all()
    villages = village_polygons(layers)
    named_villages = np.array([villages[t] for t in cols["tenant"]], dtype=object)
    assert shapely.within(buildings, named_villages).all()
    assert all(
        tenant_of_cell[c] == t for c, t in zip(cols["grid_cell_id"], cols["tenant"], strict=True)
    )

    left, right = shapely.STRtree(buildings).query(buildings, predicate="intersects")
    assert (left == right).all(), "buildings touch or overlap"

    # Ground size: sides of 8-20 m by 6-12 m (the degree conversion is easy to get wrong).
    coords = shapely.get_coordinates(buildings).reshape(len(buildings), 5, 2)
    sides = np.diff(coords, axis=1)[:, :2, :] * [M_PER_DEG_LON, M_PER_DEG_LAT]
    length, width = np.hypot(sides[..., 0], sides[..., 1]).T
    assert ((length > 7.9) & (length < 20.1) & (width > 5.9) & (width < 12.1)).all()
    assert set(cols["use"]) <= set(demo_village.BUILDING_USES)
    assert cols["floors"].min() >= 1 and cols["floors"].max() <= 6


def test_pois_are_inside_their_village(demo):
    _, _, layers = demo
    pois, cols = layers["pois"]
    villages = village_polygons(layers)
    named = np.array([villages[t] for t in cols["tenant"]], dtype=object)
    assert shapely.within(pois, named).all()
    assert set(cols["kind"]) == set(demo_village.POI_KINDS)
    assert len(set(cols["poi_id"])) == len(pois)


def test_residents_are_well_formed_and_live_in_houses_of_their_village(demo):
    path, _, layers = demo
    people = demo_village.residents_for(path)
    _, stored = layers["residents"]
    assert list(people["resident_id"]) == list(stored["resident_id"])
    _, bcols = layers["buildings"]
    use = dict(zip(bcols["building_id"], bcols["use"], strict=True))
    tenant = dict(zip(bcols["building_id"], bcols["tenant"], strict=True))
    households = dict(zip(bcols["building_id"], bcols["households"], strict=True))
    assert len(set(people["resident_id"])) == len(people["resident_id"])
    assert len(set(people["id_number"])) == len(people["id_number"])
    for row in zip(
        people["tenant"],
        people["building_id"],
        people["id_number"],
        people["phone"],
        people["birth_year"],
        strict=True,
    ):
        village, building, id_number, phone, birth_year = row
        assert re.fullmatch(r"310114\d{11}[\dX]", id_number)
        assert gb11643_ok(id_number), id_number
        assert int(id_number[6:10]) == birth_year
        assert re.fullmatch(r"1[358]\d{9}", phone)
        assert use[building] == "residential"
        assert tenant[building] == village
        assert households[building] >= 1

    occupants: dict[str, int] = {}
    for building in people["building_id"]:
        occupants[building] = occupants.get(building, 0) + 1
    alone = people["lives_alone"] == 1
    assert all(occupants[b] == 1 for b in people["building_id"][alone])
    elderly = (2026 - people["birth_year"]) >= 60
    share = alone[elderly].mean()
    assert 0.05 < share < 0.35, f"{share:.0%} of the elderly live alone"


def test_too_few_buildings_for_the_residents_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        demo_village.generate(tmp_path / "x.gpkg", buildings_per_village=100)
    assert not (tmp_path / "x.gpkg").exists()


def test_cli_writes_the_file_and_exits_zero(tmp_path):
    out = tmp_path / "data" / "demo-village.gpkg"
    out.parent.mkdir()
    out.write_text("not a geopackage; the CLI must replace it")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.demo_village",
            "--out",
            str(out),
            "--seed",
            "7",
            "--buildings-per-village",
            "300",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    assert "600 buildings" in result.stdout
    assert [name for name, _ in pyogrio.list_layers(out)] == list(LAYERS)
    assert not list(out.parent.glob(".*partial*"))


def test_the_file_holds_no_residents_name_id_number_or_phone(demo):
    """Invented as they are, they look real; the file is copied around (a map seed,
    a test fixture). They are regenerated from the seed when empower is seeded."""
    path, _, layers = demo
    _, stored = layers["residents"]
    assert not set(demo_village.PERSONAL_COLUMNS) & set(stored)
    people = demo_village.residents_for(path)
    content = path.read_bytes()
    # Numbers, byte for byte (a short name may well be part of a grid worker's).
    for column in ("id_number", "phone"):
        leaked = [v for v in people[column] if str(v).encode() in content]
        assert not leaked, (column, leaked[:3])


def test_an_older_file_with_personal_columns_is_recognised(demo, tmp_path):
    path, _, _ = demo
    assert not demo_village.holds_personal_columns(path)
    old = tmp_path / "old.gpkg"
    people = demo_village.residents()
    pyogrio.raw.write(
        str(old),
        geometry=None,
        field_data=[people["resident_id"], people["id_number"]],
        fields=["resident_id", "id_number"],
        layer="residents",
        driver="GPKG",
    )
    assert demo_village.holds_personal_columns(old)

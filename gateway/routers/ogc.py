"""OGC API - Features (Part 1 Core with GeoJSON, Part 2 CRS) over the map layers.

GIS tools (QGIS, GDAL's OAPIF driver, OWSLib) open the layers a caller can see as
collections. A collection id is `{tenant id}.{layer id}`, for example
`sh-jiading-anting-xingming.buildings`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import shapely
from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.responses import Response

from gateway.auth import access, call_metadata, calls
from gateway.errors import ApiError, call
from gateway.geojson import BBOX_PATTERN, feature_json, parse_bbox
from grassroots.map.v1 import map_service_pb2 as pb
from services.kit import tenancy
from services.kit.errors import FieldViolation
from services.kit.filtering import quote
from services.kit.principal import Principal

router = APIRouter(prefix="/ogc", tags=["ogc-api-features"])

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
# URI -> (CRS name the map service understands, whether axes are latitude first).
SUPPORTED_CRS = {
    CRS84: ("EPSG:4326", False),
    EPSG + "4326": ("EPSG:4326", True),
    EPSG + "4490": ("EPSG:4490", True),
    EPSG + "3857": ("EPSG:3857", False),
    EPSG + "32651": ("EPSG:32651", False),
}
CRS_CHOICES = "one of " + ", ".join(SUPPORTED_CRS) + "; CRS84 when absent"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
RESERVED_PARAMS = {"limit", "offset", "bbox", "bbox-crs", "crs", "f", "datetime"}
MAX_LIMIT = 10_000
CollectionId = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,250}\.[a-z][a-z0-9-]{0,62}$")]
Who = Annotated[Principal, Security(access("map"))]
GEOJSON = "application/geo+json"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _layer_name(collection_id: str) -> str:
    tenant, _, layer = collection_id.partition(".")
    return f"tenants/{tenant}/layers/{layer}"


def _collection_id(layer: pb.Layer) -> str:
    parts = layer.name.split("/")
    return f"{parts[1]}.{parts[3]}"


# Short forms people type (and the README shows) for the same CRSs: `EPSG:4490`, `CRS84`.
SHORT_FORMS = {"CRS84": CRS84, "OGC:CRS84": CRS84} | {
    f"EPSG:{uri.removeprefix(EPSG)}": uri for uri in SUPPORTED_CRS if uri.startswith(EPSG)
}


def _crs(uri: str | None, field: str) -> tuple[str, bool, str]:
    uri = uri or CRS84
    uri = SHORT_FORMS.get(uri.upper(), uri)
    if uri not in SUPPORTED_CRS:
        raise ApiError(
            400,
            f"{field}: unsupported CRS {uri}",
            violations=[FieldViolation(field, f"use one of {', '.join(SUPPORTED_CRS)}")],
        )
    name, lat_first = SUPPORTED_CRS[uri]
    return name, lat_first, uri


def _collection(layer: pb.Layer, base: str) -> dict[str, Any]:
    cid = _collection_id(layer)
    extent = list(layer.extent) or [-180.0, -90.0, 180.0, 90.0]
    return {
        "id": cid,
        "title": f"{layer.display_name} ({tenancy.id_to_path(cid.split('.')[0])})",
        "description": f"{pb.LayerKind.Name(layer.kind).removeprefix('LAYER_KIND_').lower()} "
        f"layer, {layer.feature_count} features",
        "itemType": "feature",
        "extent": {"spatial": {"bbox": [extent], "crs": CRS84}},
        "crs": list(SUPPORTED_CRS),
        "storageCrs": CRS84,
        "links": [
            {"href": f"{base}/collections/{cid}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{cid}/items", "rel": "items", "type": GEOJSON},
        ],
    }


@router.get("", summary="Landing page")
async def landing(request: Request) -> dict[str, Any]:
    base = _base(request)
    root = str(request.base_url).rstrip("/")
    return {
        "title": "Grassroots map layers",
        "description": "Grid cells, buildings, POIs and boundaries of the villages you can see.",
        "links": [
            {"href": base, "rel": "self", "type": "application/json"},
            {
                "href": f"{root}/openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"href": f"{root}/docs", "rel": "service-doc", "type": "text/html"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
async def conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE}


async def _all_layers(request: Request, who: Principal) -> list[pb.Layer]:
    layers: list[pb.Layer] = []
    token = ""
    while True:
        response = await call(
            request.app.state.upstreams.map.ListLayers(
                pb.ListLayersRequest(
                    parent=tenancy.tenant_name(who.tenant), page_size=1000, page_token=token
                ),
                metadata=call_metadata(who),
            )
        )
        layers.extend(response.layers)
        token = response.next_page_token
        if not token:
            return layers


@router.get("/collections", summary="The layers you can see, as collections")
@calls("grassroots.map.v1.MapService", "ListLayers")
async def collections(request: Request, who: Who) -> dict[str, Any]:
    base = _base(request)
    return {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [_collection(layer, base) for layer in await _all_layers(request, who)],
    }


@router.get("/collections/{collection_id}", summary="One collection")
@calls("grassroots.map.v1.MapService", "GetLayer")
async def collection(collection_id: CollectionId, request: Request, who: Who) -> dict[str, Any]:
    layer = await call(
        request.app.state.upstreams.map.GetLayer(
            pb.GetLayerRequest(name=_layer_name(collection_id)), metadata=call_metadata(who)
        )
    )
    return _collection(layer, _base(request))


def _geometries_json(features: list[pb.Feature], lat_first: bool) -> list[str]:
    if not lat_first:
        return [f.geometry.geojson or "null" for f in features]
    if not features:
        return []
    geometries = shapely.from_wkb(np.array([f.geometry.wkb for f in features], dtype=object))
    swapped = shapely.transform(geometries, lambda xy: xy[:, ::-1])
    return [str(text) for text in shapely.to_geojson(swapped)]


@router.get("/collections/{collection_id}/items", summary="Features of a collection")
@calls("grassroots.map.v1.MapService", "ListFeatures")
async def items(
    collection_id: CollectionId,
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    bbox: Annotated[str | None, Query(pattern=BBOX_PATTERN)] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description=CRS_CHOICES)] = None,
    crs: Annotated[str | None, Query(description=CRS_CHOICES)] = None,
) -> Response:
    target, lat_first, crs_uri = _crs(crs, "crs")
    box: list[float] = []
    box_crs = ""
    if bbox:
        box = parse_bbox(bbox)
        box_crs, box_lat_first, _ = _crs(bbox_crs, "bbox-crs")
        if box_lat_first:
            box = [box[1], box[0], box[3], box[2]]
    filters = [
        f'{name} = "{quote(value)}"'
        for name, value in request.query_params.items()
        if name not in RESERVED_PARAMS
    ]
    response = await call(
        request.app.state.upstreams.map.ListFeatures(
            pb.ListFeaturesRequest(
                parent=_layer_name(collection_id),
                page_size=limit,
                skip=offset,
                bbox=box,
                bbox_crs=box_crs,
                filter=" AND ".join(filters),
                response_crs=target,
                geometry_encoding=(
                    pb.GEOMETRY_ENCODING_WKB if lat_first else pb.GEOMETRY_ENCODING_GEOJSON
                ),
                # Longitude-first output comes pre-rendered and cached by the map service.
                view=pb.FEATURE_VIEW_FULL if lat_first else pb.FEATURE_VIEW_GEOJSON,
            ),
            metadata=call_metadata(who),
        )
    )
    features = list(response.features)
    links = [{"href": str(request.url), "rel": "self", "type": GEOJSON}]
    if offset + len(features) < response.total_size:
        links.append(
            {
                "href": str(request.url.include_query_params(offset=offset + limit, limit=limit)),
                "rel": "next",
                "type": GEOJSON,
            }
        )
    if offset > 0:
        links.append(
            {
                "href": str(
                    request.url.include_query_params(offset=max(offset - limit, 0), limit=limit)
                ),
                "rel": "prev",
                "type": GEOJSON,
            }
        )
    if lat_first:
        geometries = _geometries_json(features, lat_first)
        texts = [feature_json(f, geometry=g) for f, g in zip(features, geometries, strict=True)]
    else:
        texts = [f.geojson_feature for f in features]
    body = (
        '{"type":"FeatureCollection","features":['
        + ",".join(texts)
        + "],"
        + f'"numberMatched":{response.total_size},"numberReturned":{len(features)},'
        + f'"timeStamp":"{datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}",'
        + f'"links":{json.dumps(links)}'
        + "}"
    )
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{crs_uri}>"})


@router.get("/collections/{collection_id}/items/{item_id}", summary="One feature")
@calls("grassroots.map.v1.MapService", "GetFeature")
async def item(
    collection_id: CollectionId,
    item_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")],
    request: Request,
    who: Who,
    crs: Annotated[str | None, Query(description=CRS_CHOICES)] = None,
) -> Response:
    target, lat_first, crs_uri = _crs(crs, "crs")
    feature = await call(
        request.app.state.upstreams.map.GetFeature(
            pb.GetFeatureRequest(
                name=f"{_layer_name(collection_id)}/features/{item_id}",
                response_crs=target,
                geometry_encoding=(
                    pb.GEOMETRY_ENCODING_WKB if lat_first else pb.GEOMETRY_ENCODING_GEOJSON
                ),
            ),
            metadata=call_metadata(who),
        )
    )
    base = f"{_base(request)}/collections/{collection_id}"
    links = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON},
        {"href": base, "rel": "collection", "type": "application/json"},
    ]
    body = feature_json(feature, links, _geometries_json([feature], lat_first)[0])
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{crs_uri}>"})

"""REST for the map component: layers, imports and exports, queries, locate, transform.

Paths are the resource names under `/v1/` (ADR 9):
`/v1/tenants/{tenant}/layers/{layer}/features/{feature}`, where `{tenant}` is a tenant id
such as `sh-jiading-anting-xingming`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Security, UploadFile
from fastapi.responses import Response
from google.protobuf.json_format import MessageToDict

from gateway.auth import access, call_metadata, calls, public
from gateway.errors import ApiError, call
from gateway.geojson import BBOX_PATTERN, collection_json, feature_json, parse_bbox
from gateway.paths import TENANT_FILTER_DESCRIPTION, TenantId, parent, tenant_filter
from gateway.schemas.common import CRS_DESCRIPTION
from gateway.schemas.contract import bounds
from gateway.schemas.map import (
    GridCellCountOut,
    GridCellCounts,
    ImportOut,
    LayerCreate,
    LayerList,
    LayerOut,
    LocateRequest,
    LocateResponse,
    PointLocationOut,
    SearchRequest,
    TransformRequest,
    TransformResponse,
)
from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.errors import FieldViolation
from services.kit.principal import Principal

router = APIRouter(prefix="/v1", tags=["map"])

LayerId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=63)]
FeatureId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Who = Annotated[Principal, Security(access("map"))]
Anyone = Annotated[Principal, Depends(public("map"))]
GEOJSON = "application/geo+json"


def _layer_name(tenant: str, layer: str) -> str:
    return f"tenants/{tenant}/layers/{layer}"


def layer_out(layer: pb.Layer) -> LayerOut:
    data = MessageToDict(layer, preserving_proto_field_name=True)
    parts = layer.name.split("/")
    return LayerOut(
        name=layer.name,
        tenant=tenancy.id_to_path(parts[1]),
        layer_id=parts[3],
        display_name=layer.display_name,
        kind=pb.LayerKind.Name(layer.kind).removeprefix("LAYER_KIND_").lower(),  # type: ignore[arg-type]
        geometry_type=layer.geometry_type,
        fields=[
            {  # type: ignore[misc]
                "name": f.name,
                "type": pb.FieldType.Name(f.type).removeprefix("FIELD_TYPE_").lower(),
                "required": f.required,
                "description": f.description,
            }
            for f in layer.fields
        ],
        sensitivity=pb.Sensitivity.Name(layer.sensitivity).removeprefix("SENSITIVITY_").lower(),  # type: ignore[arg-type]
        shared=layer.shared,
        feature_count=layer.feature_count,
        extent=list(layer.extent) or None,
        create_time=data.get("create_time"),
        update_time=data.get("update_time"),
    )


def _geometry(value: dict[str, Any], crs: str, field: str) -> geo_pb2.Geometry:
    if not isinstance(value, dict) or "type" not in value:
        raise ApiError(
            400,
            f"{field}: not a GeoJSON geometry",
            violations=[FieldViolation(field, "is not a GeoJSON geometry")],
        )
    return geo_pb2.Geometry(geojson=json.dumps(value), crs=crs)


@router.get(
    "/tenants/{tenant}/layers",
    response_model=LayerList,
    summary="List the layers a tenant sees: its subtree's and the shared layers above it",
)
@calls("grassroots.map.v1.MapService", "ListLayers")
async def list_layers(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[str, Query(max_length=512)] = "",
) -> LayerList:
    response = await call(
        request.app.state.upstreams.map.ListLayers(
            pb.ListLayersRequest(parent=parent(tenant), page_size=page_size, page_token=page_token),
            metadata=call_metadata(who),
        )
    )
    return LayerList(
        layers=[layer_out(layer) for layer in response.layers],
        next_page_token=response.next_page_token,
    )


@router.post(
    "/tenants/{tenant}/layers", status_code=201, response_model=LayerOut, summary="Create a layer"
)
@calls("grassroots.map.v1.MapService", "CreateLayer")
async def create_layer(tenant: TenantId, body: LayerCreate, request: Request, who: Who) -> LayerOut:
    message = pb.CreateLayerRequest(
        parent=parent(tenant),
        layer_id=body.layer_id,
        layer=pb.Layer(
            display_name=body.display_name,
            kind=getattr(pb, f"LAYER_KIND_{body.kind.upper()}"),
            geometry_type=body.geometry_type,
            fields=[
                pb.FieldSpec(
                    name=f.name,
                    type=getattr(pb, f"FIELD_TYPE_{f.type.upper()}"),
                    required=f.required,
                    description=f.description,
                )
                for f in body.fields
            ],
            sensitivity=getattr(pb, f"SENSITIVITY_{body.sensitivity.upper()}"),
            shared=body.shared,
        ),
    )
    layer = await call(
        request.app.state.upstreams.map.CreateLayer(message, metadata=call_metadata(who)),
        strip_prefix="layer.",
    )
    return layer_out(layer)


@router.get("/tenants/{tenant}/layers/{layer}", response_model=LayerOut, summary="Get a layer")
@calls("grassroots.map.v1.MapService", "GetLayer")
async def get_layer(tenant: TenantId, layer: LayerId, request: Request, who: Who) -> LayerOut:
    response = await call(
        request.app.state.upstreams.map.GetLayer(
            pb.GetLayerRequest(name=_layer_name(tenant, layer)), metadata=call_metadata(who)
        )
    )
    return layer_out(response)


@router.delete("/tenants/{tenant}/layers/{layer}", status_code=204, summary="Delete a layer")
@calls("grassroots.map.v1.MapService", "DeleteLayer")
async def delete_layer(tenant: TenantId, layer: LayerId, request: Request, who: Who) -> Response:
    await call(
        request.app.state.upstreams.map.DeleteLayer(
            pb.DeleteLayerRequest(name=_layer_name(tenant, layer)), metadata=call_metadata(who)
        )
    )
    return Response(status_code=204)


@router.post(
    "/tenants/{tenant}/layers/{layer}/features:import",
    response_model=ImportOut,
    summary="Import a GeoJSON, GeoPackage, zipped Shapefile or CSV file, all or nothing",
)
@calls("grassroots.map.v1.MapService", "ImportFeatures")
async def import_features(
    tenant: TenantId,
    layer: LayerId,
    request: Request,
    who: Who,
    file: Annotated[UploadFile, File(description="the file")],
    format: Annotated[str, Form(**bounds(pb.ImportFeaturesRequest, "format"))],
    source_crs: Annotated[
        str,
        Form(
            **bounds(pb.ImportFeaturesRequest, "source_crs"),
            description="the file's CRS if it names none: " + CRS_DESCRIPTION,
        ),
    ] = "",
    repair_invalid: Annotated[bool, Form()] = False,
    replace: Annotated[bool, Form()] = False,
    id_field: Annotated[str, Form(**bounds(pb.ImportFeaturesRequest, "id_field"))] = "",
    source_layer: Annotated[str, Form(**bounds(pb.ImportFeaturesRequest, "source_layer"))] = "",
    lon_field: Annotated[str, Form(**bounds(pb.ImportFeaturesRequest, "lon_field"))] = "lon",
    lat_field: Annotated[str, Form(**bounds(pb.ImportFeaturesRequest, "lat_field"))] = "lat",
    ignore_unknown_fields: Annotated[bool, Form()] = False,
) -> ImportOut:
    data = await file.read()
    response = await call(
        request.app.state.upstreams.map.ImportFeatures(
            pb.ImportFeaturesRequest(
                parent=_layer_name(tenant, layer),
                data=data,
                format=format,
                source_crs=source_crs,
                repair_invalid=repair_invalid,
                replace=replace,
                id_field=id_field,
                source_layer=source_layer,
                lon_field=lon_field,
                lat_field=lat_field,
                ignore_unknown_fields=ignore_unknown_fields,
            ),
            metadata=call_metadata(who),
            timeout=120,
        )
    )
    return ImportOut(
        layer=layer_out(response.layer),
        imported_count=response.imported_count,
        repaired_count=response.repaired_count,
    )


@router.get("/tenants/{tenant}/layers/{layer}/features:export", summary="Export a layer as a file")
@calls("grassroots.map.v1.MapService", "ExportFeatures")
async def export_features(
    tenant: TenantId,
    layer: LayerId,
    request: Request,
    who: Who,
    format: Annotated[str, Query(pattern="^(geojson|gpkg|shapefile|csv)$")] = "geojson",
    crs: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    response = await call(
        request.app.state.upstreams.map.ExportFeatures(
            pb.ExportFeaturesRequest(name=_layer_name(tenant, layer), format=format, crs=crs),
            metadata=call_metadata(who),
            timeout=120,
        )
    )
    suffix = {"geojson": "geojson", "gpkg": "gpkg", "shapefile": "zip", "csv": "csv"}[format]
    return Response(
        content=response.data,
        media_type=response.media_type,
        headers={"Content-Disposition": f'attachment; filename="{layer}.{suffix}"'},
    )


@router.get("/tenants/{tenant}/layers/{layer}/features", summary="List features as GeoJSON")
@calls("grassroots.map.v1.MapService", "ListFeatures")
async def list_features(
    tenant: TenantId,
    layer: LayerId,
    request: Request,
    who: Who,
    filter: Annotated[str, Query(max_length=2000)] = "",
    bbox: Annotated[str | None, Query(pattern=BBOX_PATTERN)] = None,
    bbox_crs: Annotated[str, Query(max_length=100)] = "",
    crs: Annotated[str, Query(max_length=100)] = "",
    page_size: Annotated[int, Query(ge=1, le=10_000)] = 100,
    page_token: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    box = parse_bbox(bbox) if bbox else []
    response = await call(
        request.app.state.upstreams.map.ListFeatures(
            pb.ListFeaturesRequest(
                parent=_layer_name(tenant, layer),
                filter=filter,
                bbox=box,
                bbox_crs=bbox_crs,
                response_crs=crs,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata=call_metadata(who),
        )
    )
    body = collection_json(response.features, {"next_page_token": response.next_page_token})
    return Response(body, media_type=GEOJSON)


@router.get("/tenants/{tenant}/layers/{layer}/features/{feature}", summary="Get one feature")
@calls("grassroots.map.v1.MapService", "GetFeature")
async def get_feature(
    tenant: TenantId,
    layer: LayerId,
    feature: FeatureId,
    request: Request,
    who: Who,
    crs: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    response = await call(
        request.app.state.upstreams.map.GetFeature(
            pb.GetFeatureRequest(
                name=f"{_layer_name(tenant, layer)}/features/{feature}", response_crs=crs
            ),
            metadata=call_metadata(who),
        )
    )
    return Response(feature_json(response), media_type=GEOJSON)


@router.post(
    "/tenants/{tenant}/layers/{layer}/features:search",
    summary="Features intersecting a geometry, within a distance in metres, or nearest",
)
@calls("grassroots.map.v1.MapService", "SearchFeatures")
async def search_features(
    tenant: TenantId, layer: LayerId, body: SearchRequest, request: Request, who: Who
) -> Response:
    chosen = [n for n in ("intersects", "within_distance", "nearest") if getattr(body, n)]
    if len(chosen) != 1:
        raise ApiError(
            400,
            "set exactly one of intersects, within_distance, nearest",
            violations=[FieldViolation("intersects", "set exactly one spatial query")],
        )
    message = pb.SearchFeaturesRequest(
        parent=_layer_name(tenant, layer),
        filter=body.filter,
        page_size=body.page_size,
        page_token=body.page_token,
        response_crs=body.response_crs,
    )
    if body.intersects is not None:
        message.intersects.CopyFrom(_geometry(body.intersects, body.crs, "intersects"))
    elif body.within_distance is not None:
        message.within_distance.geometry.CopyFrom(
            _geometry(body.within_distance.geometry, body.crs, "within_distance.geometry")
        )
        message.within_distance.distance_meters = body.within_distance.distance_meters
    elif body.nearest is not None:
        message.nearest.point.longitude = body.nearest.point.longitude
        message.nearest.point.latitude = body.nearest.point.latitude
        message.nearest.point.crs = body.crs
        message.nearest.k = body.nearest.k
        message.nearest.max_distance_meters = body.nearest.max_distance_meters
    response = await call(
        request.app.state.upstreams.map.SearchFeatures(message, metadata=call_metadata(who))
    )
    body_text = collection_json(response.features, {"next_page_token": response.next_page_token})
    return Response(body_text, media_type=GEOJSON)


@router.get(
    "/tenants/{tenant}/layers/{layer}/features:countByGridCell",
    response_model=GridCellCounts,
    summary="How many features lie in each grid cell",
)
@calls("grassroots.map.v1.MapService", "CountFeaturesByGridCell")
async def count_by_grid_cell(
    tenant: TenantId,
    layer: LayerId,
    request: Request,
    who: Who,
    grid_tenant: Annotated[
        str | None,
        Query(
            max_length=250,
            description="whose grid cells are counted (default: yours); "
            + TENANT_FILTER_DESCRIPTION,
        ),
    ] = None,
) -> GridCellCounts:
    grid_parent = tenancy.tenant_name(tenant_filter(grid_tenant, "grid_tenant") or who.tenant)
    response = await call(
        request.app.state.upstreams.map.CountFeaturesByGridCell(
            pb.CountFeaturesByGridCellRequest(layer=_layer_name(tenant, layer), parent=grid_parent),
            metadata=call_metadata(who),
        )
    )
    return GridCellCounts(
        counts=[
            GridCellCountOut(grid_cell=c.grid_cell, village=c.village, count=c.count)
            for c in response.counts
        ]
    )


@router.post(
    "/tenants/{tenant}:locatePoints",
    response_model=LocateResponse,
    summary="Locate points in the grid cells of a tenant's subtree",
)
@calls("grassroots.map.v1.MapService", "LocatePoints")
async def locate_points(
    tenant: TenantId, body: LocateRequest, request: Request, who: Who
) -> LocateResponse:
    """For each point: its village, grid cell and grid worker, in input order."""
    rpc = request.app.state.upstreams.map.LocatePoints(
        pb.LocatePointsRequest(
            parent=parent(tenant),
            points=geo_pb2.CoordinateArrays(
                longitudes=body.longitudes, latitudes=body.latitudes, crs=body.crs
            ),
        ),
        metadata=call_metadata(who),
    )
    response = await call(rpc)
    return LocateResponse(
        locations=[
            PointLocationOut(
                found=True,
                village=loc.village,
                grid_cell=loc.grid_cell,
                grid_worker=loc.grid_worker,
                grid_worker_name=loc.grid_worker_name,
            )
            if loc.found
            else PointLocationOut(found=False)
            for loc in response.locations
        ]
    )


@router.post(
    "/coordinates:transform",
    response_model=TransformResponse,
    summary="Convert coordinates between EPSG codes, GCJ-02 and BD-09",
)
@calls("grassroots.map.v1.MapService", "TransformCoordinates")
async def transform(body: TransformRequest, request: Request, who: Who) -> TransformResponse:
    response = await call(
        request.app.state.upstreams.map.TransformCoordinates(
            pb.TransformCoordinatesRequest(
                points=geo_pb2.CoordinateArrays(
                    longitudes=body.longitudes, latitudes=body.latitudes, crs=body.crs
                ),
                target_crs=body.target_crs,
            ),
            metadata=call_metadata(who),
        )
    )
    return TransformResponse(
        longitudes=list(response.points.longitudes),
        latitudes=list(response.points.latitudes),
        crs=response.points.crs,
    )


# What a village's outline says to everyone: which village it is, nothing else.
_OUTLINE_PROPERTIES = ("tenant", "name")


@router.get(
    "/tenants/{tenant}/reportArea",
    summary="Where reports can be made: the outlines of the villages in a tenant's subtree",
)
@calls("grassroots.map.v1.MapService", "ListLayers")
@calls("grassroots.map.v1.MapService", "ListFeatures")
async def report_area(
    tenant: TenantId,
    request: Request,
    who: Anyone,
    crs: Annotated[str, Query(max_length=100, description=CRS_DESCRIPTION)] = "",
) -> Response:
    """Public (ADR 40): the village features of the subtree's administrative boundary
    layers, with only their tenant and name, so a page without an account can frame
    the villages and tell a place in none of them before anything is sent."""
    upstream = request.app.state.upstreams.map
    layers = await call(
        upstream.ListLayers(
            pb.ListLayersRequest(parent=parent(tenant), page_size=1000),
            metadata=call_metadata(who),
        )
    )
    outlines: list[str] = []
    for layer in layers.layers:
        if layer.kind != pb.LAYER_KIND_ADMIN_BOUNDARY:
            continue
        found = await call(
            upstream.ListFeatures(
                pb.ListFeaturesRequest(
                    parent=layer.name,
                    filter='level = "village"',
                    response_crs=crs,
                    page_size=10_000,
                ),
                metadata=call_metadata(who),
            )
        )
        for feature in found.features:
            kept = {k: v for k, v in feature.properties.items() if k in _OUTLINE_PROPERTIES}
            feature.properties.Clear()
            feature.properties.update(kept)
            outlines.append(feature_json(feature))
    body = '{"type":"FeatureCollection","features":[' + ",".join(outlines) + "]}"
    return Response(body, media_type=GEOJSON)

"""Between map protobuf messages and domain objects (no behaviour of its own)."""

from __future__ import annotations

import numpy as np
import shapely
from google.protobuf.struct_pb2 import Struct

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp
from services.map.domain.model import (
    FeatureBatch,
    FieldSpec,
    FieldType,
    Layer,
    LayerKey,
    LayerKind,
    Sensitivity,
)

_KINDS = {getattr(pb, f"LAYER_KIND_{k.name}"): k for k in LayerKind}
_SENSITIVITY = {getattr(pb, f"SENSITIVITY_{s.name}"): s for s in Sensitivity}
_FIELD_TYPES = {getattr(pb, f"FIELD_TYPE_{t.name}"): t for t in FieldType}


def layer_name(key: LayerKey) -> str:
    return f"{tenancy.tenant_name(key.tenant)}/layers/{key.layer_id}"


def parse_layer_name(name: str, field: str = "name") -> LayerKey:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tenants" or parts[2] != "layers" or not parts[3]:
        raise InvalidArgument.field(field, f"{name!r} is not 'tenants/{{tenant}}/layers/{{layer}}'")
    tenant = tenancy.id_to_path(parts[1])
    if not tenancy.is_valid_path(tenant):
        raise InvalidArgument.field(field, f"{parts[1]!r} is not a tenant id")
    return LayerKey(tenant, parts[3])


def parse_feature_name(name: str, field: str = "name") -> tuple[LayerKey, str]:
    head, sep, feature_id = name.rpartition("/features/")
    if not sep or not feature_id or "/" in feature_id:
        raise InvalidArgument.field(
            field, f"{name!r} is not 'tenants/{{tenant}}/layers/{{layer}}/features/{{feature}}'"
        )
    return parse_layer_name(head, field), feature_id


def layer_to_proto(layer: Layer) -> pb.Layer:
    return pb.Layer(
        name=layer_name(layer.key),
        display_name=layer.display_name,
        kind=getattr(pb, f"LAYER_KIND_{layer.kind.name}"),
        geometry_type=layer.geometry_type,
        fields=[
            pb.FieldSpec(
                name=f.name,
                type=getattr(pb, f"FIELD_TYPE_{f.type.name}"),
                required=f.required,
                description=f.description,
            )
            for f in layer.fields
        ],
        sensitivity=getattr(pb, f"SENSITIVITY_{layer.sensitivity.name}"),
        shared=layer.shared,
        feature_count=layer.feature_count,
        extent=list(layer.extent) if layer.extent else [],
        create_time=to_timestamp(layer.create_time),
        update_time=to_timestamp(layer.update_time),
    )


def layer_from_proto(key: LayerKey, message: pb.Layer) -> Layer:
    kind = _KINDS.get(message.kind)
    if kind is None:
        raise InvalidArgument.field("layer.kind", "is required")
    fields = []
    for i, spec in enumerate(message.fields):
        field_type = _FIELD_TYPES.get(spec.type)
        if field_type is None:
            raise InvalidArgument.field(f"layer.fields[{i}].type", "is required")
        fields.append(FieldSpec(spec.name, field_type, spec.required, spec.description))
    return Layer(
        key=key,
        display_name=message.display_name,
        kind=kind,
        geometry_type=message.geometry_type,
        fields=tuple(fields),
        sensitivity=_SENSITIVITY.get(message.sensitivity, Sensitivity.INTERNAL),
        shared=message.shared,
    )


def geometry_from_proto(message: geo_pb2.Geometry, field: str) -> shapely.Geometry:
    try:
        if message.HasField("wkb"):
            geometry = shapely.from_wkb(message.wkb)
        elif message.HasField("geojson"):
            geometry = shapely.from_geojson(message.geojson)
        else:
            raise InvalidArgument.field(field, "needs geojson or wkb")
    except shapely.errors.GEOSException as exc:
        raise InvalidArgument.field(field, f"cannot be read: {exc}") from None
    if geometry is None or shapely.is_empty(geometry):
        raise InvalidArgument.field(field, "is empty")
    if not shapely.is_valid(geometry):
        raise InvalidArgument.field(field, f"is invalid: {shapely.is_valid_reason(geometry)}")
    return geometry


def features_to_proto(
    key: LayerKey,
    batch: FeatureBatch,
    crs: str,
    encoding: int,
    distances: list[float | None] | None = None,
) -> list[pb.Feature]:
    prefix = layer_name(key) + "/features/"
    if encoding == pb.GEOMETRY_ENCODING_WKB:
        encoded = shapely.to_wkb(batch.geometries)
        geometries = [geo_pb2.Geometry(wkb=bytes(g), crs=crs) for g in encoded]
    else:
        texts = shapely.to_geojson(batch.geometries) if len(batch) else np.array([])
        geometries = [geo_pb2.Geometry(geojson=str(t), crs=crs) for t in texts]
    features = []
    for row in range(len(batch)):
        properties = Struct()
        properties.update(batch.properties(row))  # type: ignore[arg-type]  # JSON values
        feature = pb.Feature(
            name=prefix + str(batch.ids[row]), geometry=geometries[row], properties=properties
        )
        if distances is not None and distances[row] is not None:
            feature.distance_meters = float(distances[row])  # type: ignore[arg-type]
        features.append(feature)
    return features

"""JSON shapes of the twin API (answers are the contract's messages as JSON).

Bounds come from the contract (`limited`, ADR 22); what a value means stays the
service's to check.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn
from gateway.schemas.contract import item, limited
from grassroots.twin.v1 import twin_service_pb2 as pb

ENTITY_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# A rule's durations are Durations in the contract; the REST body takes whole seconds,
# at most a year (the domain says what a duration may be).
MAX_RULE_SECONDS = 366 * 86400
# REST batches of readings are smaller than gRPC's 100,000 (a JSON body that size is
# slow to parse); device gateways with more use IngestTelemetry over gRPC.
REST_BATCH = 10_000


class RelationshipIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: str = limited(pb.Relationship, "type", examples=["locatedIn"])
    target: str = limited(
        pb.Relationship,
        "target",
        examples=["tenants/sh-jiading-anting-xingming/entities/building-7"],
    )


class EntityCreate(BaseModel):
    """A thing to watch: its model, where it is and what it is linked to."""

    model_config = ConfigDict(extra="forbid", strict=True)

    entity_id: str | None = limited(
        pb.CreateEntityRequest, "entity_id", None, description="chosen id; assigned if absent"
    )
    entity_type: str = limited(pb.Entity, "entity_type", examples=["WaterLevelGauge"])
    display_name: str = limited(pb.Entity, "display_name", "")
    location: GeoPointIn | None = None
    building: str = limited(
        pb.Entity, "building", "", description="tenants/{tenant}/buildings/{id}"
    )
    relationships: list[RelationshipIn] = limited(pb.Entity, "relationships", [])


class TelemetryIn(BaseModel):
    """Readings as parallel columns; reading i is entities[i], properties[i], values[i]."""

    model_config = ConfigDict(extra="forbid", strict=True)

    entities: list[str] = Field(..., max_length=REST_BATCH, description="ids or names")
    properties: list[str] = Field(..., max_length=REST_BATCH)
    values: list[float] = Field([], max_length=REST_BATCH)
    observe_times_ms: list[Annotated[int, item(pb.TelemetryColumns, "observe_times_ms")]] = Field(
        [],
        max_length=REST_BATCH,
        description="milliseconds since the Unix epoch; empty means now",
    )
    units: list[str] = Field([], max_length=REST_BATCH)
    longitudes: list[float] = Field([], max_length=REST_BATCH)
    latitudes: list[float] = Field([], max_length=REST_BATCH)


class PropertySpecIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = limited(pb.PropertySpec, "name")
    kind: Literal["number", "boolean", "integer", "point"] = "number"
    unit: str = limited(pb.PropertySpec, "unit", "")
    minimum: float | None = None
    maximum: float | None = None


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model_id: str = limited(pb.Model, "model_id", examples=["SoilMoistureProbe"])
    smart_data_model: str = limited(pb.Model, "smart_data_model", "")
    description: str = limited(pb.Model, "description", "")
    properties: list[PropertySpecIn] = limited(pb.Model, "properties")


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    direction: Literal["above", "below"] = "above"
    trigger: float
    clear: float
    min_duration_seconds: int = Field(0, ge=0, le=MAX_RULE_SECONDS)


class LevelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    bounds: list[float] = limited(pb.Levels, "bounds")
    hysteresis: float = 0.0
    event_from_level: int = limited(pb.Levels, "event_from_level", 0)


class InactivityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    silence_seconds: int = Field(..., ge=1, le=MAX_RULE_SECONDS)


class StoppedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    speed_property: str = limited(pb.Geofence.Stopped, "speed_property", examples=["speed_kmh"])
    at_most: float = limited(pb.Geofence.Stopped, "at_most", 1.0)


class GeofenceIn(BaseModel):
    """A map layer the position must stay out of (`inside` fires) or within (`outside`
    fires), optionally widened and held for a while, optionally only while stopped."""

    model_config = ConfigDict(extra="forbid", strict=True)

    layer: str = limited(
        pb.Geofence, "layer", examples=["tenants/sh-jiading-anting-xingming/layers/truck-route"]
    )
    mode: Literal["inside", "outside"] = "inside"
    buffer_meters: float = limited(pb.Geofence, "buffer_meters", 0.0)
    dwell_seconds: int = Field(0, ge=0, le=MAX_RULE_SECONDS)
    stopped: StoppedIn | None = None


class RuleCreate(BaseModel):
    """One of threshold, levels, inactivity or geofence."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rule_id: str | None = limited(pb.CreateRuleRequest, "rule_id", None)
    display_name: str = limited(pb.Rule, "display_name", "")
    entity_type: str = limited(pb.Rule, "entity_type")
    property: str = limited(pb.Rule, "property")
    event_category: str = limited(pb.Rule, "event_category", examples=["safety.flooding"])
    severity: int = limited(pb.Rule, "severity", 0)
    threshold: ThresholdIn | None = None
    levels: LevelsIn | None = None
    inactivity: InactivityIn | None = None
    geofence: GeofenceIn | None = None

"""JSON shapes of the twin API (answers are the contract's messages as JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import GeoPointIn

ENTITY_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
MAX_REST_READINGS = 10_000


class RelationshipIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: str = Field(..., min_length=1, max_length=63, examples=["locatedIn"])
    target: str = Field(
        ..., max_length=300, examples=["tenants/sh-jiading-anting-xingming/entities/building-7"]
    )


class EntityCreate(BaseModel):
    """A thing to watch: its model, where it is and what it is linked to."""

    model_config = ConfigDict(extra="forbid", strict=True)

    entity_id: str | None = Field(
        None, pattern=ENTITY_ID, description="chosen id; assigned if absent"
    )
    entity_type: str = Field(..., min_length=1, max_length=63, examples=["WaterLevelGauge"])
    display_name: str = Field("", max_length=200)
    location: GeoPointIn | None = None
    building: str = Field("", max_length=300, description="tenants/{tenant}/buildings/{id}")
    relationships: list[RelationshipIn] = Field(default_factory=list, max_length=100)


class TelemetryIn(BaseModel):
    """Readings as parallel columns; reading i is entities[i], properties[i], values[i]."""

    model_config = ConfigDict(extra="forbid", strict=True)

    entities: list[str] = Field(
        ..., min_length=1, max_length=MAX_REST_READINGS, description="entity ids or names"
    )
    properties: list[str] = Field(..., min_length=1, max_length=MAX_REST_READINGS)
    values: list[float] = Field(default_factory=list, max_length=MAX_REST_READINGS)
    observe_times_ms: list[int] = Field(
        default_factory=list,
        max_length=MAX_REST_READINGS,
        description="milliseconds since the Unix epoch; empty means now",
    )
    units: list[str] = Field(default_factory=list, max_length=MAX_REST_READINGS)
    longitudes: list[float] = Field(default_factory=list, max_length=MAX_REST_READINGS)
    latitudes: list[float] = Field(default_factory=list, max_length=MAX_REST_READINGS)


class PropertySpecIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(..., min_length=1, max_length=63)
    kind: Literal["number", "boolean", "integer", "point"] = "number"
    unit: str = Field("", max_length=16)
    minimum: float | None = None
    maximum: float | None = None


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model_id: str = Field(..., min_length=1, max_length=63, examples=["SoilMoistureProbe"])
    smart_data_model: str = Field("", max_length=100)
    description: str = Field("", max_length=1000)
    properties: list[PropertySpecIn] = Field(..., max_length=64)


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    direction: Literal["above", "below"] = "above"
    trigger: float
    clear: float
    min_duration_seconds: int = Field(0, ge=0, le=30 * 86400)


class LevelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    bounds: list[float] = Field(..., min_length=1, max_length=10)
    hysteresis: float = Field(0.0, ge=0)
    event_from_level: int = Field(0, ge=0, le=10)


class InactivityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    silence_seconds: int = Field(..., gt=0, le=365 * 86400)


class RuleCreate(BaseModel):
    """One of threshold, levels or inactivity."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rule_id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    display_name: str = Field("", max_length=200)
    entity_type: str = Field(..., min_length=1, max_length=63)
    property: str = Field(..., min_length=1, max_length=63)
    event_category: str = Field(..., min_length=1, max_length=64, examples=["safety.flooding"])
    severity: int = Field(0, ge=0, le=5)
    threshold: ThresholdIn | None = None
    levels: LevelsIn | None = None
    inactivity: InactivityIn | None = None

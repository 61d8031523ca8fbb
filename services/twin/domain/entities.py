"""Entities: things in the village, their place, their links and their latest values."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from services.kit import tenancy
from services.kit.errors import FieldViolation, InvalidArgument

ENTITY_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}\Z")
RELATIONSHIP_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}\Z")
MAX_RELATIONSHIPS = 100


@dataclass(frozen=True)
class Point:
    longitude: float
    latitude: float


@dataclass(frozen=True)
class Relationship:
    type: str
    # The other entity as (tenant path, entity id).
    target: tuple[str, str]


@dataclass(frozen=True)
class Latest:
    """The newest accepted value of one property."""

    value: float
    observed_ms: int
    point: Point | None = None


@dataclass(frozen=True)
class Entity:
    tenant: str
    entity_id: str
    entity_type: str
    location: Point | None = None
    building: str = ""
    relationships: tuple[Relationship, ...] = ()
    display_name: str = ""
    create_ms: int = 0
    latest: dict[str, Latest] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.entity_id)

    @property
    def name(self) -> str:
        return entity_name(self.tenant, self.entity_id)


def entity_name(tenant: str, entity_id: str) -> str:
    return f"{tenancy.tenant_name(tenant)}/entities/{entity_id}"


def parse_entity_name(name: str, field: str = "name") -> tuple[str, str]:
    """`tenants/{tenant}/entities/{id}` -> (tenant path, id); INVALID_ARGUMENT otherwise."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tenants" or parts[2] != "entities":
        raise InvalidArgument.field(field, f"{name!r} is not 'tenants/{{tenant}}/entities/{{id}}'")
    path = tenancy.id_to_path(parts[1])
    if not tenancy.is_valid_path(path) or not ENTITY_ID.match(parts[3]):
        raise InvalidArgument.field(field, f"{name!r} is not an entity name")
    return path, parts[3]


def validate_entity(entity: Entity) -> Entity:
    problems: list[FieldViolation] = []
    if not ENTITY_ID.match(entity.entity_id):
        problems.append(
            FieldViolation("entity_id", "1-63 of a-z, 0-9, '_', '.', '-', starting a-z or 0-9")
        )
    if entity.location is not None:
        lon, lat = entity.location.longitude, entity.location.latitude
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            problems.append(FieldViolation("entity.location.longitude", "-180 to 180"))
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            problems.append(FieldViolation("entity.location.latitude", "-90 to 90"))
    if entity.building and not re.match(
        r"^tenants/[a-z0-9-]+/buildings/[^/]{1,128}$", entity.building
    ):
        problems.append(
            FieldViolation("entity.building", "must be 'tenants/{tenant}/buildings/{id}'")
        )
    if len(entity.relationships) > MAX_RELATIONSHIPS:
        problems.append(FieldViolation("entity.relationships", f"at most {MAX_RELATIONSHIPS}"))
    for i, rel in enumerate(entity.relationships):
        if not RELATIONSHIP_TYPE.match(rel.type):
            problems.append(
                FieldViolation(f"entity.relationships[{i}].type", "letters, digits, '_', 1-63")
            )
    if len(entity.display_name) > 200:
        problems.append(FieldViolation("entity.display_name", "at most 200 characters"))
    if problems:
        raise InvalidArgument(problems)
    return entity

"""Models: the types of entity, with typed properties, units and valid ranges.

A model is declared for a tenant node and every node below inherits it; a node may
declare a model of the same id again, which then wins for its own subtree. The
built-in models below exist for every tenant and follow FIWARE Smart Data Models
where one fits, so a FIWARE user recognises them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import IntEnum

from services.kit import tenancy
from services.kit.errors import FieldViolation, InvalidArgument, NotFound

MODEL_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}\Z")
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
MAX_PROPERTIES = 64
# Where built-in models live in resource names: `tenants/-/models/{id}`.
BUILTIN_TENANT = ""


class Kind(IntEnum):
    """The kind of a property's value (the numbers are the contract's enum values)."""

    NUMBER = 1
    BOOLEAN = 2
    INTEGER = 3
    POINT = 4


@dataclass(frozen=True)
class PropertySpec:
    name: str
    kind: Kind = Kind.NUMBER
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Model:
    model_id: str
    properties: tuple[PropertySpec, ...]
    smart_data_model: str = ""
    description: str = ""
    # The tenant node that declared it; BUILTIN_TENANT for the built-in ones.
    tenant: str = BUILTIN_TENANT

    def spec(self, name: str) -> PropertySpec | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None


def _n(name: str, unit: str = "", lo: float | None = None, hi: float | None = None) -> PropertySpec:
    return PropertySpec(name, Kind.NUMBER, unit, lo, hi)


def _i(name: str, unit: str = "", lo: float | None = None, hi: float | None = None) -> PropertySpec:
    return PropertySpec(name, Kind.INTEGER, unit, lo, hi)


def _b(name: str) -> PropertySpec:
    return PropertySpec(name, Kind.BOOLEAN, "", 0.0, 1.0)


BUILTIN_MODELS: tuple[Model, ...] = (
    Model(
        "SmokeDetector",
        (_b("smoke"), _n("battery", "%", 0, 100)),
        "Device",
        "A smoke detector, for example in an old building.",
    ),
    Model(
        "WaterLevelGauge",
        (_n("level_cm", "cm", -500, 2000), _n("battery", "%", 0, 100)),
        "WaterObserved",
        "A water-level gauge at a low point.",
    ),
    Model(
        "CrowdCounter",
        (_i("count", "", 0, 100_000),),
        "CrowdFlowObserved",
        "Counts people at a hotspot.",
    ),
    Model(
        "WaterMeter",
        (_n("flow_l_min", "L/min", 0, 1000),),
        "WaterConsumptionObserved",
        "A water meter, for example in the home of an elderly person living alone.",
    ),
    Model(
        "Vehicle",
        (PropertySpec("position", Kind.POINT), _n("speed_kmh", "km/h", 0, 200)),
        "Vehicle",
        "A vehicle with GPS, for example a muck truck.",
    ),
    Model(
        "ParkingLot",
        (_i("free", "", 0, 10_000), _i("capacity", "", 0, 10_000)),
        "ParkingSite",
        "A parking lot's occupancy.",
    ),
    Model("Building", (), "Building", "A building; sensors and households point to it."),
    Model("Household", (), "", "A household living in a building."),
    Model("Person", (), "Person", "A person; members of a household point to it."),
    Model("Organization", (), "Organization", "A company or institution owning things."),
)


def validate_model(model: Model) -> Model:
    """The model as declared, or INVALID_ARGUMENT naming each wrong field."""
    problems: list[FieldViolation] = []
    if not MODEL_ID.match(model.model_id):
        problems.append(
            FieldViolation("model.model_id", "1-63 letters, digits or '_', starting with a letter")
        )
    if len(model.properties) > MAX_PROPERTIES:
        problems.append(FieldViolation("model.properties", f"at most {MAX_PROPERTIES}"))
    seen: set[str] = set()
    for i, prop in enumerate(model.properties):
        where = f"model.properties[{i}]"
        if not PROPERTY_NAME.match(prop.name):
            problems.append(
                FieldViolation(f"{where}.name", "lower-case letters, digits and '_', 1-63")
            )
        elif prop.name in seen:
            problems.append(FieldViolation(f"{where}.name", f"{prop.name!r} declared twice"))
        seen.add(prop.name)
        if len(prop.unit) > 16:
            problems.append(FieldViolation(f"{where}.unit", "at most 16 characters"))
        for bound_name, bound in (("minimum", prop.minimum), ("maximum", prop.maximum)):
            if bound is not None and not math.isfinite(bound):
                problems.append(FieldViolation(f"{where}.{bound_name}", "must be finite"))
        if (
            prop.minimum is not None
            and prop.maximum is not None
            and math.isfinite(prop.minimum)
            and math.isfinite(prop.maximum)
            and prop.minimum > prop.maximum
        ):
            problems.append(FieldViolation(f"{where}.minimum", "greater than maximum"))
    if len(model.smart_data_model) > 100:
        problems.append(FieldViolation("model.smart_data_model", "at most 100 characters"))
    if len(model.description) > 1000:
        problems.append(FieldViolation("model.description", "at most 1000 characters"))
    if problems:
        raise InvalidArgument(problems)
    return model


class ModelCatalog:
    """Every declared model, resolved for a tenant node by walking up its ancestors."""

    def __init__(self, declared: list[Model] | None = None) -> None:
        self._by_node: dict[tuple[str, str], Model] = {
            (BUILTIN_TENANT, m.model_id): m for m in BUILTIN_MODELS
        }
        self._cache: dict[tuple[str, str], Model | None] = {}
        for model in declared or ():
            self.add(model)

    def add(self, model: Model) -> None:
        self._by_node[(model.tenant, model.model_id)] = model
        self._cache.clear()

    def resolve(self, tenant: str, model_id: str) -> Model | None:
        """The model a node sees under this id: its own, its nearest ancestor's, or built in."""
        key = (tenant, model_id)
        if key in self._cache:
            return self._cache[key]
        found: Model | None = None
        path = tenant
        while path:
            found = self._by_node.get((path, model_id))
            if found is not None:
                break
            path = path.rpartition("/")[0]
        if found is None:
            found = self._by_node.get((BUILTIN_TENANT, model_id))
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = found
        return found

    def require(self, tenant: str, model_id: str, field: str = "entity.entity_type") -> Model:
        found = self.resolve(tenant, model_id)
        if found is None:
            raise InvalidArgument.field(field, f"no model {model_id!r} for this tenant")
        return found

    def visible(self, tenant: str) -> list[Model]:
        """The models a node sees, one per id, nearest declaration first."""
        ids = sorted(
            {
                mid
                for (node, mid) in self._by_node
                if node == BUILTIN_TENANT or tenancy.contains(node, tenant)
            }
        )
        return [m for m in (self.resolve(tenant, mid) for mid in ids) if m is not None]

    def declared_at(self, tenant: str, model_id: str) -> Model:
        found = self._by_node.get((tenant, model_id))
        if found is None:
            raise NotFound(f"model {model_id!r} not found")
        return found

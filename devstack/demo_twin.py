"""The demo village's digital twin: sensors in and around its buildings, and their rules.

Xingming gets a water-level gauge at the east underpass, smoke detectors in two old
buildings, a crowd counter at the market square, a water meter in the home of an
elderly resident living alone, a muck truck and a parking lot, linked to the
buildings and the household they belong to; rules that raise events (flooding above
30 cm, smoke, the market crowd at level 3, no water used for 24 hours, the muck
truck more than 30 m off its licensed route, a map layer of its own); and a day of
readings so that history has something to show. Entities and rules have fixed ids,
so a second start finds them and adds nothing.

ALL READINGS HERE ARE INVENTED.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pyogrio
import shapely
from google.protobuf.duration_pb2 import Duration

from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal

VILLAGE = "sh/jiading/anting/xingming"
PARENT = tenancy.tenant_name(VILLAGE)
INSTALLER = Principal(
    subject="services/demo-import",
    tenant=VILLAGE,
    kind="service",
    scopes=frozenset({"twin:read", "twin:write", "twin:ingest", "map:read", "map:write"}),
)
SEED = 20261203
ROUTE_LAYER = "muck-truck-route"
# The muck truck's licensed route, metres from the anchor: along the village's east side.
ROUTE = ((-150.0, 40.0), (40.0, 40.0), (40.0, 150.0))


@dataclass(frozen=True)
class DemoEntity:
    entity_id: str
    entity_type: str
    display_name: str
    offset: tuple[float, float]  # metres east and north of the village's anchor point
    links: tuple[tuple[str, str], ...] = ()  # (relationship type, entity id)


ENTITIES: tuple[DemoEntity, ...] = (
    DemoEntity("building-xm-12", "Building", "Old residential building No. 12", (0, 0)),
    DemoEntity("building-xm-15", "Building", "Old residential building No. 15", (30, 20)),
    DemoEntity(
        "household-xm-12-301",
        "Household",
        "Flat 301, building 12",
        (0, 0),
        (("livesIn", "building-xm-12"),),
    ),
    DemoEntity(
        "smoke-xm-12-1",
        "SmokeDetector",
        "Smoke detector, stairwell of No. 12",
        (2, 1),
        (("locatedIn", "building-xm-12"),),
    ),
    DemoEntity(
        "smoke-xm-15-1",
        "SmokeDetector",
        "Smoke detector, stairwell of No. 15",
        (31, 21),
        (("locatedIn", "building-xm-15"),),
    ),
    DemoEntity(
        "meter-xm-12-301",
        "WaterMeter",
        "Water meter of flat 301 (lives alone)",
        (1, 0),
        (("servesHousehold", "household-xm-12-301"), ("locatedIn", "building-xm-12")),
    ),
    DemoEntity("gauge-east-underpass", "WaterLevelGauge", "Gauge at the east underpass", (-30, 15)),
    DemoEntity("crowd-market-square", "CrowdCounter", "Crowd counter, market square", (25, -30)),
    DemoEntity("parking-xm-north", "ParkingLot", "North parking lot", (-20, 35)),
    DemoEntity("truck-muck-07", "Vehicle", "Muck truck 07", (40, 40)),
)


def _rules() -> list[tuple[str, pb.Rule]]:
    return [
        (
            "flooding-underpass",
            pb.Rule(
                display_name="Underpass flooding",
                entity_type="WaterLevelGauge",
                property="level_cm",
                threshold=pb.Threshold(trigger=30, clear=25, min_duration=Duration(seconds=0)),
                event_category="safety.flooding",
                severity=4,
            ),
        ),
        (
            "smoke",
            pb.Rule(
                display_name="Smoke detected",
                entity_type="SmokeDetector",
                property="smoke",
                threshold=pb.Threshold(trigger=0.5, clear=0.5),
                event_category="safety.smoke_alarm",
                severity=5,
            ),
        ),
        (
            "market-crowd",
            pb.Rule(
                display_name="Market square crowding",
                entity_type="CrowdCounter",
                property="count",
                levels=pb.Levels(bounds=[300, 600, 900], hysteresis=50, event_from_level=3),
                event_category="safety.fire_hazard",
                severity=3,
            ),
        ),
        (
            "muck-truck-off-route",
            pb.Rule(
                display_name="Muck truck off its licensed route",
                entity_type="Vehicle",
                property="position",
                geofence=pb.Geofence(
                    layer=f"{PARENT}/layers/{ROUTE_LAYER}",
                    mode=pb.Geofence.MODE_OUTSIDE,
                    buffer_meters=30,
                    dwell=Duration(seconds=60),
                ),
                event_category="construction.illegal",
                severity=3,
            ),
        ),
        (
            "no-water-24h",
            pb.Rule(
                display_name="No water used for 24 hours",
                entity_type="WaterMeter",
                property="flow_l_min",
                inactivity=pb.Inactivity(silence=Duration(seconds=24 * 3600)),
                event_category="care.elderly_welfare",
                severity=4,
            ),
        ),
    ]


def _place(anchor: tuple[float, float], offset: tuple[float, float]) -> geo_pb2.GeoPoint:
    """A point `offset` metres from the anchor (small distances: a flat approximation)."""
    lon, lat = anchor
    east, north = offset
    return geo_pb2.GeoPoint(
        longitude=lon + east / (111_320 * np.cos(np.radians(lat))),
        latitude=lat + north / 110_540,
        crs="EPSG:4326",
    )


def _day_of_readings(now_ms: int) -> pb.TelemetryColumns:
    """Yesterday to now, every 15 minutes: calm values under every threshold."""
    rng = np.random.default_rng(SEED)
    times = [now_ms - i * 15 * 60_000 for i in range(96, 0, -1)]
    columns = pb.TelemetryColumns()

    def add(entity: str, prop: str, values: np.ndarray) -> None:
        columns.entities.extend([entity] * len(times))
        columns.properties.extend([prop] * len(times))
        columns.values.extend(float(v) for v in values)
        columns.observe_times_ms.extend(times)

    hours = np.arange(96) / 4
    add("gauge-east-underpass", "level_cm", np.round(8 + 6 * rng.random(96), 1))
    add("crowd-market-square", "count", np.round(80 + 150 * np.sin(np.pi * hours / 24) ** 2))
    add("meter-xm-12-301", "flow_l_min", np.round(np.where(rng.random(96) < 0.2, 6.0, 0.0), 1))
    add("smoke-xm-12-1", "smoke", np.zeros(96))
    add("smoke-xm-15-1", "smoke", np.zeros(96))
    add("parking-xm-north", "capacity", np.full(96, 40))
    add("parking-xm-north", "free", np.round(10 + 20 * rng.random(96)))
    return columns


def anchor_of(demo_gpkg: Path) -> tuple[float, float]:
    """A point well inside the village: where its grid cells meet, on their union."""
    meta, _fids, geometry, columns = pyogrio.raw.read(str(demo_gpkg), layer="grid_cells")
    tenants = columns[list(meta["fields"]).index("tenant")]
    cells = [g for t, g in zip(tenants, shapely.from_wkb(geometry), strict=True) if t == VILLAGE]
    inner = shapely.union_all(cells).buffer(-0.0008)  # about 80 m in from the boundary
    point = shapely.point_on_surface(inner)
    return float(point.x), float(point.y)


async def install_route(map_channel: grpc.aio.Channel, anchor: tuple[float, float]) -> None:
    """The muck truck's licensed route as a layer of the village's map (once)."""
    stub = map_grpc.MapServiceStub(map_channel)
    metadata = INSTALLER.to_metadata()
    try:
        await stub.CreateLayer(
            map_pb.CreateLayerRequest(
                parent=PARENT,
                layer_id=ROUTE_LAYER,
                layer=map_pb.Layer(
                    display_name="Muck truck licensed route",
                    kind=map_pb.LAYER_KIND_ROUTE,
                    geometry_type="LineString",
                ),
            ),
            metadata=metadata,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return
    points = [_place(anchor, offset) for offset in ROUTE]
    line = {"type": "LineString", "coordinates": [[p.longitude, p.latitude] for p in points]}
    feature = {"type": "Feature", "id": "route-07", "geometry": line, "properties": {}}
    await stub.ImportFeatures(
        map_pb.ImportFeaturesRequest(
            parent=f"{PARENT}/layers/{ROUTE_LAYER}",
            data=json.dumps({"type": "FeatureCollection", "features": [feature]}).encode(),
            format="geojson",
        ),
        metadata=metadata,
    )


async def install(
    channel: grpc.aio.Channel, demo_gpkg: Path, map_channel: grpc.aio.Channel | None = None
) -> int:
    """The demo twin (once); returns how many entities were created now. With the map
    service's channel, also the truck's route layer and its geofence rule."""
    anchor = anchor_of(demo_gpkg)
    stub = pb_grpc.TwinServiceStub(channel)
    metadata = INSTALLER.to_metadata()
    if map_channel is not None:
        await install_route(map_channel, anchor)
    created = 0
    for item in ENTITIES:
        entity = pb.Entity(
            entity_type=item.entity_type,
            display_name=item.display_name,
            location=_place(anchor, item.offset),
            relationships=[
                pb.Relationship(type=kind, target=f"{PARENT}/entities/{target}")
                for kind, target in item.links
            ],
        )
        try:
            await stub.CreateEntity(
                pb.CreateEntityRequest(parent=PARENT, entity_id=item.entity_id, entity=entity),
                metadata=metadata,
            )
            created += 1
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
    for rule_id, rule in _rules():
        if rule.HasField("geofence") and map_channel is None:
            continue
        try:
            await stub.CreateRule(
                pb.CreateRuleRequest(parent=PARENT, rule_id=rule_id, rule=rule), metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
    if created:  # the first start: a day of history
        now_ms = int(time.time() * 1000)
        await stub.IngestTelemetry(
            pb.IngestTelemetryRequest(parent=PARENT, columns=_day_of_readings(now_ms)),
            metadata=metadata,
        )
        truck = pb.TelemetryColumns(
            entities=["truck-muck-07"] * 2,
            properties=["position", "speed_kmh"],
            values=[0.0, 32.0],
            observe_times_ms=[now_ms - 60_000] * 2,
            longitudes=[_place(anchor, (40, 40)).longitude] * 2,
            latitudes=[_place(anchor, (40, 40)).latitude] * 2,
        )
        await stub.IngestTelemetry(
            pb.IngestTelemetryRequest(parent=PARENT, columns=truck), metadata=metadata
        )
    return created

"""Geofence rules against the map service's layers, on both stores: a truck leaving its
licensed corridor (a route layer's line widened by a buffer), a truck stopped in a
forbidden zone for a while; one event per episode, cleared by the way back, episodes
kept across a restart, the layer read once (not per reading) and again when it changes."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest
import shapely
from google.protobuf.duration_pb2 import Duration

from grassroots.events.v1 import events_service_pb2 as ev_pb
from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.twin.v1 import twin_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from tests.conftest import XINGMING, SignedAtCall, principal_of
from tests.unit.twin.test_alarm_loop import MD, PARENT, twin_events, village_point, wait_for

MAPPER = SignedAtCall(principal_of(XINGMING, scopes=frozenset({"map:read", "map:write"})))

M_PER_DEG_LAT = 110_540.0
ROUTE = f"{PARENT}/layers/truck-route"
ZONE = f"{PARENT}/layers/no-stopping"


def north(lat: float, metres: float) -> float:
    return lat + metres / M_PER_DEG_LAT


async def put_layer(twin, layer_id, kind, geometry_type, geometry, replace=False) -> None:
    stub = map_grpc.MapServiceStub(twin.map.channel)
    if not replace:
        await stub.CreateLayer(
            map_pb.CreateLayerRequest(
                parent=PARENT,
                layer_id=layer_id,
                layer=map_pb.Layer(display_name=layer_id, kind=kind, geometry_type=geometry_type),
            ),
            metadata=MAPPER,
        )
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": shapely.geometry.mapping(geometry), "properties": {}}
        ],
    }
    await stub.ImportFeatures(
        map_pb.ImportFeaturesRequest(
            parent=f"{PARENT}/layers/{layer_id}",
            data=json.dumps(collection).encode(),
            format="geojson",
            replace=replace,
        ),
        metadata=MAPPER,
    )


async def make_truck(twin, lon, lat, entity_id="truck-07"):
    await twin.stub.CreateEntity(
        pb.CreateEntityRequest(
            parent=PARENT,
            entity_id=entity_id,
            entity=pb.Entity(
                entity_type="Vehicle",
                display_name="Muck truck 07",
                location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
            ),
        ),
        metadata=MD,
    )


async def make_rule(twin, rule_id, geofence, prop="position"):
    return await twin.stub.CreateRule(
        pb.CreateRuleRequest(
            parent=PARENT,
            rule_id=rule_id,
            rule=pb.Rule(
                display_name=rule_id,
                entity_type="Vehicle",
                property=prop,
                geofence=geofence,
                event_category="construction.illegal",
                severity=3,
            ),
        ),
        metadata=MD,
    )


async def drive(twin, track, entity="truck-07"):
    """`track`: (time ms, lon, lat, speed km/h) per fix; each fix sends position and speed."""
    columns = pb.TelemetryColumns()
    for t, lon, lat, speed in track:
        columns.entities.extend([entity, entity])
        columns.properties.extend(["position", "speed_kmh"])
        columns.values.extend([0.0, float(speed)])
        columns.observe_times_ms.extend([t, t])
        columns.longitudes.extend([lon, lon])
        columns.latitudes.extend([lat, lat])
    done = await twin.stub.IngestTelemetry(
        pb.IngestTelemetryRequest(parent=PARENT, columns=columns), metadata=MD
    )
    assert done.rejected_count == 0, done
    return done


async def cleared(twin, event_name):
    got = await twin.events.stub.GetEvent(ev_pb.GetEventRequest(name=event_name), metadata=MD)
    return [c for c in got.comments if c.text.startswith("Cleared")]


async def test_a_truck_outside_its_corridor_raises_one_event_and_clears(twin, grid_index):
    lon, lat = village_point(grid_index)
    line = shapely.LineString([(lon - 0.01, lat), (lon + 0.01, lat)])
    await put_layer(twin, "truck-route", map_pb.LAYER_KIND_ROUTE, "LineString", line)
    await make_truck(twin, lon, lat)
    made = await make_rule(
        twin,
        "off-route",
        pb.Geofence(layer=ROUTE, mode=pb.Geofence.MODE_OUTSIDE, buffer_meters=50),
    )
    assert made.geofence.buffer_meters == 50
    t0 = int(time.time() * 1000) - 600_000
    # On the road, 30 m off it (inside the 50 m corridor): nothing.
    await drive(twin, [(t0, lon, lat, 30), (t0 + 10_000, lon, north(lat, 30), 30)])
    await asyncio.sleep(0.3)
    assert await twin_events(twin) == []
    # 80 m off, then further: one episode, one event where the truck was.
    for i in range(5):
        far = north(lat, 80 + 50 * i)
        await drive(twin, [(t0 + 20_000 + i * 10_000, lon + 0.001, far, 25)])
    events = await wait_for(lambda: twin_events(twin))
    await asyncio.sleep(0.3)
    events = await twin_events(twin)
    assert len(events) == 1
    event = events[0]
    assert f"position outside {ROUTE}" in event.description
    # Where the truck was when the event was made (its registered place when that fix
    # lies outside every village of the tenant, which the events service refuses).
    assert any(
        abs(event.location.latitude - at) < 1e-6
        for at in [lat] + [north(lat, 80 + 50 * i) for i in range(5)]
    )
    # Back within 50 m of the road: the event hears it.
    await drive(twin, [(t0 + 90_000, lon, north(lat, 20), 30)])
    assert len(await wait_for(lambda: cleared(twin, event.name))) == 1
    # The layer was read once for the rule and every batch since: not per reading.
    assert twin.hub.layers.reads == 1


async def test_stopped_in_a_forbidden_zone_for_five_minutes_survives_a_restart(twin, grid_index):
    lon, lat = village_point(grid_index)
    zone = shapely.box(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001)
    await put_layer(twin, "no-stopping", map_pb.LAYER_KIND_GEOFENCE, "Polygon", zone)
    await make_truck(twin, lon + 0.01, lat)
    await make_rule(
        twin,
        "parked-in-zone",
        pb.Geofence(
            layer=ZONE,
            mode=pb.Geofence.MODE_INSIDE,
            dwell=Duration(seconds=300),
            stopped=pb.Geofence.Stopped(speed_property="speed_kmh", at_most=1),
        ),
    )
    t0 = int(time.time() * 1000) - 3_600_000
    # Driving through the zone, and stopped outside it: nothing.
    await drive(twin, [(t0, lon, lat, 30), (t0 + 60_000, lon + 0.005, lat, 0)])
    # Stopped inside for 2 minutes; the speed comes in its own, later batch at first.
    await drive(twin, [(t0 + 120_000, lon, lat, 0.5)])
    await drive(twin, [(t0 + 240_000, lon + 0.0001, lat, 0)])
    await twin.stop()
    await twin.start()
    await drive(twin, [(t0 + 400_000, lon + 0.0001, lat, 0.2)])
    await asyncio.sleep(0.3)
    assert await twin_events(twin) == []
    # Five minutes stopped, by the fixes' own times (the pending stretch survived).
    await drive(twin, [(t0 + 420_000, lon + 0.0001, lat, 0), (t0 + 480_000, lon, lat, 0)])
    events = await wait_for(lambda: twin_events(twin))
    await asyncio.sleep(0.3)
    events = await twin_events(twin)
    assert len(events) == 1
    assert "(stopped)" in events[0].description
    # Moving off, still inside the zone: the stop is over.
    await drive(twin, [(t0 + 540_000, lon + 0.0005, lat, 15)])
    assert len(await wait_for(lambda: cleared(twin, events[0].name))) == 1
    assert len(await twin_events(twin)) == 1


async def test_a_changed_layer_is_read_again(twin, grid_index):
    lon, lat = village_point(grid_index)
    await put_layer(
        twin, "no-stopping", map_pb.LAYER_KIND_GEOFENCE, "Polygon",
        shapely.box(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001),
    )  # fmt: skip
    await make_truck(twin, lon, lat)
    await make_rule(twin, "in-zone", pb.Geofence(layer=ZONE, mode=pb.Geofence.MODE_INSIDE))
    t0 = int(time.time() * 1000) - 600_000
    far = lon + 0.01
    await drive(twin, [(t0, far, lat, 10)])
    # The zone moves to where the truck is; the kept layer is checked and read again.
    await put_layer(
        twin, "no-stopping", map_pb.LAYER_KIND_GEOFENCE, "Polygon",
        shapely.box(far - 0.001, lat - 0.001, far + 0.001, lat + 0.001), replace=True,
    )  # fmt: skip
    twin.hub.layers.recheck_seconds = 0.0
    step = 1

    async def read_again():
        nonlocal step
        await drive(twin, [(t0 + step * 1000, far + step * 1e-6, lat, 10)])
        step += 1
        return twin.hub.layers.reads == 2

    await wait_for(read_again)
    twin.hub.layers.recheck_seconds = 3600.0
    await drive(twin, [(t0 + 100_000, far, lat, 10)])
    assert len(await wait_for(lambda: twin_events(twin))) == 1


BAD_RULES = [
    ("position", pb.Geofence(layer=f"{PARENT}/layers/nowhere"), "rule.geofence.layer"),
    # Another village's own layer is not the rule's to read.
    (
        "position",
        pb.Geofence(layer="tenants/sh-jiading-anting-xiangyang/layers/buildings"),
        "rule.geofence.layer",
    ),
    ("speed_kmh", pb.Geofence(layer=ZONE), "rule.property"),
    ("position", pb.Geofence(layer=ZONE, buffer_meters=-1), "rule.geofence.buffer_meters"),
    (
        "position",
        pb.Geofence(layer=ZONE, stopped=pb.Geofence.Stopped(speed_property="colour")),
        "rule.geofence.stopped.speed_property",
    ),
    ("position", pb.Geofence(layer=ZONE, dwell=Duration(seconds=-5)), "rule.geofence.dwell"),
]


async def test_bad_geofence_rules_name_the_field(twin, grid_index):
    lon, lat = village_point(grid_index)
    await put_layer(
        twin, "no-stopping", map_pb.LAYER_KIND_GEOFENCE, "Polygon",
        shapely.box(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001),
    )  # fmt: skip
    for prop, geofence, field in BAD_RULES:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await make_rule(twin, "bad", geofence, prop=prop)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in str(caught.value.trailing_metadata()) + caught.value.details(), field


async def test_the_maps_layer_notice_rereads_the_layer_at_once(events_server, map_server, tmp_path):
    """On a shared Redis bus the map announces a layer write on `map.changes`: the twin
    checks the layer then, not a minute later (its recheck is an hour here)."""
    from services.kit.bus import BusMessage, open_bus
    from tests.unit.twin.conftest import REDIS_URL, TwinUnderTest, twin_settings

    settings = twin_settings(
        "sqlite", tmp_path, events_server.address, "", map_server.address
    ).model_copy(update={"bus_url": REDIS_URL, "layer_recheck_seconds": 3600.0})
    twin = await TwinUnderTest("sqlite", settings).start()
    twin.events, twin.map = events_server, map_server
    try:
        lon, lat = 121.16, 31.29
        await put_layer(
            twin, "no-stopping", map_pb.LAYER_KIND_GEOFENCE, "Polygon",
            shapely.box(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001),
        )  # fmt: skip
        await make_rule(twin, "in-zone", pb.Geofence(layer=ZONE, mode=pb.Geofence.MODE_INSIDE))
        assert twin.hub.layers.reads == 1
        await put_layer(
            twin, "no-stopping", map_pb.LAYER_KIND_GEOFENCE, "Polygon",
            shapely.box(lon, lat, lon + 0.002, lat + 0.002), replace=True,
        )  # fmt: skip
        bus = open_bus(REDIS_URL)
        notice = BusMessage(
            type="map.layer_changed",
            key="sh/jiading/anting/xingming:no-stopping",
            tenant="sh/jiading/anting/xingming",
            offset=0,
            payload=b"",
            headers={"x-replica": "a-map-replica"},
        )
        await bus.publish("map.changes", notice)
        await bus.close()

        async def read_again():
            return twin.hub.layers.reads == 2

        await wait_for(read_again)
    finally:
        await twin.stop()

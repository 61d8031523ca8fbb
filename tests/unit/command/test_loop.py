"""The loop end to end over real gRPC: report -> task offered -> accept -> start ->
resolve, each step moving the event; an SLA breach escalating to the town."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
import shapely
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from prometheus_client import REGISTRY

from grassroots.command.v1 import command_service_pb2 as pb
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.type.v1 import geo_pb2
from services.kit import tenancy
from services.kit.principal import Principal
from tests.conftest import TOWN, XIANGYANG, XINGMING, principal_of

DESK_SCOPES = frozenset(
    {"command:read", "command:write", "command:dispatch", "events:read", "events:write"}
)
WORKER_SCOPES = frozenset({"command:read", "command:dispatch", "events:read"})
NEAR, FAR, OTHER = "users/u_near", "users/u_far", "users/u_other_village"
SUPERVISOR = "users/u_town_supervisor"


def desk(tenant: str = TOWN) -> tuple[tuple[str, bytes], ...]:
    return tuple(Principal("users/desk", tenant, "user", scopes=DESK_SCOPES).to_metadata())


def worker(subject: str, tenant: str = XINGMING) -> tuple[tuple[str, bytes], ...]:
    return tuple(Principal(subject, tenant, "user", scopes=WORKER_SCOPES).to_metadata())


def cell_point(grid_index, village: str, k: int = 0) -> tuple[str, float, float]:
    cells = [i for i, c in enumerate(grid_index.cells) if c.village == village]
    index = cells[k % len(cells)]
    point = shapely.point_on_surface(grid_index.polygons[index])
    return grid_index.cells[index].grid_cell_id, point.x, point.y


def profile(user: str, lon: float, lat: float, **extra) -> pb.HandlerProfile:
    return pb.HandlerProfile(
        user=user,
        display_name=user,
        roles=extra.pop("roles", ["grid_worker"]),
        on_duty=True,
        position=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
        **extra,
    )


async def setup_town(command, grid_index, *, response_s=3600, resolution_s=7200, action=0):
    _, lon, lat = cell_point(grid_index, XINGMING, 2)
    _, olon, olat = cell_point(grid_index, XIANGYANG, 0)
    stub = command.stub
    for user, tenant, x, y in (
        (NEAR, XINGMING, lon + 0.0005, lat),
        (FAR, XINGMING, lon + 0.01, lat),
        (OTHER, XIANGYANG, olon, olat),  # nearer than FAR? never: another village
    ):
        await stub.CreateHandlerProfile(
            pb.CreateHandlerProfileRequest(
                parent=tenancy.tenant_name(tenant), handler_profile=profile(user, x, y)
            ),
            metadata=desk(),
        )
    await stub.CreateHandlerProfile(
        pb.CreateHandlerProfileRequest(
            parent=tenancy.tenant_name(TOWN),
            handler_profile=profile(SUPERVISOR, lon, lat, roles=["town_officer"], supervisor=True),
        ),
        metadata=desk(),
    )
    rule = await stub.CreateRoutingRule(
        pb.CreateRoutingRuleRequest(
            parent=tenancy.tenant_name(TOWN),
            routing_rule=pb.RoutingRule(
                category="environment.*",
                handler_role="grid_worker",
                min_severity=1,
                response_sla=Duration(seconds=response_s),
                sla=Duration(seconds=resolution_s),
                escalation_action=action,
                display_name="environment to grid workers",
            ),
        ),
        metadata=desk(),
    )
    return rule, lon, lat


async def report(command, lon, lat, category="environment.garbage") -> events_pb.Event:
    stub = events_grpc.EventsServiceStub(command.events.channel)
    return await stub.CreateEvent(
        events_pb.CreateEventRequest(
            parent=tenancy.tenant_name(XINGMING),
            request_id=f"r-{lon:.6f}-{lat:.6f}-{category}",
            event=events_pb.Event(
                category=category,
                description="bins overflowing",
                location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
            ),
        ),
        metadata=desk(XINGMING),
    )


async def eventually(check, within: float = 30.0):
    """Poll until `check()` returns something truthy (the loop is asynchronous: bus,
    consumers and timers); generous, since the machine may be loaded."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def task_of(command, event_name: str) -> pb.Task | None:
    listed = await command.stub.ListTasks(
        pb.ListTasksRequest(parent=tenancy.tenant_name(TOWN), filter=f'event = "{event_name}"'),
        metadata=desk(),
    )
    return listed.tasks[0] if listed.tasks else None


async def event_state(command, name: str) -> int:
    stub = events_grpc.EventsServiceStub(command.events.channel)
    return (await stub.GetEvent(events_pb.GetEventRequest(name=name), metadata=desk())).state


async def test_report_offer_accept_start_resolve_moves_the_event(command, grid_index):
    rule, lon, lat = await setup_town(command, grid_index)
    assert "environment.garbage" not in rule.unrouted_categories
    assert "safety.smoke_alarm" in rule.unrouted_categories  # reported when saved

    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.state == pb.Task.STATE_ASSIGNED
    assert task.handler == NEAR  # nearest on duty in the event's village
    assert "environment to grid workers" in task.routing.explanation
    assert "category environment.*" in task.routing.explanation
    assert task.routing.routing_rule == rule.name
    assert 0 < task.distance_meters < 200
    await eventually(lambda: _is(event_state(command, event.name), events_pb.Event.STATE_ACCEPTED))

    stub = command.stub
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AcceptTask(pb.AcceptTaskRequest(name=task.name), metadata=worker(FAR))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    accepted = await stub.AcceptTask(pb.AcceptTaskRequest(name=task.name), metadata=worker(NEAR))
    assert accepted.state == pb.Task.STATE_ACCEPTED
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.AcceptTask(pb.AcceptTaskRequest(name=task.name), metadata=worker(NEAR))
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await eventually(
        lambda: _is(event_state(command, event.name), events_pb.Event.STATE_DISPATCHED)
    )

    started = await stub.StartTask(pb.StartTaskRequest(name=task.name), metadata=worker(NEAR))
    assert started.state == pb.Task.STATE_IN_PROGRESS
    with pytest.raises(grpc.aio.AioRpcError) as not_yours:
        await stub.ResolveTask(
            pb.ResolveTaskRequest(name=task.name, note="done"), metadata=worker(FAR)
        )
    assert not_yours.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as no_note:
        await stub.ResolveTask(pb.ResolveTaskRequest(name=task.name), metadata=worker(NEAR))
    assert no_note.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    done = await stub.ResolveTask(
        pb.ResolveTaskRequest(
            name=task.name, note="bins emptied", media_uris=["https://example.org/after.jpg"]
        ),
        metadata=worker(NEAR),
    )
    assert done.state == pb.Task.STATE_DONE
    assert done.resolution_note == "bins emptied"
    await eventually(lambda: _is(event_state(command, event.name), events_pb.Event.STATE_RESOLVED))
    board = await stub.GetCommandBoard(
        pb.GetCommandBoardRequest(parent=tenancy.tenant_name(TOWN)), metadata=desk()
    )
    assert board.mean_time_to_accept.ToTimedelta().total_seconds() >= 0
    assert board.mean_time_to_resolve.ToTimedelta().total_seconds() > 0


async def test_decline_offers_the_task_to_the_next_candidate(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR
    declined = await command.stub.DeclineTask(
        pb.DeclineTaskRequest(name=task.name, reason="off sick"), metadata=worker(NEAR)
    )
    assert declined.handler == FAR  # next nearest; never the other village's worker
    assert declined.state == pb.Task.STATE_ASSIGNED
    assert list(declined.passed_by) == [NEAR]
    last = await command.stub.DeclineTask(
        pb.DeclineTaskRequest(name=task.name), metadata=worker(FAR)
    )
    assert last.state == pb.Task.STATE_WAITING
    assert last.handler == ""


def breaches() -> float:
    return REGISTRY.get_sample_value("grassroots_sla_breaches_total", {"deadline": "response"}) or 0


async def test_a_response_breach_escalates_to_the_town_once(command, grid_index):
    before = breaches()
    _, lon, lat = await setup_town(command, grid_index, response_s=1, resolution_s=3600)
    event = await report(command, lon, lat)

    async def escalated():
        task = await task_of(command, event.name)
        return task if task is not None and task.escalation_level == 1 else None

    task = await eventually(escalated)
    assert task.escalated_to == TOWN
    assert task.supervisor == SUPERVISOR
    assert task.state == pb.Task.STATE_ASSIGNED  # the handler keeps it (add supervisor)
    overdue = await command.stub.ListTasks(
        pb.ListTasksRequest(parent=tenancy.tenant_name(TOWN), filter='sla_status = "overdue"'),
        metadata=desk(),
    )
    assert [t.name for t in overdue.tasks] == [task.name]
    await asyncio.sleep(1.0)  # the timer is fired: it never escalates the task again
    assert (await task_of(command, event.name)).escalation_level == 1
    assert breaches() - before == 1, "one breach counted for the SLA alerts"


async def test_another_village_sees_no_task(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await command.stub.GetTask(pb.GetTaskRequest(name=task.name), metadata=desk(XIANGYANG))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await command.stub.ListTasks(
        pb.ListTasksRequest(parent=tenancy.tenant_name(XIANGYANG)), metadata=desk(XIANGYANG)
    )
    assert list(listed.tasks) == []


async def test_redelivered_reports_make_one_task(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    await eventually(lambda: task_of(command, event.name))
    from services.command.events_client import facts_of

    facts = facts_of(event)
    again = await asyncio.gather(*(command.parts.desk.dispatch(facts) for _ in range(10)))
    assert len({t.id for t in again}) == 1
    listed = await command.stub.ListTasks(
        pb.ListTasksRequest(parent=tenancy.tenant_name(TOWN)), metadata=desk()
    )
    assert len(listed.tasks) == 1


async def _is(value, expected) -> bool:
    return (await value) == expected


ROAD_CREW = "users/u_road_crew"


async def test_a_recategorised_event_is_routed_again_to_its_new_handler(command, grid_index):
    _, lon, lat = await setup_town(command, grid_index)
    await command.stub.CreateHandlerProfile(
        pb.CreateHandlerProfileRequest(
            parent=tenancy.tenant_name(XINGMING),
            handler_profile=profile(ROAD_CREW, lon + 0.02, lat, roles=["road_crew"]),
        ),
        metadata=desk(),
    )
    roads = await command.stub.CreateRoutingRule(
        pb.CreateRoutingRuleRequest(
            parent=tenancy.tenant_name(TOWN),
            routing_rule=pb.RoutingRule(
                category="roads.*",
                handler_role="road_crew",
                min_severity=1,
                response_sla=Duration(seconds=3600),
                sla=Duration(seconds=7200),
                display_name="roads to the road crew",
            ),
        ),
        metadata=desk(),
    )
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR

    staff = Principal(
        "users/staff", XINGMING, "user", scopes=DESK_SCOPES | {"events:manage"}
    ).to_metadata()
    events_stub = events_grpc.EventsServiceStub(command.events.channel)
    await events_stub.UpdateEvent(
        events_pb.UpdateEventRequest(
            event=events_pb.Event(name=event.name, category="roads.damage"),
            update_mask=FieldMask(paths=["category"]),
            note="it is a pothole",
        ),
        metadata=tuple(staff),
    )

    async def rerouted():
        moved = await task_of(command, event.name)
        return moved if moved is not None and moved.handler == ROAD_CREW else None

    moved = await eventually(rerouted)
    assert moved.name == task.name  # the same task, handed on: never a second one
    assert moved.category == "roads.damage"
    assert moved.routing.routing_rule == roads.name
    assert moved.state == pb.Task.STATE_ASSIGNED
    assert moved.transfers[-1].reason == "the event's category or place changed"
    listed = await command.stub.ListTasks(
        pb.ListTasksRequest(parent=tenancy.tenant_name(TOWN)), metadata=desk()
    )
    assert len(listed.tasks) == 1


async def test_the_nearest_handler_by_road_gets_the_offer_where_the_village_keeps_roads(
    command, grid_index
):
    """NEAR stands 50 m east of the report, on a lane no road joins; FAR, 1 km east, is
    on the street that loops south from the report: FAR is offered the task, by road.
    The village's roads are this test's own: the demo lattice is taken away first."""
    _, lon, lat = await setup_town(command, grid_index)
    road = {
        "type": "Feature",
        "id": "main-street",
        "geometry": {
            "type": "LineString",
            "coordinates": [
                [lon, lat],
                [lon, lat - 0.003],
                [lon + 0.01, lat - 0.003],
                [lon + 0.01, lat],
            ],
        },
        "properties": {},
    }
    lane = {  # NEAR's lane, joined to nothing
        "type": "Feature",
        "id": "back-lane",
        "geometry": {
            "type": "LineString",
            "coordinates": [[lon + 0.0005, lat + 0.0003], [lon + 0.0005, lat + 0.002]],
        },
        "properties": {},
    }
    stub = map_grpc.MapServiceStub(command.map.channel)
    village = tenancy.tenant_name(XINGMING)
    mapper = tuple(principal_of(XINGMING, "users/mapper").to_metadata())
    await stub.DeleteLayer(
        map_pb.DeleteLayerRequest(name=f"{village}/layers/roads"), metadata=mapper
    )
    await stub.CreateLayer(
        map_pb.CreateLayerRequest(
            parent=village,
            layer_id="roads",
            layer=map_pb.Layer(
                display_name="Roads", kind=map_pb.LAYER_KIND_ROUTE, geometry_type="LineString"
            ),
        ),
        metadata=mapper,
    )
    await stub.ImportFeatures(
        map_pb.ImportFeaturesRequest(
            parent=f"{village}/layers/roads",
            data=json.dumps({"type": "FeatureCollection", "features": [road, lane]}).encode(),
            format="geojson",
        ),
        metadata=mapper,
    )
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == FAR
    assert 1450 < task.distance_meters < 1800  # round the loop (333 + 950 + 333 m)


def made_up_report(k: int, lon: float, lat: float, prefix: str = "ev_burst"):
    """The facts of a report the intake would hand the desk, for an event of the village."""
    from datetime import UTC, datetime

    from services.command.domain.model import EventFacts, Position

    return EventFacts(
        event=f"tenants/{tenancy.path_to_id(XINGMING)}/events/{prefix}{k}",
        tenant=XINGMING,
        category="environment.garbage",
        severity=2,
        grid_cell="",
        location=Position(lon, lat),
        time=datetime.now(UTC),
    )


async def test_a_burst_of_reports_is_dispatched_together_one_task_each_load_counted(
    command, grid_index
):
    """The intake hands a read's reports over at once: one transaction for the lot, and
    each offer counted before the next is chosen, as if they had come one by one."""
    _, lon, lat = await setup_town(command, grid_index)
    burst = [made_up_report(k, lon, lat) for k in range(7)]
    desk_ = command.parts.desk
    written: list[int] = []
    create_tasks = desk_.store.create_tasks

    async def counting(new):
        written.append(len(new))
        return await create_tasks(new)

    desk_.store.create_tasks = counting
    try:
        tasks = await desk_.dispatch_many([*burst, burst[0]])  # a redelivery inside the burst
    finally:
        desk_.store.create_tasks = create_tasks
    assert written == [7]
    assert [t.event for t in tasks] == [f.event for f in [*burst, burst[0]]]
    assert tasks[0].id == tasks[-1].id and len({t.id for t in tasks}) == 7
    # The nearest handler takes five (the default capacity); the rest go to the next.
    assert [t.handler for t in tasks[:7]] == [NEAR] * 5 + [FAR] * 2
    again = await desk_.dispatch_many(burst)
    assert [t.id for t in again] == [t.id for t in tasks[:7]]


async def test_a_stale_roster_still_decides_while_a_fresh_one_is_read_beside_it(
    command, grid_index
):
    """Past `roster_seconds` the kept candidates decide the next report at once, and
    the store's news (here another replica taking a handler off duty) counts from the
    one after, so no report waits for the handlers query."""
    from dataclasses import replace as replaced

    _, lon, lat = await setup_town(command, grid_index)
    desk_ = command.parts.desk

    def facts(k: int):
        return made_up_report(k, lon, lat, prefix="ev_roster")

    assert (await desk_.dispatch(facts(0))).handler == NEAR
    near = await desk_.store.find_handler(tenancy.ALL_TENANTS, NEAR)
    await desk_.store.update_handler(replaced(near, on_duty=False))  # behind the desk's back
    desk_.roster_seconds = 0.0
    assert (await desk_.dispatch(facts(1))).handler == NEAR  # the kept roster decided
    await asyncio.gather(*list(desk_._background))  # the fresh read it started
    assert (await desk_.dispatch(facts(2))).handler == FAR


async def test_on_the_demo_town_dispatch_measures_by_the_demo_roads(command, grid_index, demo_gpkg):
    """The demo villages keep a `roads` layer (the generator's lane lattice, installed by
    the map's seed as at `make run`): the offer's distance is the one by road over it,
    not the straight line."""
    import numpy as np
    import pyogrio.raw

    from services.command.domain.model import Position
    from services.command.domain.roads import RoadNetwork
    from services.kit.geodesy import great_circle_m
    from services.kit.layer_geometry import LayerGeometry

    _, lon, lat = await setup_town(command, grid_index)
    event = await report(command, lon, lat)
    task = await eventually(lambda: task_of(command, event.name))
    assert task.handler == NEAR
    meta, _, wkb, values = pyogrio.raw.read(demo_gpkg, layer="roads")
    tenant = values[list(meta["fields"]).index("tenant")]
    lines = shapely.from_wkb(wkb)[tenant == XINGMING]
    network = RoadNetwork.of(LayerGeometry("demo roads", tuple(lines), 1))
    assert network is not None
    near_lon, near_lat = lon + 0.0005, lat  # where setup_town puts NEAR
    (by_road,) = network.metres_to(Position(lon, lat), np.array([near_lon]), np.array([near_lat]))
    straight = great_circle_m(near_lon, near_lat, lon, lat)
    assert by_road > straight + 1  # the lanes do not run straight from NEAR to the report
    assert task.distance_meters == pytest.approx(by_road, abs=1)

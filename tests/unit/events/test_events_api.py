"""The events service over real gRPC, locating through a real map service."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import shapely

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.type.v1 import geo_pb2
from services.events.api import REPLAYED_METADATA_KEY
from services.kit import tenancy
from services.kit.principal import Principal
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING, principal_of


def cell_point(grid_index, village: str, k: int = 0) -> tuple[str, float, float]:
    """An interior point of the k-th grid cell of a village, and that cell's id."""
    cells = [i for i, c in enumerate(grid_index.cells) if c.village == village]
    index = cells[k % len(cells)]
    point = shapely.point_on_surface(grid_index.polygons[index])
    return grid_index.cells[index].grid_cell_id, point.x, point.y


def report(lon, lat, request_id, category="environment.garbage", text="bins overflowing"):
    return pb.CreateEventRequest(
        parent=tenancy.tenant_name(TOWN),
        request_id=request_id,
        event=pb.Event(
            category=category,
            description=text,
            location=geo_pb2.GeoPoint(longitude=lon, latitude=lat),
        ),
    )


def md(tenant=TOWN, subject="users/test"):
    return principal_of(tenant, subject).to_metadata()


async def test_create_locates_the_event_and_get_returns_it(events, grid_index):
    cell_id, lon, lat = cell_point(grid_index, XINGMING, 3)
    event = await events.stub.CreateEvent(report(lon, lat, "r-1"), metadata=md())
    assert event.grid_cell == cell_id
    assert event.village == XINGMING
    assert event.grid_worker == next(
        c.grid_worker_id for c in grid_index.cells if c.grid_cell_id == cell_id
    )
    assert event.state == pb.Event.STATE_REPORTED
    assert event.name.startswith("tenants/sh-jiading-anting-xingming/events/ev_")
    fetched = await events.stub.GetEvent(pb.GetEventRequest(name=event.name), metadata=md())
    assert fetched == event
    wildcard = "tenants/-/events/" + event.name.rsplit("/", 1)[1]
    assert await events.stub.GetEvent(pb.GetEventRequest(name=wildcard), metadata=md()) == event


async def test_retry_with_same_request_id_returns_the_same_event(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    call = events.stub.CreateEvent(report(lon, lat, "same-key"), metadata=md())
    first = await call
    assert dict(await call.trailing_metadata())[REPLAYED_METADATA_KEY] == "false"
    call = events.stub.CreateEvent(report(lon, lat, "same-key"), metadata=md())
    second = await call
    assert dict(await call.trailing_metadata())[REPLAYED_METADATA_KEY] == "true"
    assert second.name == first.name
    assert await events.count_rows() == 1


async def test_concurrent_retries_make_exactly_one_event(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING, 1)
    results = await asyncio.gather(
        *(events.stub.CreateEvent(report(lon, lat, "burst"), metadata=md()) for _ in range(20))
    )
    assert len({e.name for e in results}) == 1
    assert await events.count_rows() == 1


async def test_same_key_with_a_different_body_is_refused(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    await events.stub.CreateEvent(report(lon, lat, "k"), metadata=md())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(report(lon, lat, "k", text="other"), metadata=md())
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert failure_of(info.value).reason == "IDEMPOTENCY_KEY_REUSED"
    assert await events.count_rows() == 1


async def test_keys_are_scoped_by_caller(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    a = await events.stub.CreateEvent(report(lon, lat, "k"), metadata=md(subject="users/a"))
    b = await events.stub.CreateEvent(report(lon, lat, "k"), metadata=md(subject="users/b"))
    assert a.name != b.name


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.event.ClearField("category"), "event.category"),
        (lambda r: setattr(r.event, "category", "no.such"), "event.category"),
        (lambda r: setattr(r.event, "description", "  "), "event.description"),
        (lambda r: setattr(r.event, "description", "x" * 5000), "event.description"),
        (lambda r: r.event.ClearField("location"), "event.location"),
        (lambda r: setattr(r.event.location, "latitude", 91.0), "event.location.latitude"),
        (lambda r: setattr(r.event.location, "longitude", 200.0), "event.location.longitude"),
        (lambda r: setattr(r.event.location, "crs", "GCJ-03"), "event.location.crs"),
        (lambda r: setattr(r, "request_id", ""), "request_id"),
        (lambda r: setattr(r, "request_id", "bad key with spaces"), "request_id"),
        (lambda r: setattr(r.event.location, "longitude", 100.0), "event.location"),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(events, grid_index, mutate, field):
    _, lon, lat = cell_point(grid_index, XINGMING)
    request = report(lon, lat, "bad-1")
    mutate(request)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(request, metadata=md())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in failure_of(info.value).violations]
    assert await events.count_rows() == 0


async def test_bad_parent_is_invalid(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    request = report(lon, lat, "p")
    request.parent = "villages/x"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(request, metadata=md())
    assert [v.field for v in failure_of(info.value).violations] == ["parent"]


async def test_list_pages_newest_first_without_gaps_or_repeats(events, grid_index):
    created = []
    for i in range(23):
        _, lon, lat = cell_point(grid_index, XINGMING, i)
        created.append(
            (await events.stub.CreateEvent(report(lon, lat, f"p{i}"), metadata=md())).name
        )
    seen, token, pages = [], "", 0
    while True:
        page = await events.stub.ListEvents(
            pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN), page_size=10, page_token=token),
            metadata=md(),
        )
        seen.extend(e.name for e in page.events)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(created))


async def test_list_filters_by_grid_cell(events, grid_index):
    target, lon, lat = cell_point(grid_index, XINGMING, 2)
    _, lon2, lat2 = cell_point(grid_index, XINGMING, 5)
    mine = await events.stub.CreateEvent(report(lon, lat, "a"), metadata=md())
    await events.stub.CreateEvent(report(lon2, lat2, "b"), metadata=md())
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN), filter=f'grid_cell = "{target}"'),
        metadata=md(),
    )
    assert [e.name for e in page.events] == [mine.name]


async def test_page_token_of_another_filter_is_refused(events, grid_index):
    for i in range(3):
        _, lon, lat = cell_point(grid_index, XINGMING, i)
        await events.stub.CreateEvent(report(lon, lat, f"t{i}"), metadata=md())
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN), page_size=1), metadata=md()
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.ListEvents(
            pb.ListEventsRequest(
                parent=tenancy.tenant_name(TOWN),
                page_size=1,
                page_token=page.next_page_token,
                filter='state = "closed"',
            ),
            metadata=md(),
        )
    assert [v.field for v in failure_of(info.value).violations] == ["page_token"]


async def test_a_village_sees_only_its_own_events(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    _, lon2, lat2 = cell_point(grid_index, XIANGYANG)
    xingming_event = await events.stub.CreateEvent(report(lon, lat, "x1"), metadata=md())
    await events.stub.CreateEvent(report(lon2, lat2, "y1"), metadata=md())
    neighbour = md(XIANGYANG)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.GetEvent(pb.GetEventRequest(name=xingming_event.name), metadata=neighbour)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    page = await events.stub.ListEvents(
        pb.ListEventsRequest(parent=tenancy.tenant_name(XIANGYANG)), metadata=neighbour
    )
    assert {e.village for e in page.events} == {XIANGYANG}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.ListEvents(
            pb.ListEventsRequest(parent=tenancy.tenant_name(TOWN)), metadata=neighbour
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_village_cannot_report_into_its_neighbour(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING)
    request = report(lon, lat, "cross")
    request.parent = tenancy.tenant_name(XIANGYANG)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(request, metadata=md(XIANGYANG))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await events.count_rows() == 0


async def test_map_down_is_unavailable_and_stores_nothing(events, map_server, grid_index):
    await map_server.running.stop()
    _, lon, lat = cell_point(grid_index, XINGMING)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(report(lon, lat, "down"), metadata=md())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await events.count_rows() == 0


async def test_the_twin_entity_an_event_is_about_is_kept_from_services_only(events, grid_index):
    _, lon, lat = cell_point(grid_index, XINGMING, 2)
    entity = "tenants/sh-jiading-anting-xingming/entities/truck-07"
    twin = Principal("services/twin", XINGMING, "service", scopes=frozenset({"events:write"}))
    asked = report(lon, lat, "twin-1", category="public.facility", text="truck off its route")
    asked.parent = tenancy.tenant_name(XINGMING)
    asked.event.entity = entity
    made = await events.stub.CreateEvent(asked, metadata=twin.to_metadata())
    assert made.entity == entity
    fetched = await events.stub.GetEvent(pb.GetEventRequest(name=made.name), metadata=md())
    assert fetched.entity == entity  # stored and read back on this backend
    # The same request again is the same request, naming the same entity.
    again = await events.stub.CreateEvent(asked, metadata=twin.to_metadata())
    assert again.name == made.name
    # A person cannot claim an event is a device's.
    claimed = report(lon, lat, "resident-1", text="a truck dumped soil here")
    claimed.event.entity = entity
    by_person = await events.stub.CreateEvent(claimed, metadata=md())
    assert by_person.entity == ""

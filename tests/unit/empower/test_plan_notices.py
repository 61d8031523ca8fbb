"""Command's emergency facts on the bus that empower reads, on the embedded log and Redis.

The service is built as `python -m services.empower` builds it, reading one stream
for points and plan notices as it reads command's. An `emergency.level_changed` fact,
published as command publishes it (a protobuf `EmergencyLevelChange`), must become the
village's notices, once however often it is delivered, and the points consumer must
leave it (and any fact type no rule names) acknowledged, not pending on its way to
the dead stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from grassroots.command.v1 import plans_service_pb2 as plans_pb
from grassroots.empower.v1 import identity_service_pb2 as identity_pb
from grassroots.empower.v1 import identity_service_pb2_grpc as identity_grpc
from grassroots.empower.v1 import notices_service_pb2 as pb
from grassroots.empower.v1 import notices_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import points_service_pb2 as points_pb
from grassroots.empower.v1 import points_service_pb2_grpc as points_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.notices_model import Audience
from services.empower.domain.plan_notices import audience_of
from services.empower.domain.roles import ALL_SCOPES, ROLES
from services.empower.plan_notices import GROUP as NOTICES_GROUP
from services.empower.points_facts import GROUP as POINTS_GROUP
from services.empower.wiring import build
from services.kit.bus import BusMessage, open_bus
from services.kit.principal import Principal
from tests.conftest import SignedAtCall, create_tenants, serve_in_process

VILLAGE = "sh/jd/at/va"
PARENT = "tenants/sh-jd-at-va"
BOOT = SignedAtCall(Principal("services/boot", "sh", kind="service", scopes=ALL_SCOPES))
SECRETARY = SignedAtCall(Principal("users/sec", VILLAGE, scopes=ROLES["village_secretary"]))


@pytest.fixture(params=["local-log", "redis"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    stream = f"command-{uuid.uuid4().hex[:8]}"
    url = (
        str(tmp_path / "bus.sqlite3")
        if request.param == "local-log"
        else "redis://127.0.0.1:6379/0"
    )
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        bus_url=url,
        points_fact_streams=stream,
        plan_fact_streams=stream,
        notice_dispatch_seconds=0.1,
    )
    component = await build(settings)
    server = await serve_in_process("empower", component)
    await create_tenants(server.channel, "sh/jd/at/va")
    publisher = open_bus(url)
    yield server.channel, publisher, stream
    await publisher.close()
    await server.channel.close()
    await server.running.stop()
    await component.close()


def _level_changed(key: str) -> BusMessage:
    """As command's plans outbox publishes it (services/command/plans_api.change_to_bytes)."""
    change = plans_pb.EmergencyLevelChange(
        plan=f"{PARENT}/emergencyPlans/ep_1",
        display_name="Crowd surge at the village square",
        from_level=0,
        to_level=2,
        actor="users/sec",
        reason="5,412 people counted on the square",
        notices=[
            plans_pb.Notice(audience="town_office", text="Crowd building on the square"),
            plans_pb.Notice(audience="residents", text="Avoid the village square"),
            plans_pb.Notice(audience="grid_workers", text="Meet at the east exit"),
        ],
    )
    return BusMessage(
        type="emergency.level_changed",
        key=key,
        tenant=VILLAGE,
        offset=1,
        payload=change.SerializeToString(),
    )


async def _notices(channel: Any) -> list[pb.Notice]:
    listed = await pb_grpc.NoticesServiceStub(channel).ListNotices(
        pb.ListNoticesRequest(parent=PARENT, page_size=50), metadata=SECRETARY
    )
    return list(listed.notices)


async def test_a_level_change_becomes_the_villages_notices_once(service: Any) -> None:
    channel, bus, stream = service
    worker = await identity_grpc.IdentityServiceStub(channel).CreateUser(
        identity_pb.CreateUserRequest(
            parent=PARENT,
            user=identity_pb.User(
                username="va.grid",
                display_name="va.grid",
                kind=identity_pb.User.KIND_GRID_WORKER,
                roles=["grid_worker"],
            ),
        ),
        metadata=BOOT,
    )
    await bus.publish(stream, _level_changed("ep_1:2"))
    await bus.publish(stream, _level_changed("ep_1:2"))  # delivered again
    # A fact of a type nobody here handles, with a body that is no JSON.
    await bus.publish(stream, BusMessage("weather.changed", "w:1", VILLAGE, 2, b"\xcd\x01\x02"))
    found: list[pb.Notice] = []
    for _ in range(200):
        found = await _notices(channel)
        if len(found) >= 3:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a second copy would show now
    found = await _notices(channel)
    assert sorted(n.body for n in found) == [
        "Avoid the village square",
        "Crowd building on the square",
        "Meet at the east exit",
    ]
    assert {n.title for n in found} == {"Crowd surge at the village square: level 2"}
    by_body = {n.body: n for n in found}
    assert by_body["Avoid the village square"].audience.tenant == PARENT
    assert by_body["Meet at the east exit"].audience.role == "grid_worker"
    deliveries = await pb_grpc.NoticesServiceStub(channel).ListDeliveries(
        pb.ListDeliveriesRequest(parent=by_body["Meet at the east exit"].name),
        metadata=SECRETARY,
    )
    assert [d.recipient for d in deliveries.deliveries] == [
        "users/" + worker.name.rsplit("/", 1)[-1]
    ]
    # Both groups acknowledged everything: nothing is left pending for a retry.
    for group in (NOTICES_GROUP, POINTS_GROUP):
        assert await bus.claim_stale(stream, group, "probe", 0, 10) == []


async def test_points_acknowledge_facts_they_do_not_pay_for(service: Any) -> None:
    channel, bus, stream = service
    points = points_grpc.PointsServiceStub(channel)
    await points.CreatePointsRule(
        points_pb.CreatePointsRuleRequest(
            parent=PARENT,
            points_rule=points_pb.PointsRule(
                display_name="Sorting check passed",
                fact_type="sorting.check_passed",
                points=5,
                cap=100,
                cap_period=points_pb.PointsRule.PERIOD_WEEK,
            ),
        ),
        metadata=SECRETARY,
    )
    await bus.publish(stream, _level_changed("ep_1:3"))
    await bus.publish(stream, BusMessage("weather.changed", "w:2", VILLAGE, 2, b"\xcd\x01"))
    paid = json.dumps({"holder": "users/li", "attributes": {}}).encode()
    await bus.publish(stream, BusMessage("sorting.check_passed", "s:1", VILLAGE, 3, paid))
    balance = 0
    for _ in range(200):
        listed = await points.ListPointsAccounts(
            points_pb.ListPointsAccountsRequest(parent=PARENT, filter='holder = "users/li"'),
            metadata=SECRETARY,
        )
        balance = listed.points_accounts[0].balance if listed.points_accounts else 0
        if balance:
            break
        await asyncio.sleep(0.05)
    assert balance == 5
    # The facts before the paid one were handled first: acknowledged, none pending on
    # its way to the dead stream.
    assert await bus.claim_stale(stream, POINTS_GROUP, "probe", 0, 10) == []
    assert await bus.length(stream + ".dead") == 0


def test_a_plans_audience_words_become_audiences() -> None:
    village = "sh/jd/at/va"
    assert audience_of("residents", village) == Audience(tenant=PARENT)
    assert audience_of("Everyone", village) == Audience(tenant=PARENT)
    assert audience_of("grid_workers", village) == Audience(role="grid_worker")
    assert audience_of("volunteer", village) == Audience(role="volunteer")
    assert audience_of("town_office", village) == Audience(role="town_officer")
    assert audience_of("fire brigade", village) == Audience(role="village_secretary")

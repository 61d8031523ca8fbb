"""The points ledger over real gRPC, fed by facts published on a real bus.

The service is started as `python -m services.empower` starts it (`wiring.build`);
facts are published the way command publishes them (a `task.resolved` message whose
payload is a `grassroots.command.v1.Task`), once on the embedded log and once on
Redis Streams, each twice, and must pay exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.empower.v1 import points_service_pb2 as pb
from grassroots.empower.v1 import points_service_pb2_grpc as pb_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.roles import ROLES
from services.empower.wiring import build
from services.kit.bus import BusMessage, open_bus
from services.kit.principal import Principal
from tests.conftest import SignedAtCall, serve_in_process

VILLAGE, NEIGHBOUR = "sh/jd/at/va", "sh/jd/at/vb"
SECRETARY = SignedAtCall(Principal("users/sec", VILLAGE, scopes=ROLES["village_secretary"]))
NEIGHBOUR_SECRETARY = SignedAtCall(
    Principal("users/sec-b", NEIGHBOUR, scopes=ROLES["village_secretary"])
)
RESIDENT = SignedAtCall(Principal("users/res", VILLAGE, scopes=ROLES["resident"]))


def _settings(tmp_path: Path, bus_url: str, stream: str) -> EmpowerSettings:
    return EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        database=tmp_path / "empower.sqlite3",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        bus_url=bus_url,
        points_fact_streams=stream,
    )


@pytest.fixture(params=["local-log", "redis"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[pb_grpc.PointsServiceStub, Any, str]]:
    stream = f"command-{uuid.uuid4().hex[:8]}"
    url = (
        str(tmp_path / "bus.sqlite3")
        if request.param == "local-log"
        else "redis://127.0.0.1:6379/0"
    )
    component = await build(_settings(tmp_path, url, stream))
    server = await serve_in_process("empower", component)
    publisher = open_bus(url)
    yield pb_grpc.PointsServiceStub(server.channel), publisher, stream
    await publisher.close()
    await server.channel.close()
    await server.running.stop()
    await component.close()


def _violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return [(v.field, v.description) for v in bad.field_violations]
    return []


def _task_resolved(key: str, handler: str) -> BusMessage:
    task = command_pb.Task(
        name="tenants/sh-jd-at-va/tasks/tk_1",
        event="tenants/sh-jd-at-va/events/ev_1",
        handler=handler,
        state=command_pb.Task.STATE_DONE,
        team="volunteers",
        category="environment.garbage",
    )
    return BusMessage(
        type="task.resolved",
        key=key,
        tenant=VILLAGE,
        offset=1,
        payload=task.SerializeToString(),
    )


async def _account_of(stub: pb_grpc.PointsServiceStub, holder: str) -> pb.PointsAccount | None:
    listed = await stub.ListPointsAccounts(
        pb.ListPointsAccountsRequest(parent="tenants/sh-jd-at-va", filter=f'holder = "{holder}"'),
        metadata=SECRETARY,
    )
    return listed.points_accounts[0] if listed.points_accounts else None


async def test_a_resolved_volunteer_task_pays_once_and_buys_at_the_shop(service: Any) -> None:
    stub, bus, stream = service
    rule = await stub.CreatePointsRule(
        pb.CreatePointsRuleRequest(
            parent="tenants/sh-jd-at-va",
            points_rule=pb.PointsRule(
                display_name="Volunteer task done",
                fact_type="task.resolved",
                match={"team": "volunteers"},
                points=10,
                cap=100,
                cap_period=pb.PointsRule.PERIOD_WEEK,
            ),
        ),
        metadata=SECRETARY,
    )
    assert rule.name.startswith("tenants/sh-jd-at-va/pointsRules/pr_")
    await bus.publish(stream, _task_resolved("tasks/tk_1:5", "users/li"))
    await bus.publish(stream, _task_resolved("tasks/tk_1:5", "users/li"))  # redelivered
    await bus.publish(stream, _task_resolved("tasks/tk_2:9", "users/li"))
    account = None
    for _ in range(200):
        account = await _account_of(stub, "users/li")
        if account is not None and account.balance >= 20:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a late double would show now
    account = await _account_of(stub, "users/li")
    assert account is not None and account.balance == 20

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.RedeemPoints(
            pb.RedeemPointsRequest(account=account.name, amount=21, memo="shop", request_id="b1"),
            metadata=SECRETARY,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(refused.value)[0][0] == "amount"
    bought = await stub.RedeemPoints(
        pb.RedeemPointsRequest(
            account=account.name, amount=15, memo="Village shop: soap", request_id="b2"
        ),
        metadata=SECRETARY,
    )
    assert bought.amount == -15 and bought.balance_after == 5
    statement = await stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(parent=account.name), metadata=SECRETARY
    )
    assert statement.balance == 5
    assert [e.amount for e in statement.ledger_entries] == [-15, 10, 10]
    assert statement.ledger_entries[1].rule == rule.name
    assert sum(e.amount for e in statement.ledger_entries) == statement.balance


async def test_another_village_and_missing_scopes_are_refused(service: Any) -> None:
    stub, _, _ = service
    account = await stub.CreatePointsAccount(
        pb.CreatePointsAccountRequest(
            parent="tenants/sh-jd-at-va",
            points_account=pb.PointsAccount(
                holder_kind=pb.PointsAccount.HOLDER_KIND_HOUSEHOLD, holder="household/3-201"
            ),
        ),
        metadata=SECRETARY,
    )
    for call in (
        stub.GetPointsAccount(
            pb.GetPointsAccountRequest(name=account.name), metadata=NEIGHBOUR_SECRETARY
        ),
        stub.CreditPoints(
            pb.CreditPointsRequest(account=account.name, amount=5, request_id="x"),
            metadata=NEIGHBOUR_SECRETARY,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.CreditPoints(
            pb.CreditPointsRequest(account=account.name, amount=5, request_id="y"),
            metadata=RESIDENT,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    credited = await stub.CreditPoints(
        pb.CreditPointsRequest(account=account.name, amount=5, request_id="y"), metadata=SECRETARY
    )
    again = await stub.CreditPoints(
        pb.CreditPointsRequest(account=account.name, amount=5, request_id="y"), metadata=SECRETARY
    )
    assert credited.name == again.name
    got = await stub.GetPointsAccount(
        pb.GetPointsAccountRequest(name=account.name), metadata=SECRETARY
    )
    assert got.balance == 5

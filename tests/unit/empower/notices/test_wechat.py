"""WeChat notices over real gRPC: a person bound to an openid is reached through the
WeChat adapter, which posts to `WeChatGatewayTestDouble` (a local HTTP server standing
in for the official account's gateway; there is no WeChat server here). On both stores.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from grassroots.empower.v1 import notices_service_pb2 as pb
from grassroots.empower.v1 import notices_service_pb2_grpc as pb_grpc
from grassroots.empower.v1 import people_service_pb2 as people_pb
from grassroots.empower.v1 import people_service_pb2_grpc as people_grpc
from services.empower.config import EmpowerSettings
from services.empower.domain.roles import ALL_SCOPES, ROLES
from services.empower.wiring import build
from services.kit import gb11643
from services.kit.principal import Principal
from tests.conftest import SignedAtCall, create_tenants, serve_in_process

A, B = "sh/jd/at/va", "sh/jd/at/vb"
BOOT = SignedAtCall(Principal("services/boot", "sh", kind="service", scopes=ALL_SCOPES))
SECRETARY = SignedAtCall(
    Principal("users/sec", A, scopes=ROLES["village_secretary"] | {"empower:read"})
)
NEIGHBOUR = SignedAtCall(Principal("users/sec-b", B, scopes=ROLES["village_secretary"]))
OPENID = "oAbC-12_xyz"


class WeChatGatewayTestDouble(BaseHTTPRequestHandler):
    """A test double of the WeChat template-message gateway: records what it is sent."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        WeChatGatewayTestDouble.received.append({"auth": self.headers.get("Authorization"), **body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    WeChatGatewayTestDouble.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), WeChatGatewayTestDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/message/template/send"
    server.shutdown()
    thread.join()


@pytest.fixture(params=["sqlite", "postgres"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path, gateway: str
) -> AsyncIterator[Any]:
    backend: dict[str, Any] = {"database": tmp_path / "empower.sqlite3"}
    if request.param == "postgres":
        backend = {
            "backend": "postgres",
            "postgres_dsn": request.getfixturevalue("postgis_test_dsn"),
        }
    settings = EmpowerSettings(
        grpc_port=0,
        host="127.0.0.1",
        seal_keys="k1:" + base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        bus_url=str(tmp_path / "bus.sqlite3"),
        notice_dispatch_seconds=0.1,
        wechat_gateway_url=gateway,
        wechat_gateway_key="wechat-key",  # type: ignore[arg-type]
        **backend,
    )
    component = await build(settings)
    server = await serve_in_process("empower", component)
    await create_tenants(server.channel, "sh/jd/at/va", "sh/jd/at/vb")
    yield server.channel
    await server.channel.close()
    await server.running.stop()
    await component.close()


async def _person(channel: Any, id_body: str) -> str:
    person = await people_grpc.PeopleServiceStub(channel).CreatePerson(
        people_pb.CreatePersonRequest(
            parent="tenants/sh-jd-at-va",
            person=people_pb.Person(
                display_name="Fan Siyu", id_number=gb11643.with_check_character(id_body)
            ),
        ),
        metadata=SECRETARY,
    )
    return person.name


async def _deliveries(stub: Any, notice: str) -> list[Any]:
    for _ in range(100):
        found = await stub.ListDeliveries(
            pb.ListDeliveriesRequest(parent=notice), metadata=SECRETARY
        )
        if all(
            d.state not in (pb.Delivery.STATE_PENDING, pb.Delivery.STATE_QUEUED)
            for d in found.deliveries
        ):
            return list(found.deliveries)
        await asyncio.sleep(0.1)
    raise AssertionError("the deliveries were not attempted")


async def test_a_bound_person_is_reached_on_wechat_and_an_unbound_one_fails(service: Any) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    bound = await _person(service, "31011419410830134")
    unbound = await _person(service, "31011419500101777")
    binding = await stub.BindWeChat(
        pb.BindWeChatRequest(person=bound, openid="earlier-openid"), metadata=SECRETARY
    )
    assert binding.person == bound and binding.bind_time.seconds > 0
    # Binding again replaces the openid.
    await stub.BindWeChat(pb.BindWeChatRequest(person=bound, openid=OPENID), metadata=SECRETARY)

    notice = await stub.CreateNotice(
        pb.CreateNoticeRequest(
            parent="tenants/sh-jd-at-va",
            notice=pb.Notice(
                title="Typhoon",
                body="Bring in what the wind can move",
                audience=pb.Audience(recipients=[bound, unbound]),
                channels=[pb.Notice.CHANNEL_WECHAT],
            ),
            request_id="wechat-1",
        ),
        metadata=SECRETARY,
    )
    states = {d.recipient: d for d in await _deliveries(stub, notice.name)}
    assert states[bound].state == pb.Delivery.STATE_SENT
    assert states[unbound].state == pb.Delivery.STATE_FAILED
    assert "not bound WeChat" in states[unbound].last_error
    assert WeChatGatewayTestDouble.received == [
        {
            "auth": "Bearer wechat-key",
            "touser": OPENID,
            "data": {"title": "Typhoon", "content": "Bring in what the wind can move"},
        }
    ]
    # The audit chain says who bound whom, never the openid.
    audit = await people_grpc.PeopleServiceStub(service).ListAuditEntries(
        people_pb.ListAuditEntriesRequest(parent="tenants/sh"), metadata=BOOT
    )
    bindings = [e for e in audit.audit_entries if e.action == "notices.bind_wechat"]
    assert [list(e.records) for e in bindings] == [[bound], [bound]]
    assert all(OPENID not in str(e) for e in audit.audit_entries)


async def test_binding_is_refused_for_a_bad_openid_and_another_villages_person(
    service: Any,
) -> None:
    stub = pb_grpc.NoticesServiceStub(service)
    person = await _person(service, "31011419410830134")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.BindWeChat(pb.BindWeChatRequest(person=person, openid="a b"), metadata=SECRETARY)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "openid" in str(
        bad.value.details()
    ) + str(bad.value.trailing_metadata())
    for who, name in (
        (NEIGHBOUR, person),
        (SECRETARY, person.replace("people/", "people/x")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await stub.BindWeChat(pb.BindWeChatRequest(person=name, openid=OPENID), metadata=who)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

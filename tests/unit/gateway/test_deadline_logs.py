"""A component that does not answer in time is a 504 the gateway logs at WARNING, with
the route, the component and RPC that timed out, and the request id."""

from __future__ import annotations

import asyncio
import logging

import grpc
import httpx

from gateway.app import create_app
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from gateway.upstreams import Upstreams
from grassroots.command.v1 import command_service_pb2 as pb
from services.kit.components import NAMES
from services.kit.discovery import StaticDiscovery
from services.kit.principal import Principal
from tests.conftest import XINGMING
from tests.unit.gateway.test_request_times import V


async def _stuck(request: pb.ListTasksRequest, context: object) -> pb.ListTasksResponse:
    await asyncio.sleep(1)
    return pb.ListTasksResponse()


async def test_a_504_is_logged_with_route_component_and_request_id(caplog) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grassroots.command.v1.CommandService",
                {
                    "ListTasks": grpc.unary_unary_rpc_method_handler(
                        _stuck,
                        request_deserializer=pb.ListTasksRequest.FromString,
                        response_serializer=pb.ListTasksResponse.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    settings = GatewaySettings(**{f"{n}_address": f"127.0.0.1:{port}" for n in NAMES})
    who = Principal(
        subject="users/secretary", tenant=XINGMING, kind="user", scopes=frozenset({"command:read"})
    )
    app = create_app(settings, fixed_caller=Caller(who, None))
    app.state.upstreams = Upstreams(StaticDiscovery(settings.addresses()), NAMES, timeout=0.2)
    caplog.set_level(logging.INFO, logger="grassroots.gateway")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answer = await client.get(
                f"{V}/tasks", headers={"X-API-Key": "grk_any", "X-Request-ID": "req-504-test"}
            )
    finally:
        await app.state.upstreams.close()
        await server.stop(None)
    assert answer.status_code == 504, answer.text
    (line,) = [r for r in caplog.records if r.levelno == logging.WARNING and "504" in r.msg]
    assert line.route == "/v1/tenants/{tenant}/tasks"
    assert line.backend == "command /grassroots.command.v1.CommandService/ListTasks"
    assert line.request_id == "req-504-test"

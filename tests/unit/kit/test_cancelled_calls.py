"""A call whose deadline passes, or whose caller goes away, is logged and counted as
DEADLINE_EXCEEDED or CANCELLED, not OK: over real gRPC on a loopback socket."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from google.protobuf import empty_pb2

from services.kit.interceptors import ServerInterceptor
from tests.conftest import principal_of

METHOD = "/grassroots.command.v1.PlansService/CreateServicePlan"


async def never_done(request, context):
    await asyncio.sleep(30)
    return empty_pb2.Empty()


@pytest.fixture
async def channel():
    server = grpc.aio.server(interceptors=[ServerInterceptor("command", {METHOD: ""})])
    handler = grpc.unary_unary_rpc_method_handler(
        never_done,
        request_deserializer=empty_pb2.Empty.FromString,
        response_serializer=empty_pb2.Empty.SerializeToString,
    )
    service, name = METHOD.rsplit("/", 1)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.lstrip("/"), {name: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(0)


def call(channel: grpc.aio.Channel, **kwargs) -> grpc.aio.UnaryUnaryCall:
    rpc = channel.unary_unary(
        METHOD,
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=empty_pb2.Empty.FromString,
    )
    return rpc(
        empty_pb2.Empty(), metadata=principal_of("sh/jiading/anting").to_metadata(), **kwargs
    )


async def logged_code(caplog: pytest.LogCaptureFixture) -> str:
    for _ in range(100):  # the server finishes the call after the client has its answer
        lines = [
            r for r in caplog.records if r.name == "grassroots.rpc" and r.msg.startswith("rpc ")
        ]
        if lines:
            return lines[-1].code
        await asyncio.sleep(0.02)
    raise AssertionError("the call was never logged")


async def test_a_call_past_its_deadline_is_logged_as_deadline_exceeded(channel, caplog):
    caplog.set_level(logging.INFO, logger="grassroots.rpc")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(channel, timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await logged_code(caplog) == "DEADLINE_EXCEEDED"


async def test_a_call_its_caller_cancels_is_logged_as_cancelled(channel, caplog):
    caplog.set_level(logging.INFO, logger="grassroots.rpc")
    pending = call(channel)
    await asyncio.sleep(0.2)  # the server has started it
    pending.cancel()
    assert await logged_code(caplog) == "CANCELLED"

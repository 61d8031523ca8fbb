"""What the gRPC edge passes on: deadlines, request ids, its own signed principal, statuses.

A recording component stands in for the map and events services on a real loopback
port, so what arrives upstream can be inspected; the edge runs in process with a
fixed caller (admission itself is covered by tests/integration/test_grpc_edge.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from gateway.edge.server import RunningEdge, start_edge
from gateway.edge.settings import EdgeSettings
from gateway.security.authenticator import Caller
from gateway.settings import GatewaySettings
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from services.kit import interceptors
from services.kit.principal import PRINCIPAL_METADATA_KEY, Principal
from tests.conftest import XINGMING

GET_LAYER = "/grassroots.map.v1.MapService/GetLayer"
WATCH = "/grassroots.events.v1.EventsService/WatchEvents"
APP = "tenants/sh-jiading-anting-xingming/apps/a1"


def caller() -> Principal:
    """The admitted app, with an expiry counted from now (a suite can run for long)."""
    return Principal(
        APP,
        XINGMING,
        kind="app",
        scopes=frozenset({"map:read", "events:read"}),
        app=APP,
        expires_at=time.time() + 600,
    )


class Recorder(grpc.GenericRpcHandler):
    """Answers GetLayer and WatchEvents and keeps what each call carried."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _record(self, context: grpc.aio.ServicerContext) -> None:
        self.calls.append(
            {
                "metadata": tuple(context.invocation_metadata() or ()),
                "remaining": context.time_remaining(),
            }
        )

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == GET_LAYER:

            async def get_layer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                self._record(context)
                asked = map_pb.GetLayerRequest.FromString(request)
                if asked.name.endswith("/missing"):
                    context.set_trailing_metadata((("x-upstream", "said-so"),))
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"{asked.name} not found")
                context.set_trailing_metadata((("x-upstream", "ok"),))
                return map_pb.Layer(name=asked.name, feature_count=7).SerializeToString()

            return grpc.unary_unary_rpc_method_handler(get_layer)
        if details.method == WATCH:

            async def watch(
                request: bytes, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[bytes]:
                self._record(context)
                for offset in (1, 2, 3):
                    yield events_pb.WatchEventsResponse(offset=offset).SerializeToString()
                    await asyncio.sleep(0)

            return grpc.unary_stream_rpc_method_handler(watch)
        return None


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Recorder, grpc.aio.Channel]]:
    recorder = Recorder()
    upstream = grpc.aio.server()
    upstream.add_generic_rpc_handlers((recorder,))
    port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    address = f"127.0.0.1:{port}"
    gateway = GatewaySettings(
        map_address=address,
        events_address=address,
        command_address=address,
        twin_address=address,
        empower_address=address,
        call_timeout_seconds=4.0,
    )
    edge: RunningEdge = await start_edge(
        EdgeSettings(grpc_port=0), gateway, fixed_caller=Caller(caller(), None)
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{edge.port}")
    yield recorder, channel
    await channel.close()
    await edge.stop()
    await upstream.stop(None)


async def test_unary_keeps_the_deadline_and_request_id_and_signs_for_the_caller(setup):
    recorder, channel = setup
    forged = Principal("users/me", "sh", scopes=frozenset({"map:write"}), expires_at=10**10)
    call = map_grpc.MapServiceStub(channel).GetLayer(
        map_pb.GetLayerRequest(name="tenants/x/layers/pois"),
        metadata=(("x-request-id", "req-42"), *forged.to_metadata()),
        timeout=2.5,
    )
    layer = await call
    assert layer.name == "tenants/x/layers/pois" and layer.feature_count == 7
    seen = recorder.calls[-1]
    assert 1.5 < seen["remaining"] <= 2.6
    metadata = seen["metadata"]
    assert ("x-request-id", "req-42") in metadata
    principals = [v for k, v in metadata if k == PRINCIPAL_METADATA_KEY]
    assert len(principals) == 1  # the caller's own principal entries are not passed on
    assert Principal.from_metadata(metadata).subject == APP
    trailing = tuple(await call.trailing_metadata())
    assert ("x-upstream", "ok") in trailing and ("x-request-id", "req-42") in trailing


async def test_unary_without_a_deadline_gets_the_call_timeout_and_a_minted_request_id(setup):
    recorder, channel = setup
    await map_grpc.MapServiceStub(channel).GetLayer(map_pb.GetLayerRequest(name="a/layers/b"))
    seen = recorder.calls[-1]
    assert 3.0 < seen["remaining"] <= 4.1  # gRPC rounds deadlines up a little
    request_ids = [v for k, v in seen["metadata"] if k == "x-request-id"]
    assert len(request_ids) == 1 and len(request_ids[0]) == 32


async def test_upstream_errors_keep_their_code_message_and_trailers(setup):
    _, channel = setup
    call = map_grpc.MapServiceStub(channel).GetLayer(
        map_pb.GetLayerRequest(name="tenants/x/layers/missing"), timeout=5
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "tenants/x/layers/missing not found"
    assert ("x-upstream", "said-so") in tuple(caught.value.trailing_metadata())


async def test_streams_are_forwarded_item_by_item_without_an_imposed_deadline(setup):
    recorder, channel = setup
    stream = events_grpc.EventsServiceStub(channel).WatchEvents(
        events_pb.WatchEventsRequest(parent="tenants/x")
    )
    offsets = [item.offset async for item in stream]
    assert offsets == [1, 2, 3]
    assert recorder.calls[-1]["remaining"] is None


async def test_a_method_outside_the_callers_scopes_never_reaches_the_component(setup):
    recorder, channel = setup
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await map_grpc.MapServiceStub(channel).CreateLayer(
            map_pb.CreateLayerRequest(parent="tenants/x", layer_id="y"), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert recorder.calls == []


async def test_unknown_methods_are_unimplemented(setup):
    _, channel = setup
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary("/grassroots.map.v1.MapService/Nope")(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_a_slow_unary_call_is_a_warning_and_a_stream_never_is(setup, caplog, monkeypatch):
    """The services' SLOW_CALL_SECONDS holds at the edge too (here every call is over it)."""
    _, channel = setup
    caplog.set_level(logging.INFO, logger="grassroots.edge")
    monkeypatch.setattr(interceptors, "SLOW_CALL_SECONDS", 0.0)
    await map_grpc.MapServiceStub(channel).GetLayer(map_pb.GetLayerRequest(name="a/layers/b"))
    stream = events_grpc.EventsServiceStub(channel).WatchEvents(
        events_pb.WatchEventsRequest(parent="tenants/x")
    )
    assert [item.offset async for item in stream] == [1, 2, 3]
    lines = {
        r.method: r
        for r in caplog.records
        if r.name == "grassroots.edge" and r.msg.startswith("rpc ")
    }
    assert lines[GET_LAYER].levelno == logging.WARNING
    assert "slow" in lines[GET_LAYER].getMessage()
    assert lines[WATCH].levelno == logging.INFO

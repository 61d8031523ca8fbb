"""The kit bootstrap over real gRPC on a loopback socket."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client import REGISTRY

from grassroots.map.v1 import map_service_pb2 as pb
from grassroots.map.v1 import map_service_pb2_grpc as pb_grpc
from services.kit import context as ctx
from services.kit.client import open_channel
from services.kit.component import ServiceComponent
from services.kit.errors import FieldViolation, InvalidArgument, NotFound
from services.kit.principal import PRINCIPAL_METADATA_KEY, SIGNATURE_METADATA_KEY, Principal
from services.kit.scopes import method_scopes
from services.kit.signing import KeyRing, generate_keys_value
from services.kit.status import failure_of
from services.kit.unimplemented import fill_unimplemented
from tests.conftest import principal_of, serve_in_process

SERVICE = pb.DESCRIPTOR.services_by_name["MapService"].full_name


class ProbeServicer(pb_grpc.MapServiceServicer):
    """Behaves according to the requested name, to drive each path of the kit."""

    async def GetLayer(self, request, context):
        if request.name == "bad":
            raise InvalidArgument(
                [FieldViolation("name", "is bad"), FieldViolation("other", "also bad")]
            )
        if request.name == "missing":
            raise NotFound("no such layer")
        if request.name == "crash":
            raise RuntimeError("secret detail from deep inside")
        if request.name == "slow":
            await asyncio.sleep(1.0)
            return pb.Layer(name="slow done")
        principal = ctx.current_principal()
        return pb.Layer(
            name=principal.subject if principal else "",
            display_name=ctx.current_request_id() or "",
            geometry_type=principal.tenant if principal else "",
        )


fill_unimplemented(ProbeServicer, SERVICE, "a later release")


@pytest.fixture
async def probe():
    scopes = method_scopes(SERVICE)
    del scopes[f"/{SERVICE}/DeleteLayer"]  # a method that forgot to declare its scope
    component = ServiceComponent(
        [(ProbeServicer(), pb_grpc.add_MapServiceServicer_to_server)],
        [SERVICE],
        method_scopes=scopes,
    )
    server = await serve_in_process("probe", component)
    yield server
    await server.channel.close()
    await server.running.stop()


def metadata(tenant="sh/jiading/anting", request_id="req-123"):
    return (*principal_of(tenant).to_metadata(), (ctx.REQUEST_ID_HEADER, request_id))


async def test_health_reports_serving_for_server_and_service(probe):
    health = health_pb2_grpc.HealthStub(probe.channel)
    for service in ("", SERVICE):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service_and_health(probe):
    def list_services():
        with grpc.insecure_channel(probe.address) as channel:
            return ProtoReflectionDescriptorDatabase(channel).get_services()

    services = await asyncio.to_thread(list_services)
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services


async def test_call_without_principal_is_unauthenticated(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetLayer(pb.GetLayerRequest(name="x"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "principal" in info.value.details()


async def test_garbled_principal_is_unauthenticated(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetLayer(
            pb.GetLayerRequest(name="x"),
            metadata=(("x-grassroots-principal-bin", b"\xff\xff\xff"),),
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def _code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


async def test_unsigned_principal_is_unauthenticated(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    payload = dict(principal_of("sh").to_metadata())[PRINCIPAL_METADATA_KEY]
    call = stub.GetLayer(
        pb.GetLayerRequest(name="who"), metadata=((PRINCIPAL_METADATA_KEY, payload),)
    )
    assert await _code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_principal_claiming_another_tenant_with_the_old_signature_is_refused(probe):
    """A caller who edits the tenant in a captured principal breaks the signature."""
    stub = pb_grpc.MapServiceStub(probe.channel)
    sealed = dict(principal_of("sh/jiading/anting/xingming").to_metadata())
    forged = sealed[PRINCIPAL_METADATA_KEY].replace(b"xingming", b"xiangyang")
    call = stub.GetLayer(
        pb.GetLayerRequest(name="who"),
        metadata=(
            (PRINCIPAL_METADATA_KEY, forged),
            (SIGNATURE_METADATA_KEY, sealed[SIGNATURE_METADATA_KEY]),
        ),
    )
    assert await _code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_principal_signed_with_a_foreign_key_is_refused(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    sealed = dict(principal_of("sh").to_metadata())
    payload = sealed[PRINCIPAL_METADATA_KEY]
    foreign = KeyRing.parse(generate_keys_value("test")).sign(payload)
    call = stub.GetLayer(
        pb.GetLayerRequest(name="who"),
        metadata=((PRINCIPAL_METADATA_KEY, payload), (SIGNATURE_METADATA_KEY, foreign)),
    )
    assert await _code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_principal_is_refused(probe):
    import time

    stub = pb_grpc.MapServiceStub(probe.channel)
    stale = Principal("users/t", "sh", scopes=frozenset({"map:read"}), expires_at=time.time() - 60)
    call = stub.GetLayer(pb.GetLayerRequest(name="who"), metadata=stale.to_metadata())
    assert await _code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_principal_that_claims_a_long_life_is_refused(probe):
    import time

    stub = pb_grpc.MapServiceStub(probe.channel)
    forever = Principal(
        "users/t", "sh", scopes=frozenset({"map:read"}), expires_at=time.time() + 86400
    )
    call = stub.GetLayer(pb.GetLayerRequest(name="who"), metadata=forever.to_metadata())
    assert await _code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_method_scope_is_checked_before_the_handler(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    reader = Principal("users/r", "sh", scopes=frozenset({"map:read"})).to_metadata()
    layer = await stub.GetLayer(pb.GetLayerRequest(name="who"), metadata=reader)
    assert layer.name == "users/r"
    call = stub.CreateLayer(pb.CreateLayerRequest(parent="tenants/sh"), metadata=reader)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "map:write" in info.value.details()


async def test_method_without_a_declared_scope_is_refused(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    call = stub.DeleteLayer(pb.DeleteLayerRequest(name="x"), metadata=metadata())
    assert await _code_of(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_principal_and_request_id_reach_the_handler(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    layer = await stub.GetLayer(pb.GetLayerRequest(name="who"), metadata=metadata())
    assert layer.name == "users/test"
    assert layer.display_name == "req-123"
    assert layer.geometry_type == "sh/jiading/anting"


async def test_client_channel_forwards_context_principal_and_request_id(probe):
    channel = open_channel(probe.address, default_timeout=2.0)
    tokens = [
        ctx.principal_var.set(principal_of("sh/jiading/anting/xingming", "users/fwd")),
        ctx.request_id_var.set("hop-42"),
    ]
    try:
        layer = await pb_grpc.MapServiceStub(channel).GetLayer(pb.GetLayerRequest(name="who"))
    finally:
        for token in reversed(tokens):
            token.var.reset(token)
        await channel.close()
    assert (layer.name, layer.display_name) == ("users/fwd", "hop-42")
    assert layer.geometry_type == "sh/jiading/anting/xingming"


async def test_invalid_argument_carries_field_violations_and_reason(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetLayer(pb.GetLayerRequest(name="bad"), metadata=metadata())
    failure = failure_of(info.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in failure.violations] == ["name", "other"]
    assert failure.reason == "INVALID_ARGUMENT"
    assert failure.metadata["service"] == "probe"


async def test_not_found_maps_to_status(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetLayer(pb.GetLayerRequest(name="missing"), metadata=metadata())
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unexpected_exception_is_internal_without_details(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetLayer(pb.GetLayerRequest(name="crash"), metadata=metadata())
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret detail" not in info.value.details()
    assert "req-123" in info.value.details()


async def test_methods_not_built_yet_say_so(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListLayers(pb.ListLayersRequest(parent="tenants/sh"), metadata=metadata())
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "ListLayers" in info.value.details()
    assert "a later release" in info.value.details()


async def test_outbound_calls_get_a_default_deadline(probe):
    channel = open_channel(probe.address, default_timeout=0.2)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.MapServiceStub(channel).GetLayer(
                pb.GetLayerRequest(name="slow"), metadata=metadata()
            )
    finally:
        await channel.close()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_metrics_count_calls_by_method_and_code(probe):
    labels = {"grpc_service": SERVICE, "grpc_method": "GetLayer", "grpc_code": "NOT_FOUND"}
    before = REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0
    stub = pb_grpc.MapServiceStub(probe.channel)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetLayer(pb.GetLayerRequest(name="missing"), metadata=metadata())
    assert REGISTRY.get_sample_value("grpc_server_handled_total", labels) == before + 3


async def test_graceful_stop_finishes_in_flight_calls_and_stops_serving(probe):
    stub = pb_grpc.MapServiceStub(probe.channel)
    in_flight = asyncio.ensure_future(
        stub.GetLayer(pb.GetLayerRequest(name="slow"), metadata=metadata())
    )
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(probe.running.stop())
    await asyncio.sleep(0.1)
    status = await probe.running.health.Check(health_pb2.HealthCheckRequest(), None)
    assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
    layer = await in_flight
    assert layer.name == "slow done"
    await stopping
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetLayer(pb.GetLayerRequest(name="who"), metadata=metadata(), timeout=1)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_services_serve_and_call_on_uvloop():
    """run_service's loop: uvloop (the gateway's too); a kit server and client work on it."""
    import uvloop

    from services.kit.server import loop_factory

    assert loop_factory() is uvloop.new_event_loop

    async def round_trip() -> str:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        component = ServiceComponent(
            [(ProbeServicer(), pb_grpc.add_MapServiceServicer_to_server)],
            [SERVICE],
            method_scopes=method_scopes(SERVICE),
        )
        server = await serve_in_process("probe", component)
        try:
            layer = await pb_grpc.MapServiceStub(server.channel).GetLayer(
                pb.GetLayerRequest(name="x"), metadata=metadata()
            )
            return layer.display_name
        finally:
            await server.channel.close()
            await server.running.stop()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        assert runner.run(round_trip()) == "req-123"

"""The gRPC edge for village developers, against a real stack over real sockets.

Developers hold an API key or an access token, never the platform's signing keys;
the edge admits them as REST does and forwards their calls with a signed principal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from devstack.demo_identity import DemoCredentials
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc
from grassroots.type.v1 import geo_pb2
from services.kit.components import COMPONENTS
from services.kit.status import failure_of

REPO = Path(__file__).resolve().parents[2]
XINGMING = "sh/jiading/anting/xingming"
XINGMING_ID = "sh-jiading-anting-xingming"
XIANGYANG_ID = "sh-jiading-anting-xiangyang"
# Every service of every component row, plus the edge's own health and reflection.
PUBLIC_SERVICES = {
    *(name for row in COMPONENTS.values() for name in row.service_names),
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.fixture(scope="module")
def credentials(stack) -> DemoCredentials:
    return DemoCredentials.load(stack.credentials_file)


@pytest.fixture(scope="module")
def village_key(credentials: DemoCredentials) -> str:
    return credentials.app_keys[XINGMING]


@pytest.fixture(scope="module")
def channel(stack):
    with grpc.insecure_channel(stack.config.edge_address) as channel:
        yield channel


def key(value: str) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", value),)


def layer(name: str) -> map_pb.GetLayerRequest:
    return map_pb.GetLayerRequest(name=name)


def test_a_key_reaches_the_map_and_sees_its_own_village(channel, village_key):
    stub = map_grpc.MapServiceStub(channel)
    found = stub.GetLayer(
        layer(f"tenants/{XINGMING_ID}/layers/buildings"), metadata=key(village_key), timeout=10
    )
    assert found.name == f"tenants/{XINGMING_ID}/layers/buildings"
    assert found.feature_count >= 2000
    listed = stub.ListLayers(
        map_pb.ListLayersRequest(parent=f"tenants/{XINGMING_ID}"),
        metadata=key(village_key),
        timeout=10,
    )
    names = {item.name for item in listed.layers}
    assert f"tenants/{XINGMING_ID}/layers/buildings" in names
    assert not any(XIANGYANG_ID in name for name in names)


def test_an_access_token_is_accepted_too(stack, channel, credentials):
    secretary = next(a for a in credentials.accounts if a.username == "xingming.secretary")
    token = httpx.post(
        f"{stack.config.gateway_url}/v1/auth/token",
        data={
            "grant_type": "password",
            "username": secretary.username,
            "password": secretary.password,
        },
        timeout=10,
    ).json()["access_token"]
    found = map_grpc.MapServiceStub(channel).GetLayer(
        layer(f"tenants/{XINGMING_ID}/layers/pois"),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=10,
    )
    assert found.name.endswith("/layers/pois")


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("x-api-key", "grk_nosuchkey_secret"),),
        (("x-api-key", "not-a-key"),),
        (("authorization", "Bearer eyJ.not.a-token"),),
    ],
    ids=["missing", "unknown-key", "malformed-key", "bad-token"],
)
def test_missing_or_bad_credentials_are_unauthenticated(channel, metadata):
    with pytest.raises(grpc.RpcError) as caught:
        map_grpc.MapServiceStub(channel).ListLayers(
            map_pb.ListLayersRequest(parent=f"tenants/{XINGMING_ID}"), metadata=metadata, timeout=10
        )
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_wrong_secret_for_a_real_key_id_is_unauthenticated(channel, village_key):
    forged = village_key[:-4] + ("AAAA" if not village_key.endswith("AAAA") else "BBBB")
    with pytest.raises(grpc.RpcError) as caught:
        map_grpc.MapServiceStub(channel).ListLayers(
            map_pb.ListLayersRequest(parent=f"tenants/{XINGMING_ID}"),
            metadata=key(forged),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_method_outside_the_keys_scopes_is_permission_denied(channel, village_key):
    # The village app holds map:read, not map:write.
    with pytest.raises(grpc.RpcError) as caught:
        map_grpc.MapServiceStub(channel).CreateLayer(
            map_pb.CreateLayerRequest(parent=f"tenants/{XINGMING_ID}", layer_id="wells"),
            metadata=key(village_key),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    failure = failure_of(caught.value)  # type: ignore[arg-type]
    assert "map:write" in failure.message
    assert failure.reason == "MISSING_SCOPE"


def test_the_gateways_own_methods_are_refused(channel, village_key):
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/grassroots.empower.v1.IdentityService/GetJwks")(
            b"", metadata=key(village_key), timeout=10
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_another_villages_layer_is_not_found(channel, village_key):
    with pytest.raises(grpc.RpcError) as caught:
        map_grpc.MapServiceStub(channel).GetLayer(
            layer(f"tenants/{XIANGYANG_ID}/layers/buildings"), metadata=key(village_key), timeout=10
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_bad_input_keeps_the_services_field_violations(channel, village_key):
    with pytest.raises(grpc.RpcError) as caught:
        map_grpc.MapServiceStub(channel).LocatePoints(
            map_pb.LocatePointsRequest(
                parent=f"tenants/{XINGMING_ID}",
                points=geo_pb2.CoordinateArrays(longitudes=[121.16, 121.17], latitudes=[31.29]),
            ),
            metadata=key(village_key),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert failure_of(caught.value).violations  # type: ignore[arg-type]


def test_request_ids_are_kept_and_returned(channel, village_key):
    request_id = f"edge-test-{uuid.uuid4().hex[:8]}"
    _, call = map_grpc.MapServiceStub(channel).ListLayers.with_call(
        map_pb.ListLayersRequest(parent=f"tenants/{XINGMING_ID}"),
        metadata=(*key(village_key), ("x-request-id", request_id)),
        timeout=10,
    )
    assert ("x-request-id", request_id) in tuple(call.trailing_metadata())


def test_over_the_apps_quota_is_resource_exhausted(stack, channel, credentials):
    secretary = next(a for a in credentials.accounts if a.username == "xingming.secretary")
    gateway = stack.config.gateway_url
    token = httpx.post(
        f"{gateway}/v1/auth/token",
        data={
            "grant_type": "password",
            "username": secretary.username,
            "password": secretary.password,
        },
        timeout=10,
    ).json()["access_token"]
    created = httpx.post(
        f"{gateway}/v1/tenants/{XINGMING_ID}/apps",
        headers={"Authorization": f"Bearer {token}"},
        json={"display_name": "Slow app", "scopes": ["map:read"], "quota_per_minute": 6},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    slow_key = created.json()["key"]
    stub = map_grpc.MapServiceStub(channel)
    codes = []
    for _ in range(8):  # a burst of five is allowed, then one call every ten seconds
        try:
            stub.ListLayers(
                map_pb.ListLayersRequest(parent=f"tenants/{XINGMING_ID}"),
                metadata=key(slow_key),
                timeout=10,
            )
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
            if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                retry_after = dict(exc.trailing_metadata())["retry-after"]
                assert int(retry_after) >= 1
    assert codes[:5] == [grpc.StatusCode.OK] * 5
    assert codes[5:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3


def test_server_streaming_is_forwarded(channel, village_key):
    events = events_grpc.EventsServiceStub(channel)
    created = events.CreateEvent(
        events_pb.CreateEventRequest(
            parent=f"tenants/{XINGMING_ID}",
            event=events_pb.Event(
                category="environment.garbage",
                description="Bins overflowing by the bridge",
                location=geo_pb2.GeoPoint(longitude=121.1605, latitude=31.2905),
            ),
            request_id=f"edge-{uuid.uuid4().hex}",
        ),
        metadata=key(village_key),
        timeout=10,
    )
    stream = events.WatchEvents(
        events_pb.WatchEventsRequest(parent=f"tenants/{XINGMING_ID}", after_offset=0),
        metadata=key(village_key),
        timeout=15,
    )
    seen = []
    for change in stream:
        seen.append(change.event.name)
        if change.event.name == created.name:
            break
    stream.cancel()
    assert created.name in seen


def test_reflection_lists_the_public_services(channel):
    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == PUBLIC_SERVICES


def test_the_edge_reports_its_health(channel):
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="grassroots.map.v1.MapService"), timeout=5
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def _cli(stack, *args: str, api_key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GRASSROOTS_API_KEY"}
    env["GRASSROOTS_EDGE_ADDRESS"] = stack.config.edge_address
    if api_key is not None:
        env["GRASSROOTS_API_KEY"] = api_key
    return subprocess.run(
        [sys.executable, "-m", "services.map.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_exports_through_the_edge_with_a_key(stack, tmp_path, village_key):
    out = tmp_path / "pois.geojson"
    done = _cli(
        stack, "export", f"tenants/{XINGMING_ID}/layers/pois", str(out), api_key=village_key
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("{") and '"Feature"' in out.read_text()


@pytest.mark.parametrize("where", ["after", "before"])
def test_the_cli_takes_its_key_before_or_after_the_command(stack, tmp_path, village_key, where):
    """As README shows it (`export LAYER FILE --api-key K`), and the other way round."""
    out = tmp_path / "pois.geojson"
    command = ["export", f"tenants/{XINGMING_ID}/layers/pois", str(out)]
    key = ["--api-key", village_key, "--address", stack.config.edge_address]
    args = [*command, *key] if where == "after" else [*key, *command]
    done = _cli(stack, *args, api_key=None)
    assert done.returncode == 0, done.stderr
    assert '"Feature"' in out.read_text()


@pytest.mark.parametrize(
    ("api_key", "expected"),
    [(None, "no API key"), ("grk_nosuchkey_secret", "UNAUTHENTICATED")],
    ids=["missing", "refused"],
)
def test_the_cli_explains_a_missing_or_refused_key_in_one_line(stack, tmp_path, api_key, expected):
    done = _cli(
        stack,
        "export",
        f"tenants/{XINGMING_ID}/layers/pois",
        str(tmp_path / "x.geojson"),
        api_key=api_key,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert not (tmp_path / "x.geojson").exists()


def test_the_readmes_python_example_runs_against_the_edge(stack, village_key):
    readme = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    example = next(b for b in blocks if "x-api-key" in b)
    env = {**os.environ, "GRASSROOTS_API_KEY": village_key}
    env["GRASSROOTS_EDGE_ADDRESS"] = stack.config.edge_address
    done = subprocess.run(
        [sys.executable, "-c", example],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    name, count = done.stdout.strip().rsplit(" ", 1)
    assert name and int(count) >= 2000

"""The sync client against a running platform: keys, sign-in and refresh, pages, retries
on a real rate limit, idempotent creates, resuming the events stream, errors."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from conftest import XINGMING, XINGMING_ID, Platform
from grassroots_sdk import (
    NO_RETRY,
    AuthError,
    BadRequest,
    Client,
    NotFound,
    PermissionDenied,
    RateLimited,
    Retry,
)
from grassroots_sdk.edge import edge_channel

from grassroots.map.v1 import map_service_pb2 as map_pb
from grassroots.map.v1 import map_service_pb2_grpc as map_grpc

SCHOOL_GATE = (121.1590, 31.2890)


def report(client: Client, description: str, **extra: object):
    lon, lat = SCHOOL_GATE
    return client.events.create("roads.damage", description, lon, lat, **extra)


def test_an_app_key_finds_its_own_village(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.village_key) as client:
        me = client.me()
        assert me.tenant == XINGMING and "events:write" in me.scopes
        assert client.tenant == XINGMING_ID
        # A category no other test reports, so it is no one's duplicate.
        event = client.events.create("public.facility", "Broken bench", 121.1612, 31.2911)
        assert event.tenant == XINGMING_ID and event.state == "reported"
        assert event.grid_cell.startswith("xingming-")
        assert client.events.get(event.id).id == event.id
        assert client.events.get(event.name).id == event.id  # by resource name too


def test_sign_in_refreshes_before_expiry_and_after_a_refused_token(platform: Platform) -> None:
    with Client(
        platform.url,
        username="xingming.secretary",
        password=platform.password("xingming.secretary"),
    ) as client:
        assert client.me().kind == "user"
        session = client.session
        assert session is not None and session.refresh_token
        first_refresh = session.refresh_token

        session.expires_at = time.monotonic()  # about to expire: the next call refreshes
        assert client.me().subject
        assert session.refreshes == 1
        assert session.refresh_token and session.refresh_token != first_refresh  # rotated

        session.access_token = "not-a-token"  # the gateway answers 401: refresh, try again
        assert client.me().tenant == XINGMING
        assert session.refreshes == 2

        # The rotated token works on its own, in a client that never saw the password.
        with Client(platform.url, refresh_token=session.refresh_token) as other:
            assert other.me().tenant == XINGMING
        client.sign_out()
        assert session.access_token is None


def test_threads_share_one_refresh(platform: Platform) -> None:
    """A refresh token works once: eight threads needing a fresh token make one refresh."""
    with Client(
        platform.url,
        username="xingming.secretary",
        password=platform.password("xingming.secretary"),
    ) as client:
        client.sign_in()
        session = client.session
        assert session is not None
        session.expires_at = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            tenants = list(pool.map(lambda _: client.me().tenant, range(8)))
        assert tenants == [XINGMING] * 8
        assert session.refreshes == 1


def test_a_wrong_password_is_an_auth_error_in_oauth_terms(platform: Platform) -> None:
    client = Client(platform.url, username="xingming.secretary", password="wrong-password")
    with client, pytest.raises(AuthError) as caught:
        client.me()
    assert caught.value.status == 400
    assert caught.value.code == "invalid_grant"


def test_pages_follow_next_page_token_without_repeats(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.village_key) as client:
        made = {report(client, f"Paging check {n}").id for n in range(5)}
        first = client.events.list(page_size=2, q="Paging")
        assert len(first.items) == 2 and first.next_page_token
        seen = [event.id for event in client.events.iterate(page_size=2, q="Paging")]
        assert len(seen) == len(set(seen))
        assert made <= set(seen)


def test_the_same_key_twice_makes_one_event(platform: Platform) -> None:
    key = f"sdk-test-{uuid.uuid4()}"
    with Client(platform.url, api_key=platform.village_key) as client:
        first = report(client, "Streetlight out at the bridge", request_id=key)
        again = report(client, "Streetlight out at the bridge", request_id=key)
        assert again.id == first.id
        found = client.events.list(q="Streetlight out at the bridge", page_size=10).items
        assert [e.id for e in found] == [first.id]


def test_creates_without_a_key_get_one_that_replays(platform: Platform) -> None:
    """Layers have no request_id in their contract: the gateway keeps the first answer
    under the Idempotency-Key the SDK sends."""
    with Client(platform.url, api_key=platform.town_key) as client:
        call = client.layers.create  # a plain create makes its own key each time
        layer_id = f"sdk-{uuid.uuid4().hex[:8]}"
        made = call(layer_id, "Bus stops", "poi", "Point")
        assert made.layer_id == layer_id
        from grassroots_sdk import ops

        key = str(uuid.uuid4())
        repeated = ops.create_layer(f"{layer_id}-b", "Bus stops B", "poi", "Point")
        repeated.idempotency_key = key
        first = client.run(repeated)
        second = client.run(repeated)  # a replay, not 409 ALREADY_EXISTS
        assert second.name == first.name


def _app_with_quota(platform: Platform, quota: int) -> str:
    admin = {"Authorization": f"Bearer {platform.token('district.it')}"}
    answer = httpx.post(
        f"{platform.url}/v1/tenants/{XINGMING_ID}/apps",
        headers=admin,
        json={
            "display_name": "SDK rate test",
            "scopes": ["events:read"],
            "quota_per_minute": quota,
        },
    )
    answer.raise_for_status()
    return str(answer.json()["key"])


def test_a_real_rate_limit_is_waited_out_as_retry_after_says(platform: Platform) -> None:
    key = _app_with_quota(platform, 60)  # a burst of 10, then one a second
    notices = []
    with Client(platform.url, api_key=key, tenant=XINGMING, on_retry=notices.append) as client:
        for _ in range(14):
            client.events.list(page_size=1)
    assert notices, "the burst never met the limit"
    assert {n.status for n in notices} == {429}
    assert all(1 <= n.delay <= 10 for n in notices)  # the gateway's Retry-After, in seconds

    client = Client(platform.url, api_key=key, tenant=XINGMING, retry=NO_RETRY)
    with client, pytest.raises(RateLimited) as caught:
        for _ in range(30):
            client.events.list(page_size=1)
    assert caught.value.status == 429 and caught.value.retry_after and caught.value.request_id


def test_a_stream_resumes_after_its_last_event_id(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.village_key) as client:
        one = report(client, "Resume check one")
        two = report(client, "Resume check two")

        stream = client.events.stream(last_event_id="0")
        for change in stream:
            if change.event.id == one.id:
                break
        resume_at = stream.last_event_id
        stream.close()
        assert resume_at is not None and int(resume_at) > 0

        later = client.events.stream(last_event_id=resume_at)
        following = next(iter(later))
        later.close()
    assert following.offset > int(resume_at)
    assert following.event.id == two.id and following.type == "event.reported"


def test_errors_carry_status_field_and_request_id(platform: Platform) -> None:
    with Client(platform.url, api_key=platform.village_key, retry=Retry(attempts=1)) as client:
        with pytest.raises(BadRequest) as bad:
            client.events.create("roads.damage", "Nowhere", 121.16, 95.0)
        with pytest.raises(NotFound) as missing:
            client.events.get("ev_01kbnothere000000000000000")
        with pytest.raises(PermissionDenied) as denied:  # the village app lacks map:write
            client.layers.create("not-allowed", "No", "poi", "Point")
    assert bad.value.status == 400 and bad.value.code == "INVALID_ARGUMENT"
    assert bad.value.field == "location.latitude"
    assert bad.value.request_id
    assert "location.latitude" in str(bad.value) and bad.value.request_id in str(bad.value)
    assert missing.value.status == 404 and missing.value.request_id
    assert denied.value.status == 403


def test_the_edge_helper_sends_the_key_with_every_call(platform: Platform) -> None:
    request = map_pb.GetLayerRequest(name=f"tenants/{XINGMING_ID}/layers/buildings")
    with edge_channel(platform.edge, api_key=platform.village_key) as channel:
        layer = map_grpc.MapServiceStub(channel).GetLayer(request, timeout=10)
    assert layer.feature_count > 0
    channel = edge_channel(platform.edge, api_key="grk_nobody_nothing")
    with channel, pytest.raises(grpc.RpcError) as refused:
        map_grpc.MapServiceStub(channel).GetLayer(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

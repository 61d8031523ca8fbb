"""Revoking an API key or disabling a user takes effect at once, or within seconds."""

from __future__ import annotations

import secrets
import time

from security_world import A, anonymous_post, create_app, expect, revoke

POLL_SECONDS = 0.2
DEADLINE_SECONDS = 5.0


def test_a_revoked_key_is_refused_within_five_seconds(world):
    client = world.client
    app = create_app(client, world.a_super, A, ["events:read"], name="Revoked while in use")
    world.remember(app.key)
    # In use, so every cache on the way knows it as a good key.
    for _ in range(3):
        assert (
            client.get(
                f"/v1/tenants/{A}/events", params={"page_size": 1}, headers=app.headers
            ).status_code
            == 200
        )

    started = time.monotonic()
    record = expect(revoke(client, world.a_super, A, app), 200)
    assert record["revoked"] is True and record["revoke_time"]
    while True:
        response = client.get(
            f"/v1/tenants/{A}/events", params={"page_size": 1}, headers=app.headers
        )
        elapsed = time.monotonic() - started
        if response.status_code == 401:
            break
        assert response.status_code == 200, response.text
        assert elapsed < DEADLINE_SECONDS, f"the revoked key still works after {elapsed:.1f} s"
        time.sleep(POLL_SECONDS)
    print(f"\nrevoked API key refused after {elapsed:.2f} s")
    assert elapsed < DEADLINE_SECONDS
    assert "www-authenticate" in response.headers
    # And it stays refused, on every route.
    for path in ("/v1/me", f"/v1/tenants/{A}/events", "/open311/v2/requests.json"):
        assert client.get(path, headers=app.headers).status_code == 401
    keys = expect(
        client.get(f"/v1/tenants/{A}/apps/{app.app_id}/apiKeys", headers=world.a_super.headers), 200
    )
    assert [k["revoked"] for k in keys["api_keys"]] == [True]


def test_a_rotated_key_replaces_the_old_one_without_a_gap(world):
    client, admin = world.client, world.a_super
    app = create_app(client, admin, A, ["events:read"], name="Rotated")
    issued = expect(
        client.post(f"/v1/tenants/{A}/apps/{app.app_id}/apiKeys", headers=admin.headers), 201
    )
    new_key = issued["key"]
    world.remember(app.key, new_key)
    assert issued["api_key"]["id"] != app.key_id
    assert client.get("/v1/me", headers={"X-API-Key": new_key}).status_code == 200
    assert client.get("/v1/me", headers=app.headers).status_code == 200
    expect(revoke(client, admin, A, app), 200)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while client.get("/v1/me", headers=app.headers).status_code != 401:
        assert time.monotonic() < deadline, "the old key still works"
        time.sleep(POLL_SECONDS)
    assert client.get("/v1/me", headers={"X-API-Key": new_key}).status_code == 200
    listed = expect(
        client.get(f"/v1/tenants/{A}/apps/{app.app_id}/apiKeys", headers=admin.headers), 200
    )
    # Records only: no secret, no hash.
    assert all(
        set(k) == {"id", "name", "key_id", "revoked", "create_time", "revoke_time"}
        for k in listed["api_keys"]
    )


def test_a_disabled_user_can_neither_sign_in_nor_refresh(world):
    client, admin = world.client, world.a_super
    password = secrets.token_urlsafe(18)
    username = f"leaver.{secrets.token_hex(3)}"
    world.remember(password)
    user = expect(
        client.post(
            f"/v1/tenants/{A}/users",
            json={
                "username": username,
                "display_name": "Leaving grid worker",
                "kind": "grid_worker",
                "roles": ["grid_worker"],
                "password": password,
            },
            headers=admin.headers,
        ),
        201,
    )
    signed_in = world.login(username, password)
    expect(client.post(f"/v1/tenants/{A}/users/{user['id']}:disable", headers=admin.headers), 200)
    refreshed = anonymous_post(
        client,
        "/v1/auth/token",
        {"grant_type": "refresh_token", "refresh_token": signed_in.refresh_token},
    )
    # RFC 6749: refused grants are invalid_grant (400), not the platform's 401.
    assert refreshed.status_code == 400, refreshed.text
    assert refreshed.json()["error"] == "invalid_grant", refreshed.text
    again = anonymous_post(
        client,
        "/v1/auth/token",
        {"grant_type": "password", "username": username, "password": signed_in.password},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text

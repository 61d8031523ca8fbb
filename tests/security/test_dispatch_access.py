"""Who sees dispatch data, through the gateway: a volunteer holding command:read listed
every task (event, category, place) and every handler with a live position. Now a
handler without command:write sees the tasks they hold and their own profile only;
the board is the dispatchers'."""

from __future__ import annotations

import secrets

from security_world import A, Account, World, expect, login


def _volunteer(world: World) -> Account:
    username = f"volunteer.{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    world.remember(password)
    expect(
        world.client.post(
            f"/v1/tenants/{A}/users",
            json={
                "username": username,
                "display_name": "Security suite volunteer",
                "kind": "volunteer",
                "roles": ["volunteer"],
                "password": password,
            },
            headers=world.a_super.headers,
        ),
        201,
    )
    account = login(world.client, username, password)
    world.remember(account.password, account.access_token, account.refresh_token)
    return account


def test_a_volunteer_sees_only_their_own_tasks_and_profile_and_no_board(world):
    client, base = world.client, f"/v1/tenants/{A}"
    volunteer = _volunteer(world)
    subject = expect(client.get("/v1/me", headers=volunteer.headers), 200)["subject"]
    every = expect(
        client.get(f"{base}/tasks", params={"page_size": 100}, headers=world.a_super.headers), 200
    )["tasks"]
    assert every, "the world's village has tasks"
    seen = expect(
        client.get(f"{base}/tasks", params={"page_size": 100}, headers=volunteer.headers), 200
    )["tasks"]
    assert all(t["handler"] == subject for t in seen)
    other = next(t for t in every if t["handler"] != subject)
    assert client.get(f"{base}/tasks/{other['id']}", headers=volunteer.headers).status_code == 404
    handlers = expect(
        client.get(f"{base}/handlers", params={"page_size": 1000}, headers=volunteer.headers),
        200,
    )["handlers"]
    assert all(h["user"] == subject for h in handlers)
    assert client.get(f"{base}/commandBoard", headers=volunteer.headers).status_code == 403
    assert client.get(f"{base}/commandBoard", headers=world.a_super.headers).status_code == 200

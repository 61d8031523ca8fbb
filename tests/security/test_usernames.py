"""Usernames are unique per tenant node (issue 11, item 5).

The probe: Xingming's secretary creating `district.it` or `xiangyang.secretary` got
`409 the username 'district.it' is taken`, so any secretary could list the accounts of
the whole platform. Now a name taken at another node is free at this one, and sign-in
with a bare name still picks the one account whose password matches; `name@tenant-id`
or the `tenant` field names the node outright.
"""

from __future__ import annotations

import secrets

from security_world import A, World, anonymous_post


def _create(world: World, username: str, password: str) -> dict:
    body = {
        "username": username,
        "display_name": "Same name, another node",
        "kind": "staff",
        "roles": ["grid_worker"],
        "password": password,
    }
    return world.client.post(f"/v1/tenants/{A}/users", json=body, headers=world.a_secretary.headers)


def test_a_name_taken_at_another_node_is_not_revealed_and_sign_in_stays_unambiguous(world):
    password = secrets.token_urlsafe(18)
    world.remember(password)
    made = []
    try:
        for name in ("district.it", "xiangyang.secretary"):
            answer = _create(world, name, password)
            assert answer.status_code == 201, answer.text
            assert "taken" not in answer.text
            made.append(answer.json())
        # Taken at the secretary's own node: that may be said (the secretary lists it).
        again = _create(world, "district.it", password)
        assert again.status_code == 409 and "sh-jiading-anting-xingming" in again.text
        # The district's own district.it still signs in with the bare name: only its
        # password matches one of the two accounts.
        it = world.demo.account("district.it")
        form = {"grant_type": "password", "username": it.username, "password": it.password}
        signed_in = anonymous_post(world.client, "/v1/auth/token", form)
        assert signed_in.status_code == 200, signed_in.text
        world.remember(signed_in.json()["access_token"], signed_in.json()["refresh_token"])
        me = world.client.get(
            "/v1/me", headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        ).json()
        assert me["tenant"] == "sh/jiading" and me["roles"] == ["district_admin"]
        # Naming the node, with `@tenant-id` or the `tenant` field, reaches the other one.
        for fields in (
            {"username": f"district.it@{A}"},
            {"username": "district.it", "tenant": A},
        ):
            form = {"grant_type": "password", "password": password, **fields}
            other = anonymous_post(world.client, "/v1/auth/token", form)
            assert other.status_code == 200, other.text
            # The secretary set that password: it only lets the account change it.
            assert other.json()["password_change_required"] is True
            world.remember(other.json()["access_token"])
    finally:
        for user in made:
            world.client.delete(
                f"/v1/tenants/{A}/users/{user['id']}", headers=world.a_secretary.headers
            )

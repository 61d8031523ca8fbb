"""A recipient reads their own in-app notices and gives read receipts over REST; a
notice to one village's grid workers never reaches another village's."""

from __future__ import annotations

import secrets
import time

from security_world import A, B, World, expect


def _grid_worker(world: World, tenant: str, username: str, admin_headers: dict[str, str]):
    password = secrets.token_urlsafe(18)
    world.remember(password)
    expect(
        world.client.post(
            f"/v1/tenants/{tenant}/users",
            json={
                "username": username,
                "display_name": f"Grid worker {username}",
                "kind": "staff",
                "roles": ["grid_worker"],
                "password": password,
            },
            headers=admin_headers,
        ),
        201,
    )
    return world.login(username, password)


def test_a_grid_worker_reads_the_notice_to_their_role_and_marks_it_read(world: World) -> None:
    mine = _grid_worker(world, A, "xingming.notice-reader", world.a_super.headers)
    other = _grid_worker(world, B, "xiangyang.notice-reader", world.b_super.headers)
    notice = expect(
        world.client.post(
            f"/v1/tenants/{A}/notices",
            json={
                "title": "Hydrant check",
                "body": "Check the hydrants in your cells by Friday",
                "audience": {"role": "grid_worker"},
                "request_id": "my-notices-role-1",
            },
            headers=world.a_super.headers,
        ),
        201,
    )
    # The in-app channel hands it over in the background; the list shows it from the start.
    deadline = time.monotonic() + 60
    while True:
        listed = world.client.get("/v1/me/notices", headers=mine.headers)
        assert listed.status_code == 200, listed.text
        found = [n for n in listed.json()["notices"] if n["notice"] == notice["name"]]
        assert len(found) == 1, listed.text
        delivery = found[0]
        if delivery["state"] == "delivered" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert delivery["state"] == "delivered", delivery
    assert delivery["title"] == "Hydrant check"
    assert delivery["body"].startswith("Check the hydrants")
    assert delivery["recipient"] == mine.subject
    assert delivery["read_time"] is None
    theirs = world.client.get("/v1/me/notices", headers=other.headers)
    assert theirs.status_code == 200, theirs.text
    assert notice["name"] not in {n["notice"] for n in theirs.json()["notices"]}
    # Only the recipient gives a read receipt: another village's worker learns nothing.
    url = f"/v1/{delivery['name']}:markRead"
    refused = world.client.post(url, headers=other.headers)
    assert refused.status_code == 404, refused.text
    marked = world.client.post(url, headers=mine.headers)
    assert marked.status_code == 200, marked.text
    assert marked.json()["read_time"] is not None
    again = world.client.get("/v1/me/notices", headers=mine.headers).json()["notices"]
    assert [n["read_time"] for n in again if n["notice"] == notice["name"]] != [None]


def test_my_notices_take_no_tenant_and_refuse_unknown_page_sizes(world: World) -> None:
    response = world.client.get(
        "/v1/me/notices", params={"page_size": 0}, headers=world.a_super.headers
    )
    assert response.status_code == 400, response.text
    assert "page_size" in response.text

"""Who sees dispatch data, through the gateway: a volunteer holding command:read listed
every task (event, category, place) and every handler with a live position. Now a
handler without command:write sees the tasks they hold and their own profile only;
the board is the dispatchers'. Service plans, orders and the command log (who visits
which resident living alone, where and when) follow the same rule, and a plan names
only carers identity knows."""

from __future__ import annotations

import secrets
import time

from security_world import A, Account, World, expect, login, service_plan_body


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


def _plan_with_an_order(world: World) -> tuple[str, str]:
    """A service plan of village A for its staff account, and the first order it makes."""
    client, base = world.client, f"/v1/tenants/{A}"
    plan = expect(
        client.post(
            f"{base}/servicePlans",
            json=service_plan_body(world.a.point, world.a_super.subject),
            headers=world.a_super.headers,
        ),
        201,
    )["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        orders = expect(
            client.get(
                f"{base}/serviceOrders",
                params={"service_plan": plan},
                headers=world.a_super.headers,
            ),
            200,
        )["service_orders"]
        if orders:
            return plan, orders[0]["id"]
        time.sleep(0.2)
    raise AssertionError("the command service made no service order for village A in 30 s")


def test_a_volunteer_reads_no_service_plan_no_others_order_and_no_command_log(world):
    client, base = world.client, f"/v1/tenants/{A}"
    volunteer = _volunteer(world)
    plan, order = _plan_with_an_order(world)
    plans = expect(client.get(f"{base}/servicePlans", headers=volunteer.headers), 200)
    assert plans["service_plans"] == []
    assert client.get(f"{base}/servicePlans/{plan}", headers=volunteer.headers).status_code == 404
    orders = expect(client.get(f"{base}/serviceOrders", headers=volunteer.headers), 200)
    assert orders["service_orders"] == []
    asked = expect(
        client.get(
            f"{base}/serviceOrders",
            params={"handler": world.a_super.subject},
            headers=volunteer.headers,
        ),
        200,
    )
    assert asked["service_orders"] == []
    assert client.get(f"{base}/serviceOrders/{order}", headers=volunteer.headers).status_code == 404
    log = client.get(f"{base}/commandLogEntries", headers=volunteer.headers)
    assert log.status_code == 403 and "DISPATCHERS_ONLY" in log.text
    # Someone else's visit stays a 403 to check in to, as before.
    checked = client.post(
        f"{base}/serviceOrders/{order}:checkIn",
        json={"location": {"longitude": world.a.point[0], "latitude": world.a.point[1]}},
        headers=volunteer.headers,
    )
    assert checked.status_code == 403
    # The level banner stays readable; the village's staff read everything.
    assert client.get(f"{base}/emergencyPlans", headers=volunteer.headers).status_code == 200
    staff = world.a_super.headers
    assert client.get(f"{base}/servicePlans/{plan}", headers=staff).status_code == 200
    assert client.get(f"{base}/serviceOrders/{order}", headers=staff).status_code == 200
    assert client.get(f"{base}/commandLogEntries", headers=staff).status_code == 200


def test_a_service_plan_names_only_carers_identity_knows(world):
    body = service_plan_body(world.a.point, world.a_super.subject)
    body["carers"] = ["users/nobody", "bogus"]
    response = world.client.post(
        f"/v1/tenants/{A}/servicePlans", json=body, headers=world.a_super.headers
    )
    assert response.status_code == 400, response.text
    assert "service_plan.carers[0]" in response.text
    assert "service_plan.carers[1]" in response.text

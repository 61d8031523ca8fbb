"""Who sees and moves events, through the gateway: the probe's findings, reproduced.

A resident listed every village event and moved another person's report; a village
app key rejected a grid worker's finding. Here each of those is refused, and Open311
reads are public only for public categories, without personal fields.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from security_world import (
    VILLAGE_A,
    A,
    Account,
    World,
    anonymous_get,
    expect,
    login,
    report_event,
)

BASE = "/open311/v2"


def _user(world: World, role: str, kind: str) -> Account:
    username = f"{role.replace('_', '.')}.{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    world.remember(password)
    expect(
        world.client.post(
            f"/v1/tenants/{A}/users",
            json={
                "username": username,
                "display_name": f"Security suite {role}",
                "kind": kind,
                "roles": [role],
                "password": password,
            },
            headers=world.a_super.headers,
        ),
        201,
    )
    account = login(world.client, username, password)
    world.remember(account.password, account.access_token, account.refresh_token)
    return account


@pytest.fixture(scope="module")
def people(world: World) -> dict[str, Account]:
    return {
        "resident": _user(world, "resident", "resident"),
        "neighbour": _user(world, "resident", "resident"),
        "grid_worker": _user(world, "grid_worker", "grid_worker"),
    }


def _move(world: World, headers: dict[str, str], event_id: str, state: str) -> httpx.Response:
    return world.client.post(
        f"/v1/tenants/{A}/events/{event_id}:transition", json={"state": state}, headers=headers
    )


def test_a_resident_sees_and_moves_only_their_own_reports(world, people):
    resident, neighbour = people["resident"], people["neighbour"]
    mine = report_event(world.client, resident, world.a.point, "public.facility", "my bench")
    theirs = report_event(world.client, neighbour, world.a.point, "roads.damage", "their road")
    listed = expect(
        world.client.get(
            f"/v1/tenants/{A}/events", params={"page_size": 1000}, headers=resident.headers
        ),
        200,
    )
    assert {e["id"] for e in listed["events"]} == {mine}
    for event_id in (theirs, world.a.event_id):
        got = world.client.get(f"/v1/tenants/{A}/events/{event_id}", headers=resident.headers)
        assert got.status_code == 404
        assert got.json()["error"]["status"] == "NOT_FOUND"
        for state in ("rejected", "accepted"):
            assert _move(world, resident.headers, event_id, state).status_code == 404
    # Their own report: no handler's or staff's moves, but they may withdraw it.
    assert _move(world, resident.headers, mine, "accepted").status_code == 403
    assert _move(world, resident.headers, mine, "rejected").status_code == 403
    own = world.client.get(f"/v1/tenants/{A}/events/{mine}", headers=resident.headers)
    assert own.status_code == 200
    withdrawn = expect(_move(world, resident.headers, mine, "withdrawn"), 200)
    assert withdrawn["state"] == "withdrawn"


def test_a_village_app_key_cannot_reject_a_grid_workers_finding(world, people):
    finding = report_event(
        world.client, people["grid_worker"], world.a.point, "environment.living", "patrol"
    )
    village_key = {"X-API-Key": world.demo.app_keys[VILLAGE_A]}
    refused = _move(world, village_key, finding, "rejected")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
    # The grid worker handles; only staff reject.
    assert _move(world, people["grid_worker"].headers, finding, "rejected").status_code == 403
    accepted = expect(_move(world, people["grid_worker"].headers, finding, "accepted"), 200)
    assert accepted["state"] == "accepted"
    rejected = expect(_move(world, world.a_secretary.headers, finding, "rejected"), 200)
    assert rejected["state"] == "rejected"


def test_only_staff_correct_an_events_category_over_rest_and_bad_fields_are_named(world, people):
    resident = people["resident"]
    mine = report_event(world.client, resident, world.a.point, "public.facility", "a hole")
    url = f"/v1/tenants/{A}/events/{mine}"
    fix = {"category": "roads.damage", "note": "a pothole, not a facility"}
    for who in (resident, people["grid_worker"]):
        refused = world.client.patch(url, json=fix, headers=who.headers)
        assert refused.status_code == 403, refused.text
    staff = world.a_secretary.headers
    unknown = world.client.patch(url, json={"category": "no.such"}, headers=staff)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["field_violations"][0]["field"] == "category"
    empty = world.client.patch(url, json={"note": "nothing named"}, headers=staff)
    assert empty.status_code == 400
    assert empty.json()["error"]["field_violations"][0]["field"] == "update_mask"
    fixed = expect(world.client.patch(url, json=fix, headers=staff), 200)
    assert fixed["category"] == "roads.damage"
    assert fixed["state"] == "reported"
    assert fixed["timeline"][-1]["note"].startswith("category public.facility -> roads.damage")
    stale = world.client.patch(url, json={**fix, "etag": "old"}, headers=staff)
    assert stale.status_code == 409


def test_open311_reads_are_public_for_public_categories_only(world):
    listed = expect(anonymous_get(world.client, f"{BASE}/requests.json"), 200)
    ids = {r["service_request_id"] for r in listed}
    assert world.a.event_id in ids  # environment.garbage is public
    assert world.b.event_id not in ids  # village B's own category is not
    one = anonymous_get(world.client, f"{BASE}/requests/{world.b.event_id}.json")
    assert one.status_code == 404
    assert one.json()[0]["code"] == 404
    [public] = expect(anonymous_get(world.client, f"{BASE}/requests/{world.a.event_id}.json"), 200)
    assert public["service_request_id"] == world.a.event_id
    # The platform's own API stays closed without credentials.
    assert (
        anonymous_get(world.client, f"/v1/tenants/{A}/events/{world.a.event_id}").status_code == 401
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_refusals_use_the_open311_error_shape(world, fmt):
    bad = world.client.get(f"{BASE}/requests.{fmt}", headers={"X-API-Key": "grk_bad_bad"})
    assert bad.status_code == 401
    scopeless = world.client.get(f"{BASE}/requests.{fmt}", headers=world.scopeless.headers)
    assert scopeless.status_code == 403
    for response, code in ((bad, 401), (scopeless, 403)):
        if fmt == "json":
            [error] = response.json()
            assert error["code"] == code and error["description"]
        else:
            assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<errors>')
            assert f"<code>{code}</code>" in response.text

"""Reports without an account (ADR 35): only where a village allows them, limited per
address and per village, followed only by the receipt, and nothing personal answered.

Runs late (conftest.LAST_MODULES): its last test spends the address's hourly bucket.
"""

from __future__ import annotations

import json
import secrets

from security_world import (
    ANONYMOUS_REPORTS_PER_HOUR,
    PNG_BYTES,
    A,
    B,
    World,
    allow_anonymous_reports,
    expect,
    passerby_post,
    photo_anonymously,
    report_anonymously,
    resolve_event,
)

PERSONAL = ("reporter_contact", "grid_worker")


def test_a_village_that_has_not_allowed_it_takes_nothing(world: World):
    b_point = world.b.point
    before = expect(
        world.client.get(f"/v1/tenants/{B}/events", headers=world.b_super.headers), 200
    )["events"]
    refused = report_anonymously(world.client, b_point, tenant=B)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["reason"] == "ANONYMOUS_REPORTS_OFF"
    # Reporting to the town does not route around it: the place decides the village.
    through_town = report_anonymously(world.client, b_point, tenant="sh-jiading-anting")
    assert through_town.status_code == 403, through_town.text
    after = expect(world.client.get(f"/v1/tenants/{B}/events", headers=world.b_super.headers), 200)[
        "events"
    ]
    assert [e["id"] for e in after] == [e["id"] for e in before]


def test_only_a_villages_own_staff_change_its_settings(world: World):
    body = {"anonymous_reports": True, "anonymous_reports_per_hour": 1000}
    for who in (world.a_super, world.auditor):
        answer = world.client.patch(
            f"/v1/tenants/{B}/intakeSettings", json=body, headers=who.headers
        )
        assert answer.status_code in (403, 404), answer.text
    off = expect(
        world.client.get(f"/v1/tenants/{B}/intakeSettings", headers=world.b_super.headers), 200
    )
    assert off["anonymous_reports"] is False
    nobody = world.client.patch(f"/v1/tenants/{A}/intakeSettings", json=body)
    assert nobody.status_code == 401


def test_the_answer_names_nobody_and_the_passer_by_sets_nothing_else(world: World):
    allow_anonymous_reports(world)
    for field, value in (
        ("reporter_contact", "13800138000"),
        ("severity", 5),
        ("source", "twin_rule"),
    ):
        wrong = report_anonymously(world.client, world.a.point, **{field: value})
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["error"]["field_violations"][0]["field"] == field
    short = report_anonymously(world.client, world.a.point, request_id="short")
    assert short.status_code == 400
    assert short.json()["error"]["field_violations"][0]["field"] == "request_id"

    made = expect(report_anonymously(world.client, world.a.point), 200)
    event = made["event"]
    assert made["receipt"].startswith(event["id"] + ".")
    assert all(event[f] == "" for f in PERSONAL)
    assert all(t["actor"] == "" for t in event["timeline"]) and event["comments"] == []
    # Staff of the village see the report, reported by no one they could name.
    seen = expect(
        world.client.get(
            f"/v1/tenants/{A}/events/{event['id']}", headers=world.a_secretary.headers
        ),
        200,
    )
    assert seen["timeline"][0]["actor"].startswith("anonymous:")
    assert made["receipt"].split(".", 1)[1] not in seen["timeline"][0]["actor"]


def test_only_the_receipt_follows_and_rates_and_only_under_its_village(world: World):
    allow_anonymous_reports(world)
    made = expect(report_anonymously(world.client, world.a.point), 200)
    receipt, event_id = made["receipt"], made["event"]["id"]
    follow = f"/v1/tenants/{A}/events:followReceipt"
    assert expect(passerby_post(world.client, follow, {"receipt": receipt}), 200)["receipt"] is None

    guessed = f"{event_id}.{secrets.token_urlsafe(24)}"
    for wrong in (guessed, receipt[:-1] + ("A" if receipt[-1] != "A" else "B")):
        answer = passerby_post(world.client, follow, {"receipt": wrong})
        assert answer.status_code == 404, answer.text
    under_b = passerby_post(
        world.client, f"/v1/tenants/{B}/events:followReceipt", {"receipt": receipt}
    )
    assert under_b.status_code == 404
    # The event's id alone reads nothing: public reads show no reporter either way.
    assert world.client.get(f"/v1/tenants/{A}/events/{event_id}").status_code == 401

    rate = f"/v1/tenants/{A}/events:evaluateReceipt"
    early = passerby_post(world.client, rate, {"receipt": receipt, "score": 5})
    assert early.status_code == 400, early.text
    stolen = passerby_post(world.client, rate, {"receipt": guessed, "score": 1})
    assert stolen.status_code == 404
    resolve_event(world, event_id)
    closed = expect(passerby_post(world.client, rate, {"receipt": receipt, "score": 4}), 200)
    assert closed["event"]["state"] == "closed" and closed["event"]["evaluation"]["score"] == 4
    twice = passerby_post(world.client, rate, {"receipt": receipt, "score": 1})
    assert twice.status_code == 400


def test_a_photo_without_an_account_goes_with_its_own_report_only(world: World):
    refused = photo_anonymously(world.client, world.b.point, secrets.token_urlsafe(24), tenant=B)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["reason"] == "ANONYMOUS_REPORTS_OFF"
    allow_anonymous_reports(world)
    key = secrets.token_urlsafe(24)
    made = photo_anonymously(world.client, world.a.point, key)
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    assert name.startswith(f"tenants/{A}/attachments/")
    # Another report cannot name it (400 naming the field); the one of its secret can.
    stranger = report_anonymously(world.client, world.a.point, media_uris=[name])
    assert stranger.status_code == 400, stranger.text
    assert stranger.json()["error"]["field_violations"][0]["field"] == "media_uris[0]"
    sent = expect(
        report_anonymously(world.client, world.a.point, request_id=key, media_uris=[name]), 200
    )
    assert sent["event"]["media_uris"] == [name]
    # The village's staff open it; nobody without credentials does.
    photo_url = f"/v1/{name}"
    opened = world.client.get(photo_url, headers=world.a_secretary.headers)
    assert opened.status_code == 200 and opened.content == PNG_BYTES
    assert world.client.get(photo_url).status_code == 401
    # What the bytes are decides, and the contract's size bounds it as for staff.
    svg = photo_anonymously(
        world.client, world.a.point, secrets.token_urlsafe(24), content=b"<svg onload=alert(1)>"
    )
    assert svg.status_code == 400, svg.text
    assert svg.json()["error"]["field_violations"][0]["field"] == "content"
    large = PNG_BYTES + b"\x00" * (2 * 1024 * 1024)
    key = secrets.token_urlsafe(24)
    too_big = photo_anonymously(world.client, world.a.point, key, content=large)
    assert too_big.status_code == 413, too_big.text
    assert too_big.json()["error"]["field_violations"][0]["field"] == "content"
    short = photo_anonymously(world.client, world.a.point, "short")
    assert short.status_code == 400
    assert short.json()["error"]["field_violations"][0]["field"] == "request_id"


def test_a_village_takes_its_hourly_number_then_429(world: World):
    allow_anonymous_reports(world)
    kept = report_anonymously(world.client, world.a.point)
    expect(kept, 200)
    allow_anonymous_reports(world, per_hour=1)  # this hour's reports already exceed it
    try:
        full = report_anonymously(world.client, world.a.point)
        assert full.status_code == 429, full.text
        assert full.json()["error"]["reason"] == "ANONYMOUS_REPORTS_LIMIT"
        assert int(full.headers["Retry-After"]) > 0
        # A retry of a report already taken is still answered, with its receipt.
        body = json.loads(kept.request.content)
        again = passerby_post(world.client, f"/v1/tenants/{A}/events:reportAnonymously", body)
        assert again.status_code == 200, again.text
        assert again.json()["receipt"] == kept.json()["receipt"]
        assert again.headers["Idempotent-Replayed"] == "true"
    finally:
        allow_anonymous_reports(world)


def test_an_address_takes_its_hourly_number_then_429(world: World):
    allow_anonymous_reports(world)
    statuses = []
    for _ in range(ANONYMOUS_REPORTS_PER_HOUR + 1):
        answer = report_anonymously(world.client, world.a.point)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert "your address" in answer.json()["error"]["message"]
            assert int(answer.headers["Retry-After"]) > 0
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {200}, statuses


def test_an_address_takes_as_many_photos_an_hour_as_reports_then_429(world: World):
    allow_anonymous_reports(world)
    statuses = []
    for _ in range(ANONYMOUS_REPORTS_PER_HOUR + 1):
        answer = photo_anonymously(world.client, world.a.point, secrets.token_urlsafe(24))
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert "photos without an account from your address" in answer.text
            assert int(answer.headers["Retry-After"]) > 0
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {201}, statuses

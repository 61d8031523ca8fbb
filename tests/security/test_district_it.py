"""District IT through the running platform, as the README shows it (issue 9, items 7, 8).

`district.it` holds no `people:read_sensitive`, yet gives a new village its first
secretary (who does hold it); changes and removes users and apps; resets a
password; and reads every one of these actions in its subtree's audit log, which
the hash chain still verifies. Nothing here reaches outside the district's subtree.
"""

from __future__ import annotations

import secrets

from security_world import DISTRICT, A, anonymous_post, expect

T = "/v1/tenants"


def test_district_it_appoints_a_secretary_and_reads_its_own_actions(world):
    client = world.client
    it = world.demo.account("district.it")
    admin = world.login(it.username, it.password)
    assert "people:read_sensitive" not in admin.scopes and "audit:read" in admin.scopes
    segment = f"df{secrets.token_hex(3)}"
    village = expect(
        client.post(
            f"{T}/sh-jiading-anting/children",
            json={
                "id": segment,
                "display_name": "Dongfang Village",
                "level": "village",
                "admin_code": "310114103203",
            },
            headers=admin.headers,
        ),
        201,
    )
    first, second = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    world.remember(first, second)
    username = f"{segment}.secretary"
    secretary = expect(
        client.post(
            f"{T}/{village['id']}/users",
            json={
                "username": username,
                "display_name": "Dongfang secretary",
                "kind": "staff",
                "roles": ["village_secretary"],
                "password": first,
            },
            headers=admin.headers,
        ),
        201,
    )
    assert "people:read_sensitive" in secretary["scopes"]
    user_url = f"{T}/{village['id']}/users/{secretary['id']}"
    renamed = expect(
        client.patch(
            user_url, json={"display_name": "Dongfang secretary Li"}, headers=admin.headers
        ),
        200,
    )
    assert renamed["display_name"] == "Dongfang secretary Li"
    expect(client.post(f"{user_url}:disable", headers=admin.headers), 200)
    assert (
        expect(client.post(f"{user_url}:enable", headers=admin.headers), 200)["disabled"] is False
    )
    expect(
        client.post(f"{user_url}:resetPassword", json={"password": second}, headers=admin.headers),
        200,
    )
    old = anonymous_post(
        client,
        "/v1/auth/token",
        {"grant_type": "password", "username": username, "password": first},
    )
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant", old.text
    # The reset password only lets the secretary choose her own (world.login does).
    reset = anonymous_post(
        client,
        "/v1/auth/token",
        {"grant_type": "password", "username": username, "password": second},
    )
    assert reset.json()["password_change_required"] is True, reset.text
    # Its narrow token opens nothing else, not even what any signed-in person may read:
    # the services refuse it, whatever the gateway lets through.
    narrow = {"Authorization": f"Bearer {reset.json()['access_token']}"}
    for path in (f"{T}/{village['id']}/users", "/v1/me/notices", f"{T}/{village['id']}/apps"):
        refused = client.get(path, headers=narrow)
        assert refused.status_code == 403, (path, refused.text)
        assert "PASSWORD_CHANGE_REQUIRED" in refused.text, (path, refused.text)
    signed_in = world.login(username, second)
    assert "people:read_sensitive" in signed_in.scopes and signed_in.password != second

    app = expect(
        client.post(
            f"{T}/{village['id']}/apps",
            json={"display_name": "Dongfang noticeboard", "scopes": ["events:read"]},
            headers=admin.headers,
        ),
        201,
    )
    world.remember(app["key"])
    app_url = f"{T}/{village['id']}/apps/{app['app']['id']}"
    changed = expect(
        client.patch(app_url, json={"quota_per_minute": 60}, headers=admin.headers), 200
    )
    assert changed["quota_per_minute"] == 60
    refused = client.patch(
        app_url, json={"scopes": ["people:read_sensitive"]}, headers=admin.headers
    )
    assert refused.status_code == 403, refused.text
    expect(client.delete(app_url, headers=admin.headers), 204)
    assert client.get(app_url, headers=admin.headers).status_code == 404
    busy = client.delete(f"{T}/{village['id']}", headers=admin.headers)
    assert busy.status_code == 400 and "users" in busy.text, busy.text
    expect(client.delete(user_url, headers=admin.headers), 204)
    expect(client.delete(f"{T}/{village['id']}", headers=admin.headers), 204)

    entries = expect(
        client.get(
            f"{T}/{DISTRICT}/auditEntries",
            params={"filter": f'subject = "{admin.subject}"', "page_size": 1000},
            headers=admin.headers,
        ),
        200,
    )["audit_entries"]
    mine = [(e["action"], e["records"][0]) for e in reversed(entries)]
    user_name = f"tenants/{village['id']}/users/{secretary['id']}"
    app_name = f"tenants/{village['id']}/apps/{app['app']['id']}"
    key_name = f"{app_name}/apiKeys/{app['api_key']['id']}"
    tenant_name = f"tenants/{village['id']}"
    # Refused and failed calls change nothing and leave no entry.
    assert mine[-12:] == [
        ("identity.tenants.create", tenant_name),
        ("identity.users.create", user_name),
        ("identity.users.update", user_name),
        ("identity.users.disable", user_name),
        ("identity.users.enable", user_name),
        ("identity.users.reset_password", user_name),
        ("identity.apps.create", app_name),
        ("identity.api_keys.create", key_name),
        ("identity.apps.update", app_name),
        ("identity.apps.delete", app_name),
        ("identity.users.delete", user_name),
        ("identity.tenants.delete", tenant_name),
    ]
    created = next(e for e in entries if e["action"] == "identity.users.create")
    assert "roles=village_secretary" in created["fields"]
    text = str(entries)
    assert first not in text and second not in text and app["key"] not in text
    verified = expect(
        client.get(f"{T}/{DISTRICT}/auditEntries:verify", headers=world.auditor.headers), 200
    )
    assert verified["ok"] is True, verified
    # A village secretary may not appoint a secretary, nor read the district's log.
    denied = client.post(
        f"{T}/{A}/users",
        json={
            "username": f"{segment}.second",
            "display_name": "Second",
            "kind": "staff",
            "roles": ["village_secretary"],
        },
        headers=world.a_secretary.headers,
    )
    assert denied.status_code == 403, denied.text
    assert client.get(
        f"{T}/{DISTRICT}/auditEntries", headers=world.a_secretary.headers
    ).status_code in (403, 404)


def test_a_replayed_app_create_never_shows_the_key_again(world):
    """The key text is shown once: a retry with the same Idempotency-Key gets the same
    app and key record, with the secret withheld, and nothing is kept that holds it."""
    client = world.client
    it = world.demo.account("district.it")
    admin = world.login(it.username, it.password)
    headers = {**admin.headers, "Idempotency-Key": f"replay-{secrets.token_hex(4)}"}
    body = {"display_name": "Replay check", "scopes": ["events:read"]}
    url = f"{T}/sh-jiading-anting/apps"
    first = client.post(url, json=body, headers=headers)
    assert first.status_code == 201 and first.headers["Idempotent-Replayed"] == "false"
    assert "x-replay-withhold" not in first.headers
    created = first.json()
    world.remember(created["key"])
    assert created["key"].startswith("grk_")
    again = client.post(url, json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    replayed = again.json()
    assert replayed["app"] == created["app"] and replayed["api_key"] == created["api_key"]
    assert replayed["key"] == "" and "shown once" in replayed["note"]
    assert created["key"] not in again.text
    plain = client.post(url, json={**body, "display_name": "Replay check 2"}, headers=admin.headers)
    assert plain.status_code == 201 and "x-replay-withhold" not in plain.headers
    world.remember(plain.json()["key"])


def test_district_it_cannot_read_through_a_secretary_it_appointed(world):
    """The probe: district.it appointed `shadow.sec` with a password it chose, signed in
    as her and read ID numbers in clear. The chosen password now only lets the account
    choose its own; nothing else answers until then."""
    client = world.client
    it = world.demo.account("district.it")
    admin = world.login(it.username, it.password)
    chosen, own = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    world.remember(chosen, own)
    username = f"shadow.{secrets.token_hex(3)}"
    shadow = expect(
        client.post(
            f"{T}/{A}/users",
            json={
                "username": username,
                "display_name": "Shadow secretary",
                "kind": "staff",
                "roles": ["village_secretary"],
                "password": chosen,
            },
            headers=admin.headers,
        ),
        201,
    )
    try:
        form = {"grant_type": "password", "username": username, "password": chosen}
        first = anonymous_post(client, "/v1/auth/token", form)
        assert first.status_code == 200, first.text
        issued = first.json()
        assert issued["password_change_required"] is True and "refresh_token" not in issued
        world.remember(issued["access_token"])
        limited = {"Authorization": f"Bearer {issued['access_token']}"}
        me = expect(client.get("/v1/me", headers=limited), 200)
        assert (me["scopes"], me["roles"]) == (["password:change"], [])
        people = client.get(f"{T}/{A}/people", params={"purpose": "routine"}, headers=limited)
        assert people.status_code == 403, people.text
        assert client.get(f"{T}/{A}/events", headers=limited).status_code == 403

        wrong = client.post(
            "/v1/me:changePassword",
            json={"current_password": "not-the-password", "new_password": own},
            headers=limited,
        )
        assert wrong.status_code == 400, wrong.text
        assert [v["field"] for v in wrong.json()["error"]["field_violations"]] == [
            "current_password"
        ]
        changed = client.post(
            "/v1/me:changePassword",
            json={"current_password": chosen, "new_password": own},
            headers=limited,
        )
        assert changed.status_code == 200, changed.text
        assert changed.headers["cache-control"] == "no-store"
        tokens = changed.json()
        world.remember(tokens["access_token"], tokens["refresh_token"])
        assert tokens["password_change_required"] is False
        full = {"Authorization": f"Bearer {tokens['access_token']}"}
        read = client.get(f"{T}/{A}/people", params={"purpose": "routine"}, headers=full)
        assert read.status_code == 200, read.text
        # What district IT chose no longer signs in.
        stale = anonymous_post(client, "/v1/auth/token", form)
        assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
        # The change is the secretary's own, in the district's audit log.
        entries = expect(
            client.get(
                f"{T}/{DISTRICT}/auditEntries",
                params={"filter": f'subject = "users/{shadow["id"]}"'},
                headers=admin.headers,
            ),
            200,
        )["audit_entries"]
        # (Her read of the register above is audited too, as people.read.)
        assert [(e["action"], e["fields"]) for e in entries if e["action"] != "people.read"] == [
            ("identity.users.change_password", ["password"])
        ]
        assert chosen not in str(entries) and own not in str(entries)
    finally:
        expect(client.delete(f"{T}/{A}/users/{shadow['id']}", headers=admin.headers), 204)

"""Personal data end to end: masked for callers without `people:read_sensitive`,
unmasked only with a stated purpose, and every unmasked read in the audit log, which
no route can change."""

from __future__ import annotations

import re
import secrets

from route_requests import operations
from security_world import DISTRICT, VILLAGE_A, A, api_key

ID_MASK = re.compile(r"^\d{3}\*{11}\d{3}[\dX]$")
PHONE_MASK = re.compile(r"^1\d{2}\*{4}\d{4}$")
ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
MOBILE = re.compile(r"^1\d{10}$")


def test_a_caller_without_read_sensitive_sees_only_masks(world):
    # The demo app of A holds people:read and not people:read_sensitive.
    key = api_key(world.demo_key_a)
    me = world.client.get("/v1/me", headers=key).json()
    assert "people:read" in me["scopes"] and "people:read_sensitive" not in me["scopes"]
    people, token = [], ""
    while True:
        page = world.client.get(
            f"/v1/tenants/{A}/people",
            params={"page_size": 1000, "page_token": token, "purpose": "asking anyway"},
            headers=key,
        )
        assert page.status_code == 200, page.text
        people += page.json()["people"]
        token = page.json()["next_page_token"]
        if not token:
            break
    assert len(people) >= 10
    for person in people:
        assert person["masked"] is True, person
        assert ID_MASK.match(person["id_number"]), person["id_number"]
        assert not person["phone"] or PHONE_MASK.match(person["phone"]), person["phone"]
        assert "*" in person["display_name"], person["display_name"]
    one = world.client.get(f"/v1/tenants/{A}/people/{people[0]['id']}", headers=key).json()
    assert one["masked"] is True and ID_MASK.match(one["id_number"])


def test_an_unmasked_read_needs_a_purpose_and_is_audited(world):
    client, secretary, auditor = world.client, world.a_secretary, world.auditor
    url = f"/v1/tenants/{A}/people/{world.a.person_id}"

    refused = client.get(url, headers=secretary.headers)
    assert refused.status_code == 400, refused.text
    assert [v["field"] for v in refused.json()["error"]["field_violations"]] == ["purpose"]
    listed = client.get(f"/v1/tenants/{A}/people", headers=secretary.headers)
    assert listed.status_code == 400 and "purpose" in listed.text

    purpose = f"home visit follow-up {secrets.token_hex(4)}"
    person = client.get(url, params={"purpose": purpose}, headers=secretary.headers)
    assert person.status_code == 200, person.text
    seen = person.json()
    assert seen["masked"] is False
    assert ID_NUMBER.match(seen["id_number"]) and MOBILE.match(seen["phone"])

    entries = client.get(
        f"/v1/tenants/{DISTRICT}/auditEntries",
        params={"filter": f'subject = "{secretary.subject}"', "page_size": 1000},
        headers=auditor.headers,
    )
    assert entries.status_code == 200, entries.text
    mine = [e for e in entries.json()["audit_entries"] if e["purpose"] == purpose]
    assert len(mine) == 1, entries.json()
    entry = mine[0]
    assert entry["subject"] == secretary.subject
    assert entry["tenant"] == VILLAGE_A
    assert entry["records"] == [f"tenants/{A}/people/{world.a.person_id}"]
    assert {"id_number", "phone", "name"} <= set(entry["fields"])
    # The entry names what was read, never the values.
    assert seen["id_number"] not in entries.text and seen["phone"] not in entries.text

    verified = client.get(f"/v1/tenants/{DISTRICT}/auditEntries:verify", headers=auditor.headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True and verified.json()["checked"] >= 1

    # The secretary may read people, not the log of those reads.
    assert client.get(f"/v1/tenants/{A}/auditEntries", headers=secretary.headers).status_code == 403


def test_the_purpose_header_works_like_the_parameter(world):
    purpose = f"welfare call {secrets.token_hex(4)}"
    response = world.client.get(
        f"/v1/tenants/{A}/people",
        params={"page_size": 2},
        headers={**world.a_secretary.headers, "X-Purpose": purpose},
    )
    assert response.status_code == 200, response.text
    assert all(p["masked"] is False for p in response.json()["people"])
    entries = world.client.get(
        f"/v1/tenants/{DISTRICT}/auditEntries",
        params={"filter": f'subject = "{world.a_secretary.subject}"', "page_size": 1000},
        headers=world.auditor.headers,
    ).json()["audit_entries"]
    [entry] = [e for e in entries if e["purpose"] == purpose]
    assert len(entry["records"]) == 2


def test_no_route_changes_the_audit_log(world, openapi):
    for method, path, _ in operations(openapi):
        if "auditEntries" in path:
            assert method == "GET", f"{method} {path} would change the audit log"
    for path in (
        f"/v1/tenants/{DISTRICT}/auditEntries",
        f"/v1/tenants/{DISTRICT}/auditEntries:verify",
    ):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = world.client.request(method, path, headers=world.auditor.headers, json={})
            assert response.status_code == 405, f"{method} {path}: {response.status_code}"


def test_the_audit_log_of_a_tenant_outside_ones_subtree_is_not_found(world):
    """Verifying answers for a tenant exactly as listing its entries does: 404 for a
    node the caller cannot see (a city above, another district, a name that does not
    exist), rather than a count of the whole platform's unmasked reads."""
    for tenant in ("sh", "sh-pudong", "nowhere"):
        url = f"/v1/tenants/{tenant}/auditEntries"
        listed = world.client.get(url, headers=world.auditor.headers)
        assert listed.status_code == 404, listed.text
        verified = world.client.get(f"{url}:verify", headers=world.auditor.headers)
        assert verified.status_code == 404, (
            f"{url}:verify -> {verified.status_code} {verified.text}"
        )


def test_a_masked_id_number_cannot_be_confirmed_through_the_filter(world):
    """Issue 11.1: the demo key sees masks; an exact lookup would confirm guesses."""
    client, key = world.client, api_key(world.demo_key_a)
    url = f"/v1/tenants/{A}/people"
    masked = client.get(url, params={"page_size": 1}, headers=key).json()["people"][0]
    assert ID_MASK.match(masked["id_number"])
    guess = world.b.person_id_number  # any well-formed number: the answer must not depend on it
    for field, value in (("id_number", guess), ("phone", "13800000000")):
        refused = client.get(
            url, params={"filter": f'{field} = "{value}"', "purpose": "guessing"}, headers=key
        )
        assert refused.status_code == 403, refused.text
        assert "people:read_sensitive" in refused.json()["error"]["message"]
    # Filters on what the key sees anyway still answer.
    kinds = client.get(url, params={"filter": 'kind = "resident"'}, headers=key)
    assert kinds.status_code == 200, kinds.text

    secretary = world.a_secretary
    no_purpose = client.get(
        url, params={"filter": f'id_number = "{guess}"'}, headers=secretary.headers
    )
    assert no_purpose.status_code == 400 and "purpose" in no_purpose.text
    purpose = f"checking a paper form {secrets.token_hex(4)}"
    looked = client.get(
        url,
        params={"filter": f'id_number = "{guess}"', "purpose": purpose},
        headers=secretary.headers,
    )
    assert looked.status_code == 200 and looked.json()["people"] == [], looked.text
    entries = client.get(
        f"/v1/tenants/{DISTRICT}/auditEntries",
        params={"filter": f'subject = "{secretary.subject}"', "page_size": 1000},
        headers=world.auditor.headers,
    ).json()["audit_entries"]
    [entry] = [e for e in entries if e["purpose"] == purpose]
    assert entry["records"] == [] and entry["fields"] == ["id_number"]
    assert guess not in str(entry)

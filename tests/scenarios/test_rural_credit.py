"""Village credit points (Suichang: loans on points): a grid worker records a household's
good deeds -> each pays the household points, once -> district IT registers a bank's app
-> the bank is refused the household's score without consent -> the village records the
household's consent -> the bank reads the score (by the village's weights, the name
masked) -> the consent is revoked -> the bank is refused again -> the audit chain holds
every read, given and refused, and the neighbouring village sees none of it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx

from services.kit import tenancy
from tests.scenarios.harness import XIANGYANG, XINGMING, Api, Platform

VILLAGE_ID = tenancy.path_to_id(XINGMING)
DISTRICT_ID = tenancy.path_to_id("sh/jiading")
V = f"/v1/tenants/{VILLAGE_ID}"
PURPOSE = "loan_assessment"
WEIGHTS = {"points_per_deed": 6, "base_score": 300, "points_weight": 3, "deed_weight": 10}


def test_a_bank_reads_a_households_score_only_under_its_consent_and_every_read_is_audited(
    platform: Platform,
):
    platform.install("rural-credit", overrides=WEIGHTS)
    assert platform.plan("rural-credit", overrides=WEIGHTS).empty

    cell = platform.cell(XINGMING)
    worker = platform.user(cell.grid_worker)
    secretary = platform.user("xingming.secretary")
    household = f"xm-{cell.cell_id.lower()}-{secrets.token_hex(3)}"
    account = secretary.ok(
        "POST",
        f"{V}/pointsAccounts",
        json={"holder_kind": "household", "holder": household, "display_name": "Zhang Wei"},
    )

    # Three good deeds recorded; the worker's app sends the first one twice.
    for n, deed in enumerate(("elder_care", "environment", "volunteering", "elder_care")):
        worker.ok(
            "POST",
            f"{V}/forms/good-deed-record/records",
            json={
                "values": {"household": household, "deed": deed},
                "grid_cell": cell.cell_id,
                "request_id": f"deed-{household}-{n % 3}",
            },
        )
    statement = secretary.ok("GET", f"/v1/{account['name']}/ledgerEntries")
    assert [e["amount"] for e in statement["ledger_entries"]] == [6, 6, 6]
    assert statement["balance"] == 18

    # District IT registers the bank's app at the district, reading scores and nothing else.
    it = platform.user("district.it")
    created = it.ok(
        "POST",
        f"/v1/tenants/{DISTRICT_ID}/apps",
        json={
            "display_name": f"Rural commercial bank {secrets.token_hex(2)}",
            "scopes": ["credit:read"],
            "quota_per_minute": 600,
        },
    )
    bank = Api(base_url=platform.url, headers={"X-API-Key": created["key"]}, timeout=20)
    bank_app = created["app"]["name"]
    score_url = f"/v1/{account['name']}/creditScore"

    def read() -> httpx.Response:
        return bank.get(score_url, params={"purpose": PURPOSE})

    refused = read()
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["reason"] == "CONSENT_REQUIRED"

    expires = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    consent = secretary.ok(
        "POST",
        f"{V}/creditConsents",
        json={
            "household": account["name"],
            "consumer": bank_app,
            "purpose": PURPOSE,
            "expire_time": expires,
            "request_id": f"consent-{household}",
        },
    )
    assert (consent["state"], consent["consumer"]) == ("active", bank_app)

    granted = read()
    assert granted.status_code == 200, granted.text
    score = granted.json()
    # 300 + 3 x 18 points + 10 x 3 deeds = 384: band D (C starts at 400 by default).
    assert (score["score"], score["band"], score["points_earned"], score["deeds"]) == (
        384,
        "D",
        18,
        3,
    )
    assert score["consent"] == consent["name"]
    assert score["policy"] == f"{V.removeprefix('/v1/')}/creditPolicies/rural-credit"
    assert score["display_name"] != "Zhang Wei" and score["display_name"].startswith("Z")
    # Another purpose is not what the household agreed to.
    assert bank.get(score_url, params={"purpose": "marketing"}).status_code == 403

    # The neighbouring village sees neither the consent nor the household's score.
    neighbour = platform.user("xiangyang.secretary")
    assert neighbour.get(f"/v1/{consent['name']}").status_code == 404
    theirs = neighbour.ok("GET", f"/v1/tenants/{tenancy.path_to_id(XIANGYANG)}/creditConsents")
    assert consent["name"] not in {c["name"] for c in theirs["credit_consents"]}
    mine = secretary.ok("GET", f"{V}/creditConsents", params={"household": account["name"]})
    assert [c["name"] for c in mine["credit_consents"]] == [consent["name"]]

    revoked = secretary.ok("POST", f"/v1/{consent['name']}:revoke", json={})
    assert revoked["state"] == "revoked"
    after = read()
    assert after.status_code == 403 and after.json()["error"]["reason"] == "CONSENT_REQUIRED"

    audit = platform.user("district.auditor").ok(
        "GET",
        f"/v1/tenants/{DISTRICT_ID}/auditEntries",
        params={"filter": f'record = "{account["name"]}"', "page_size": 50},
    )["audit_entries"]
    trail = [(a["action"], a["subject"]) for a in reversed(audit)]
    assert trail == [
        ("credit.score.refused", bank_app),
        ("credit.consent.grant", secretary_subject(platform)),
        ("credit.score.read", bank_app),
        ("credit.score.refused", bank_app),
        ("credit.consent.revoke", secretary_subject(platform)),
        ("credit.score.refused", bank_app),
    ]
    read_entry = next(a for a in audit if a["action"] == "credit.score.read")
    assert read_entry["purpose"] == PURPOSE and consent["name"] in read_entry["records"]


def secretary_subject(platform: Platform) -> str:
    return str(platform.user("xingming.secretary").ok("GET", "/v1/me")["subject"])

"""Waste sorting points: a grid worker records household sorting checks (a form) -> a
check passed pays the household points, once per check and within the weekly cap, a
failed one nothing -> the household spends them at the village shop, never below zero
-> the participation report counts the cell's checks."""

from __future__ import annotations

import secrets

from services.kit import tenancy
from tests.scenarios.harness import XINGMING, Platform

VILLAGE_ID = tenancy.path_to_id(XINGMING)
V = f"/v1/tenants/{VILLAGE_ID}"
FORM = f"{V}/forms/sorting-check/records"


def test_sorting_checks_pay_households_once_within_the_cap_and_the_shop_redeems(
    platform: Platform,
):
    platform.install("garbage-points", overrides={"points_per_check": 3, "weekly_cap": 6})
    assert platform.plan("garbage-points", overrides={"points_per_check": 3, "weekly_cap": 6}).empty

    cell = platform.cell(XINGMING)
    worker = platform.user(cell.grid_worker)
    secretary = platform.user("xingming.secretary")
    tidy, careless = (f"xm-{cell.cell_id.lower()}-{secrets.token_hex(3)}" for _ in range(2))

    def check(household: str, sorted_ok: str, request_id: str) -> dict:
        return worker.ok(
            "POST",
            FORM,
            json={
                "values": {"household": household, "sorted_ok": sorted_ok},
                "grid_cell": cell.cell_id,
                "request_id": request_id,
            },
        )

    def account(household: str) -> dict | None:
        found = secretary.ok("GET", f"{V}/pointsAccounts", params={"holder": household})
        return next(iter(found["points_accounts"]), None)

    first = check(tidy, "true", "sort-1-" + tidy)
    assert account(tidy)["balance"] == 3
    # The inspector's app sends the same check again: the same record, no more points.
    assert check(tidy, "true", "sort-1-" + tidy)["id"] == first["id"]
    assert account(tidy)["balance"] == 3
    check(tidy, "true", "sort-2-" + tidy)
    check(tidy, "true", "sort-3-" + tidy)  # a third this week: the cap of 6 is reached
    paid = account(tidy)
    assert paid["balance"] == 6
    assert paid["holder_kind"] == "household"
    check(careless, "false", "sort-4-" + careless)
    assert account(careless) is None  # a failed check pays nothing (no account opened)

    # The village shop: rice for 5 points, then 5 more than is left.
    shop = f"{V}/pointsAccounts/{paid['id']}:redeem"
    spent = secretary.ok(
        "POST", shop, json={"amount": 5, "memo": "Village shop: rice", "request_id": "shop-" + tidy}
    )
    assert spent["amount"] == -5 and spent["kind"] == "redemption"
    assert account(tidy)["balance"] == 1
    refused = secretary.post(
        shop, json={"amount": 5, "memo": "Village shop: oil", "request_id": "shop2-" + tidy}
    )
    assert refused.status_code == 400
    assert [v["field"] for v in refused.json()["error"]["field_violations"]] == ["amount"]
    assert account(tidy)["balance"] == 1

    report = secretary.ok("POST", f"{V}/reportTemplates/garbage-points-participation:run", json={})
    assert report["headings"] == ["Grid cell", "Checks", "Sorted correctly"]
    assert {r[0]: r[1:] for r in report["rows"]}[cell.cell_id] == ["4", "3"]

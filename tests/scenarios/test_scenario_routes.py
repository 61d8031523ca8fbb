"""Scenario plan, install and uninstall over REST, as the supermarket page calls them:
the composer's plan before anything changes, scope and subtree decided for the caller,
bad input answered 4xx naming the field. Works in Xiangyang with farm-produce, which no
loop test installs there."""

from __future__ import annotations

from tests.scenarios.harness import Platform

VILLAGE = "sh-jiading-anting-xiangyang"
ROUTES = f"/v1/tenants/{VILLAGE}/scenarios"
SCENARIO = "farm-produce"


def _field(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    violations = response.json()["error"]["field_violations"]
    return str(violations[0]["field"])


def test_the_district_plans_installs_and_uninstalls_a_scenario_in_a_village(platform: Platform):
    district = platform.user("district.it")
    plan = district.ok("POST", f"{ROUTES}:plan", json={"scenario": SCENARIO})
    assert plan["text"].startswith(f"install {SCENARIO} ")
    assert plan["from_version"] == "" and plan["to_version"]
    assert plan["counts"]["create"] > 0 and not plan["empty"] and not plan["blockers"]
    assert {a["symbol"] for a in plan["actions"]} <= {"+", "="}
    assert all(f"{a['symbol']:>3} {a['kind']} {a['key']}" in plan["text"] for a in plan["actions"])
    # Planning changed nothing: the village has no record of it yet.
    listed = district.ok("GET", f"/v1/tenants/{VILLAGE}/installations", params={"page_size": 1000})
    items = {i["catalog_item"] for i in listed["installations"]}
    assert f"catalogItems/scenario-{SCENARIO}" not in items

    # An apply given the digest of the plan its caller checked does that plan or nothing:
    # here the caller changed a setting after looking, so the plan moved.
    chosen = {"scenario": SCENARIO, "overrides": {"frost_celsius": 1}}
    moved = district.post(f"{ROUTES}:install", json={**chosen, "plan_digest": plan["digest"]})
    assert _field(moved, 409) == "plan_digest"
    assert moved.json()["error"]["reason"] == "PLAN_CHANGED"
    listed = district.ok("GET", f"/v1/tenants/{VILLAGE}/installations", params={"page_size": 1000})
    assert f"catalogItems/scenario-{SCENARIO}" not in {
        i["catalog_item"] for i in listed["installations"]
    }
    checked = district.ok("POST", f"{ROUTES}:plan", json=chosen)
    assert checked["digest"] != plan["digest"]
    assert district.ok("POST", f"{ROUTES}:plan", json=chosen)["digest"] == checked["digest"]
    applied = district.ok(
        "POST", f"{ROUTES}:install", json={**chosen, "plan_digest": checked["digest"]}
    )
    assert applied["state"] == "complete" and applied["done"] == plan["counts"]["create"]
    assert applied["installation"].startswith(f"tenants/{VILLAGE}/installations/")
    assert applied["plan"]["settings"] == {"frost_celsius": 1}
    again = district.ok("POST", f"{ROUTES}:plan", json={"scenario": SCENARIO})
    assert again["empty"] and again["settings"] == {"frost_celsius": 1}
    assert "Nothing to do" in again["text"]
    # Overrides given later merge with the village's; {} and reset go back to the defaults.
    merged = district.ok(
        "POST",
        f"{ROUTES}:plan",
        json={"scenario": SCENARIO, "overrides": {"report_schedule": "SCHEDULE_WEEKLY"}},
    )
    assert merged["settings"] == {"frost_celsius": 1, "report_schedule": "SCHEDULE_WEEKLY"}
    for body in ({"overrides": {}}, {"reset": True}):
        fresh = district.ok("POST", f"{ROUTES}:plan", json={"scenario": SCENARIO, **body})
        assert fresh["settings"] == {}, body
    twice = district.ok("POST", f"{ROUTES}:install", json={"scenario": SCENARIO})
    assert twice["done"] == 0
    adoption = district.ok("GET", "/v1/tenants/sh-jiading/adoption")
    row = next(n for n in adoption["nodes"] if n["tenant"] == "sh/jiading/anting/xiangyang")
    assert f"catalogItems/scenario-{SCENARIO}" in row["scenarios"]

    leaving = district.ok("POST", f"{ROUTES}:planUninstall", json={"scenario": SCENARIO})
    assert leaving["text"].startswith(f"uninstall {SCENARIO} ")
    assert leaving["to_version"] == ""
    removed = district.ok(
        "POST",
        f"{ROUTES}:uninstall",
        json={"scenario": SCENARIO, "plan_digest": leaving["digest"]},
    )
    assert removed["state"] == "removed" and removed["installation"] == ""
    fresh = district.ok("POST", f"{ROUTES}:plan", json={"scenario": SCENARIO})
    assert fresh["from_version"] == "" and fresh["counts"]["create"] > 0


def test_a_village_acts_for_itself_only_and_staff_without_the_scope_cannot_install(
    platform: Platform,
):
    neighbour = platform.user("xingming.secretary")  # village_secretary of Xingming
    for verb in ("plan", "install", "planUninstall", "uninstall"):
        response = neighbour.post(f"{ROUTES}:{verb}", json={"scenario": SCENARIO})
        assert response.status_code == 404, (verb, response.text)
    own = neighbour.post(
        "/v1/tenants/sh-jiading-anting-xingming/scenarios:plan", json={"scenario": SCENARIO}
    )
    assert own.status_code == 200, own.text
    worker = platform.user(platform.new_user("sh/jiading/anting/xiangyang", ["grid_worker"]))
    refused = worker.post(f"{ROUTES}:install", json={"scenario": SCENARIO})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["reason"] == "MISSING_SCOPE"


def test_bad_input_is_refused_naming_the_field(platform: Platform):
    town = platform.user("anting.officer")
    cases = [
        ({"scenario": "no-such-scenario"}, "scenario", f"{ROUTES}:plan"),
        ({"scenario": "../../etc"}, "scenario", f"{ROUTES}:plan"),
        ({"scenario": SCENARIO, "overrides": {"nope": 1}}, "overrides.nope", f"{ROUTES}:plan"),
        (
            {"scenario": SCENARIO, "overrides": {"frost_celsius": "cold"}},
            "overrides.frost_celsius",
            f"{ROUTES}:install",
        ),
        ({"scenario": SCENARIO, "surprise": 1}, "surprise", f"{ROUTES}:plan"),
        ({"scenario": SCENARIO}, "scenario", f"{ROUTES}:uninstall"),  # not installed
        ({"scenario": SCENARIO}, "tenant", "/v1/tenants/sh-jiading-anting/scenarios:plan"),
        ({"scenario": SCENARIO}, "tenant", "/v1/tenants/sh-jiading-anting/scenarios:install"),
    ]
    for body, field, url in cases:
        response = town.post(url, json=body)
        assert _field(response, 400) == field, (body, response.text)
    # JSON's NaN and Infinity (Python writes them) are no number a setting takes.
    for value in ("NaN", "Infinity", "-Infinity"):
        text = f'{{"scenario":"{SCENARIO}","overrides":{{"frost_celsius":{value}}}}}'
        for verb in ("plan", "install"):
            response = town.post(
                f"{ROUTES}:{verb}", content=text, headers={"content-type": "application/json"}
            )
            assert _field(response, 400) == "overrides.frost_celsius", (value, response.text)
    for verb in ("plan", "install", "uninstall"):
        nowhere = town.post(
            f"/v1/tenants/sh-jiading-anting-nowhere/scenarios:{verb}", json={"scenario": SCENARIO}
        )
        assert nowhere.status_code == 404, (verb, nowhere.text)
    adoption = platform.user("district.it").ok("GET", "/v1/tenants/sh-jiading/adoption")
    assert "sh/jiading/anting/nowhere" not in {n["tenant"] for n in adoption["nodes"]}

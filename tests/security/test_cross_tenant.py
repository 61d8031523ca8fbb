"""Village A cannot reach village B's objects, and learns nothing about them.

A's super user holds every scope, so a refusal here is tenancy's. The answer for
another village's object is 404, exactly as for an object that does not exist:
never 403, which would confirm that it exists. Every operation of the live OpenAPI
that takes an id must have an entry in `CROSS`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from route_requests import (
    RENAMED,
    body_for,
    describe,
    fill,
    operations,
    path_parameters,
    send,
)
from security_world import B_FEATURE, B_LAYER, VILLAGE_B, A, B, World, report_event

PURPOSE = "security suite: cross-tenant probe"


@dataclass(frozen=True)
class Cross:
    """How to point an operation at B's object; `tenant` is the tenant id in the URL."""

    ids: Callable[[World, str], dict[str, str]]
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _user(w: World, t: str) -> dict[str, str]:
    return {"user": w.b.user_id}


def _app(w: World, t: str) -> dict[str, str]:
    assert w.b.app is not None
    return {"app": w.b.app.app_id, "api_key": w.b.app.key_id}


def _event(w: World, t: str) -> dict[str, str]:
    return {"event": w.b.event_id, "service_request_id": w.b.event_id, "token": w.b.event_id}


def _layer(w: World, t: str) -> dict[str, str]:
    return {"layer": B_LAYER, "feature": B_FEATURE}


def _collection(w: World, t: str) -> dict[str, str]:
    return {"collection_id": f"{t}.{B_LAYER}", "item_id": B_FEATURE}


def _category(w: World, t: str) -> dict[str, str]:
    return {"service_code": w.b.category}


def _command(w: World, t: str) -> dict[str, str]:
    return {"handler": w.b.handler_id, "routing_rule": w.b.rule_id, "task": w.b.task_id}


HANDLER = "/v1/tenants/{tenant}/handlers/{handler}"
RULE = "/v1/tenants/{tenant}/routingRules/{routing_rule}"
TASK = "/v1/tenants/{tenant}/tasks/{task}"


def _points_account(w: World, t: str) -> dict[str, str]:
    return {"points_account": w.b.points_account_id}


def _credit(w: World, t: str) -> dict[str, str]:
    return {"credit_policy": w.b.credit_policy_id, "credit_consent": w.b.credit_consent_id}


def _report(w: World, t: str) -> dict[str, str]:
    return {
        "form": w.b.form_id,
        "report_template": w.b.report_template_id,
        "run": w.b.report_run_id,
    }


def _twin_entity(w: World, t: str) -> dict[str, str]:
    return {
        "entity": w.b.twin_entity_id,
        "entity_id": f"urn:ngsi-ld:WaterLevelGauge:{w.b.twin_entity_id}",
        "attribute": "level_cm",
    }


# NGSI-LD names the tenant in a header: A's caller asks for B's entity there.
IN_B = {"NGSILD-Tenant": B}
NGSI_ENTITY = "/ngsi-ld/v1/entities/{entity_id}"


def _subscription(w: World, t: str) -> dict[str, str]:
    return {"subscription": w.b.subscription_id}


def _dataset(w: World, t: str) -> dict[str, str]:
    # The district's register named under a village: no village publishes one.
    return {"dataset": "security-register"}


def _plans(w: World, t: str) -> dict[str, str]:
    return {
        "emergency_plan": w.b.emergency_plan_id,
        "service_plan": w.b.service_plan_id,
        "service_order": w.b.service_order_id,
    }


PLAN = "/v1/tenants/{tenant}/emergencyPlans/{emergency_plan}"
ORDER = "/v1/tenants/{tenant}/serviceOrders/{service_order}"
SERVICE_PLAN = "/v1/tenants/{tenant}/servicePlans/{service_plan}"
LAYER = "/v1/tenants/{tenant}/layers/{layer}"
REPORT = "/v1/tenants/{tenant}/reportTemplates/{report_template}"
ENTITY = "/v1/tenants/{tenant}/entities/{entity}"
SUBSCRIPTION = "/v1/tenants/{tenant}/subscriptions/{subscription}"
EVENT = "/v1/tenants/{tenant}/events/{event}"
ACCOUNT = "/v1/tenants/{tenant}/pointsAccounts/{points_account}"
CREDIT_POLICY = "/v1/tenants/{tenant}/creditPolicies/{credit_policy}"
CONSENT = "/v1/tenants/{tenant}/creditConsents/{credit_consent}"
# (METHOD, path) -> B's object. Reads first: the writes, if tenancy failed, would
# change B's objects, and the test checks afterwards that none changed.
CROSS: dict[tuple[str, str], Cross] = {
    ("GET", "/v1/tenants/{tenant}/users/{user}"): Cross(_user),
    ("GET", "/v1/tenants/{tenant}/apps/{app}"): Cross(_app),
    ("GET", "/v1/tenants/{tenant}/apps/{app}/apiKeys"): Cross(_app),
    ("GET", "/v1/tenants/{tenant}/people/{person}"): Cross(
        lambda w, t: {"person": w.b.person_id}, {"purpose": PURPOSE}
    ),
    ("GET", EVENT): Cross(_event),
    ("GET", "/v1/tenants/{tenant}/attachments/{attachment}"): Cross(
        lambda w, t: {"attachment": w.b.attachment_id}
    ),
    ("GET", ACCOUNT): Cross(_points_account),
    ("GET", ACCOUNT + "/ledgerEntries"): Cross(_points_account),
    ("GET", ACCOUNT + "/creditScore"): Cross(_points_account, {"purpose": "loan_assessment"}),
    ("GET", CREDIT_POLICY): Cross(_credit),
    ("GET", CONSENT): Cross(_credit),
    ("GET", "/v1/tenants/{tenant}/forms/{form}"): Cross(_report),
    ("GET", "/v1/tenants/{tenant}/forms/{form}/records"): Cross(_report),
    ("GET", "/v1/tenants/{tenant}/notices/{notice}"): Cross(lambda w, t: {"notice": w.b.notice_id}),
    ("GET", "/v1/tenants/{tenant}/notices/{notice}/deliveries"): Cross(
        lambda w, t: {"notice": w.b.notice_id}
    ),
    ("POST", "/v1/tenants/{tenant}/people/{person}:bindWeChat"): Cross(
        lambda w, t: {"person": w.b.person_id}
    ),
    ("POST", "/v1/tenants/{tenant}/notices/{notice}/deliveries/{delivery}:markRead"): Cross(
        lambda w, t: {"notice": w.b.notice_id, "delivery": w.b.delivery_id}
    ),
    ("GET", REPORT): Cross(_report),
    ("GET", REPORT + "/runs"): Cross(_report),
    ("GET", REPORT + "/runs/{run}"): Cross(_report),
    ("GET", REPORT + "/runs/{run}:export"): Cross(_report, {"format": "csv"}),
    ("GET", ENTITY): Cross(_twin_entity),
    ("GET", ENTITY + ":listRelated"): Cross(_twin_entity),
    ("GET", LAYER): Cross(_layer),
    ("GET", LAYER + "/features"): Cross(_layer),
    ("GET", LAYER + "/features/{feature}"): Cross(_layer),
    ("GET", LAYER + "/features:export"): Cross(_layer),
    ("GET", LAYER + "/features:countByGridCell"): Cross(_layer),
    ("POST", LAYER + "/features:search"): Cross(_layer),
    ("GET", SUBSCRIPTION + ":sync"): Cross(_subscription, {"purpose": PURPOSE}),
    ("GET", "/v1/tenants/{tenant}/datasets/{dataset}"): Cross(_dataset),
    ("GET", PLAN): Cross(_plans),
    ("GET", SERVICE_PLAN): Cross(_plans),
    ("GET", ORDER): Cross(_plans),
    ("GET", "/ogc/collections/{collection_id}"): Cross(_collection),
    ("GET", "/ogc/collections/{collection_id}/items"): Cross(_collection),
    ("GET", "/ogc/collections/{collection_id}/items/{item_id}"): Cross(_collection),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): Cross(_category),
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): Cross(_event),
    ("GET", "/open311/v2/tokens/{token}.{fmt}"): Cross(_event),
    ("GET", HANDLER): Cross(_command),
    ("GET", RULE): Cross(_command),
    ("GET", TASK): Cross(_command),
    ("GET", NGSI_ENTITY): Cross(_twin_entity, headers=IN_B),
    ("GET", "/ngsi-ld/v1/temporal/entities/{entity_id}"): Cross(_twin_entity, headers=IN_B),
    ("POST", EVENT + "/comments"): Cross(_event),
    ("POST", EVENT + ":transition"): Cross(_event),
    ("POST", EVENT + ":evaluate"): Cross(_event),
    ("PATCH", EVENT): Cross(_event),
    ("POST", ACCOUNT + ":credit"): Cross(_points_account),
    ("POST", ACCOUNT + ":redeem"): Cross(_points_account),
    ("POST", CONSENT + ":revoke"): Cross(_credit),
    ("POST", "/v1/tenants/{tenant}/forms/{form}/records"): Cross(_report),
    ("POST", REPORT + ":run"): Cross(_report),
    ("POST", PLAN + ":changeLevel"): Cross(_plans),
    ("PATCH", PLAN): Cross(_plans),
    ("PATCH", SERVICE_PLAN): Cross(_plans),
    ("POST", ORDER + ":checkIn"): Cross(_plans),
    ("POST", ORDER + ":checkOut"): Cross(_plans),
    ("POST", "/v1/tenants/{tenant}/apps/{app}/apiKeys"): Cross(_app),
    ("DELETE", "/v1/tenants/{tenant}/apps/{app}/apiKeys/{api_key}"): Cross(_app),
    ("POST", "/v1/tenants/{tenant}/users/{user}:disable"): Cross(_user),
    ("POST", "/v1/tenants/{tenant}/users/{user}:enable"): Cross(_user),
    ("PATCH", "/v1/tenants/{tenant}/users/{user}"): Cross(_user),
    ("POST", "/v1/tenants/{tenant}/users/{user}:resetPassword"): Cross(_user),
    ("PATCH", "/v1/tenants/{tenant}/apps/{app}"): Cross(_app),
    ("POST", LAYER + "/features:import"): Cross(_layer),
    ("DELETE", LAYER): Cross(_layer),
    ("DELETE", ENTITY): Cross(_twin_entity),
    ("DELETE", "/v1/tenants/{tenant}/users/{user}"): Cross(_user),
    ("DELETE", "/v1/tenants/{tenant}/apps/{app}"): Cross(_app),
    ("PATCH", HANDLER): Cross(_command),
    ("DELETE", HANDLER): Cross(_command),
    ("POST", HANDLER + ":reportPosition"): Cross(_command),
    ("POST", TASK + ":accept"): Cross(_command),
    ("POST", TASK + ":decline"): Cross(_command),
    ("POST", TASK + ":start"): Cross(_command),
    ("POST", TASK + ":resolve"): Cross(_command),
    ("POST", TASK + ":transfer"): Cross(_command),
    ("DELETE", RULE): Cross(_command),
    ("POST", "/v1/tenants/{tenant}/entities/{entity}:issueDeviceKey"): Cross(_twin_entity),
    ("PATCH", NGSI_ENTITY + "/attrs"): Cross(_twin_entity, headers=IN_B),
    ("POST", NGSI_ENTITY + "/attrs"): Cross(_twin_entity, headers=IN_B),
    ("PATCH", NGSI_ENTITY + "/attrs/{attribute}"): Cross(_twin_entity, headers=IN_B),
    ("DELETE", NGSI_ENTITY): Cross(_twin_entity, headers=IN_B),
    ("POST", "/v1/tenants/{tenant}/datasets/{dataset}:import"): Cross(_dataset),
    ("DELETE", SUBSCRIPTION): Cross(_subscription),
    ("DELETE", CREDIT_POLICY): Cross(_credit),
    ("DELETE", PLAN): Cross(_plans),
    ("DELETE", SERVICE_PLAN): Cross(_plans),
}
# Parameters that name where, not what: a route with only these is not in CROSS.
NOT_IDS = {"tenant", "fmt"}


def _takes_ids(path: str) -> bool:
    return bool(set(path_parameters(path)) - NOT_IDS)


def _tenants(path: str) -> list[str]:
    """Both villages in the tenant segment, where the path has one."""
    return [A, B] if "{tenant}" in path or "{collection_id}" in path else [""]


def test_every_id_taking_operation_has_a_cross_tenant_case(openapi):
    missing = [
        f"{method} {path}"
        for method, path, _ in operations(openapi)
        if _takes_ids(path) and (method, path) not in CROSS
    ]
    assert not missing, "add these to CROSS in tests/security/test_cross_tenant.py:\n" + "\n".join(
        missing
    )
    listed = {(m, p) for m, p, _ in operations(openapi)}
    assert set(CROSS) <= listed, f"stale CROSS entries: {sorted(set(CROSS) - listed)}"


def test_another_villages_objects_answer_404_never_403(world, openapi):
    listed = {(m, p) for m, p, _ in operations(openapi)}
    problems, checked = [], 0
    for (method, path), case in CROSS.items():
        if (method, path) not in listed:
            continue
        for tenant in _tenants(path):
            values = {"fmt": "json", **case.ids(world, tenant)}
            if tenant:
                values["tenant"] = tenant
            url = fill(path, {p: values[p] for p in path_parameters(path)})
            body = body_for(world, method, path)
            headers = {**world.a_super.headers, **case.headers}
            response = send(world.client, method, url, headers, params=case.query, **body)
            checked += 1
            if response.status_code != 404:
                problems.append(describe(method, url, response))
    assert not problems, "\n".join(problems)
    assert checked >= 30
    _b_is_unchanged(world)


# A passer-by belongs to no village: a report without an account goes to whichever
# village its place lies in, if that village takes them (test_anonymous_reports.py).
# The villages' outlines are public (ADR 40): anyone reads any tenant's.
NO_CALLER_TENANT = {
    ("POST", "/v1/tenants/{tenant}/events:reportAnonymously"),
    ("POST", "/v1/tenants/{tenant}/events:attachAnonymously"),
    ("GET", "/v1/tenants/{tenant}/reportArea"),
}


def test_every_tenant_route_answers_404_for_another_village(world, openapi):
    """Lists, reads and creations addressed to B's tenant id, with valid bodies."""
    problems = []
    for method, path, _ in operations(openapi):
        if "{tenant}" not in path or _takes_ids(path) or (method, path) in NO_CALLER_TENANT:
            continue
        url = fill(path, {"tenant": B})
        query = {"purpose": PURPOSE} if path.endswith("/people") and method == "GET" else {}
        response = send(
            world.client,
            method,
            url,
            world.a_super.headers,
            params=query,
            **body_for(world, method, path),
        )
        if response.status_code != 404:
            problems.append(describe(method, url, response))
    assert not problems, "\n".join(problems)
    _b_is_unchanged(world)


def test_a_village_sees_its_town_but_not_its_neighbour(world):
    client, headers = world.client, world.a_super.headers
    assert client.get(f"/v1/tenants/{B}", headers=headers).status_code == 404
    assert client.get(f"/v1/tenants/{A}", headers=headers).status_code == 200
    assert client.get("/v1/tenants/sh-jiading-anting", headers=headers).status_code == 200
    children = client.get("/v1/tenants/sh-jiading-anting/children", headers=headers)
    if children.status_code == 200:
        shown = {t["path"] for t in children.json()["tenants"]}
        assert VILLAGE_B not in shown


def _ids(items: list[dict[str, object]], key: str = "id") -> set[str]:
    return {str(item[key]) for item in items}


def test_listing_a_villages_collections_never_shows_the_neighbours_objects(world):
    client, who = world.client, world.a_super.headers
    assert world.b.app is not None

    events = client.get(f"/v1/tenants/{A}/events", params={"page_size": 1000}, headers=who).json()[
        "events"
    ]
    assert world.a.event_id in _ids(events)
    assert world.b.event_id not in _ids(events)
    assert not client.get(
        f"/v1/tenants/{A}/events", params={"category": world.b.category}, headers=who
    ).json()["events"]
    stats = client.get(f"/v1/tenants/{A}/events:statistics", headers=who).json()
    assert world.b.category not in stats["by_category"]
    categories = client.get(f"/v1/tenants/{A}/categories", headers=who).json()["categories"]
    assert world.b.category not in {c["code"] for c in categories}

    people_url = f"/v1/tenants/{A}/people"
    found = client.get(
        people_url,
        params={"filter": f'id_number = "{world.b.person_id_number}"', "purpose": PURPOSE},
        headers=who,
    )
    assert found.status_code == 200, found.text
    assert found.json()["people"] == []
    seen: set[str] = set()
    token = ""
    while True:
        page = client.get(
            people_url,
            params={"page_size": 1000, "page_token": token, "purpose": PURPOSE},
            headers=who,
        ).json()
        seen |= _ids(page["people"])
        token = page["next_page_token"]
        if not token:
            break
    assert world.a.person_id in seen and world.b.person_id not in seen

    users = client.get(f"/v1/tenants/{A}/users", params={"page_size": 1000}, headers=who)
    assert world.b.user_id not in _ids(users.json()["users"])
    assert world.b.username not in {u["username"] for u in users.json()["users"]}
    apps = client.get(f"/v1/tenants/{A}/apps", params={"page_size": 1000}, headers=who)
    assert world.scopeless.app_id in _ids(apps.json()["apps"])
    assert world.b.app.app_id not in _ids(apps.json()["apps"])

    layers = client.get(f"/v1/tenants/{A}/layers", params={"page_size": 1000}, headers=who).json()
    names = {layer["name"] for layer in layers["layers"]}
    assert f"tenants/{B}/layers/{B_LAYER}" not in names
    assert not any(name.startswith(f"tenants/{B}/") for name in names)
    other = client.get(f"/v1/tenants/{B}/layers", headers=who)
    assert other.status_code == 404, describe("GET", f"/v1/tenants/{B}/layers", other)
    collections = client.get("/ogc/collections", headers=who).json()["collections"]
    assert not any(c["id"].startswith(f"{B}.") for c in collections)

    accounts = client.get(f"/v1/tenants/{A}/pointsAccounts", headers=who).json()
    assert world.b.points_account_id not in _ids(accounts["points_accounts"])
    entities = client.get(f"/v1/tenants/{A}/entities", params={"page_size": 1000}, headers=who)
    assert entities.status_code == 200, entities.text
    assert world.b.twin_entity_id not in {
        e["name"].rsplit("/", 1)[-1] for e in entities.json()["entities"]
    }
    history = client.get(
        f"/v1/tenants/{A}:queryHistory",
        params={
            "property": "level_cm",
            "entity": world.b.twin_entity_id,
            "start_time": "2000-01-01T00:00:00Z",
            "end_time": "2100-01-01T00:00:00Z",
        },
        headers=who,
    )
    assert history.status_code == 200 and not history.json().get("points"), history.text

    requests = client.get("/open311/v2/requests.json", headers=who).json()
    assert world.a.event_id in {r["service_request_id"] for r in requests}
    assert world.b.event_id not in {r["service_request_id"] for r in requests}
    unknown = client.get(
        "/open311/v2/requests.json", params={"service_code": world.b.category}, headers=who
    )
    assert unknown.status_code == 400


def _b_is_unchanged(world: World) -> None:
    """B's objects as B sees them: nothing A sent reached them."""
    client, who = world.client, world.b_super.headers
    assert world.b.app is not None
    event = client.get(f"/v1/tenants/{B}/events/{world.b.event_id}", headers=who).json()
    assert event["state"] == "reported" and event["comments"] == [], event
    user = client.get(f"/v1/tenants/{B}/users/{world.b.user_id}", headers=who).json()
    assert user["disabled"] is False and user["display_name"] != RENAMED, user
    app = client.get(f"/v1/tenants/{B}/apps/{world.b.app.app_id}", headers=who).json()
    assert app["display_name"] != RENAMED, app
    node = client.get(f"/v1/tenants/{B}", headers=who).json()
    assert node["display_name"] != RENAMED, node
    keys = client.get(f"/v1/tenants/{B}/apps/{world.b.app.app_id}/apiKeys", headers=who).json()
    assert [(k["id"], k["revoked"]) for k in keys["api_keys"]] == [(world.b.app.key_id, False)]
    layer = client.get(f"/v1/tenants/{B}/layers/{B_LAYER}", headers=who)
    assert layer.status_code == 200 and layer.json()["feature_count"] == 1, layer.text
    person = client.get(
        f"/v1/tenants/{B}/people/{world.b.person_id}", params={"purpose": PURPOSE}, headers=who
    )
    assert person.status_code == 200
    users = client.get(f"/v1/tenants/{B}/users", headers=who).json()["users"]
    assert not [u for u in users if u["username"].startswith("planted.")]
    apps = client.get(f"/v1/tenants/{B}/apps", headers=who).json()["apps"]
    assert not [a for a in apps if a["display_name"] == "Planted app"]
    layers = client.get(f"/v1/tenants/{B}/layers", headers=who).json()["layers"]
    assert not [x for x in layers if x["layer_id"].startswith("planted-")]
    account = client.get(
        f"/v1/tenants/{B}/pointsAccounts/{world.b.points_account_id}", headers=who
    ).json()
    assert account["balance"] == 40, account
    records = client.get(f"/v1/tenants/{B}/forms/{world.b.form_id}/records", headers=who).json()
    assert [r["values"] for r in records["records"]] == [{"count": "3"}], records
    runs = client.get(
        f"/v1/tenants/{B}/reportTemplates/{world.b.report_template_id}/runs", headers=who
    ).json()["report_runs"]
    assert [r["id"] for r in runs] == [world.b.report_run_id], runs
    notices = client.get(f"/v1/tenants/{B}/notices", headers=who).json()["notices"]
    assert [n["id"] for n in notices] == [world.b.notice_id], notices
    rules = client.get(f"/v1/tenants/{B}/pointsRules", headers=who).json()["points_rules"]
    assert not [r for r in rules if r["display_name"] == "Planted rule"]
    policies = client.get(f"/v1/tenants/{B}/creditPolicies", headers=who).json()
    assert [p["id"] for p in policies["credit_policies"]] == [world.b.credit_policy_id], policies
    consents = client.get(f"/v1/tenants/{B}/creditConsents", headers=who).json()
    assert [(c["id"], c["state"]) for c in consents["credit_consents"]] == [
        (world.b.credit_consent_id, "active")
    ], consents
    children = client.get(f"/v1/tenants/{B}/children", headers=who).json()["tenants"]
    assert not children or all("Security suite" not in t["display_name"] for t in children)
    gauge = client.get(f"/v1/tenants/{B}/entities/{world.b.twin_entity_id}", headers=who)
    assert gauge.status_code == 200, gauge.text
    assert not [p for p in gauge.json()["properties"] if p["value"] == 999.0], gauge.text
    entities = client.get(f"/v1/tenants/{B}/entities", headers=who).json()["entities"]
    assert not [e for e in entities if "/entities/planted-" in e["name"]]
    rules = client.get(f"/v1/tenants/{B}/rules", headers=who).json().get("rules", [])
    assert not [r for r in rules if "/rules/planted-" in r["name"]]
    handler = client.get(f"/v1/tenants/{B}/handlers/{world.b.handler_id}", headers=who).json()
    assert handler["display_name"] != RENAMED and handler["position"] is not None, handler
    assert abs(handler["position"]["longitude"] - world.b.point[0]) < 1e-6, handler
    rule = client.get(f"/v1/tenants/{B}/routingRules/{world.b.rule_id}", headers=who)
    assert rule.status_code == 200, rule.text
    plan = client.get(f"/v1/tenants/{B}/emergencyPlans/{world.b.emergency_plan_id}", headers=who)
    assert plan.status_code == 200 and plan.json()["display_name"] != RENAMED, plan.text
    service = client.get(f"/v1/tenants/{B}/servicePlans/{world.b.service_plan_id}", headers=who)
    assert service.status_code == 200 and service.json()["display_name"] != RENAMED, service.text
    task = client.get(f"/v1/tenants/{B}/tasks/{world.b.task_id}", headers=who).json()
    assert task["state"] == "waiting" and task["transfers"] == [], task
    rules = client.get(f"/v1/tenants/{B}/routingRules", headers=who).json()["routing_rules"]
    assert [r["id"] for r in rules if r["name"].startswith(f"tenants/{B}/")] == [world.b.rule_id]
    gauge = client.get(
        f"/ngsi-ld/v1/entities/urn:ngsi-ld:WaterLevelGauge:{world.b.twin_entity_id}", headers=who
    )
    assert gauge.status_code == 200 and "level_cm" not in gauge.json(), gauge.text
    subscriptions = client.get(f"/v1/tenants/{B}/subscriptions", headers=who).json()
    assert [s["name"].rsplit("/", 1)[-1] for s in subscriptions["subscriptions"]] == [
        world.b.subscription_id
    ]
    plan = client.get(f"/v1/tenants/{B}/emergencyPlans/{world.b.emergency_plan_id}", headers=who)
    assert plan.status_code == 200 and plan.json()["current_level"] == 0, plan.text
    plans = client.get(f"/v1/tenants/{B}/emergencyPlans", headers=who).json()["emergency_plans"]
    assert [p["id"] for p in plans] == [world.b.emergency_plan_id]
    order = client.get(f"/v1/tenants/{B}/serviceOrders/{world.b.service_order_id}", headers=who)
    assert order.status_code == 200 and order.json()["state"] == "assigned", order.text
    services = client.get(f"/v1/tenants/{B}/servicePlans", headers=who).json()["service_plans"]
    assert [p["id"] for p in services] == [world.b.service_plan_id]


def test_the_event_stream_carries_only_the_callers_subtree(world):
    """B reports, then A reports: A's stream shows A's event and never B's."""
    headers = {**world.a_super.headers, "Accept": "text/event-stream"}
    seen: list[str] = []
    with world.client.stream(
        "GET", f"/v1/tenants/{A}/events:stream", headers=headers, timeout=20
    ) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith(": connected")
        b_event = report_event(world.client, world.b_super, world.b.point, world.b.category, "b")
        a_event = report_event(
            world.client, world.a_super, world.a.point, "environment.garbage", "a streamed"
        )
        deadline = time.monotonic() + 15
        for line in lines:  # keep-alive comments arrive at least every 15 s
            if time.monotonic() > deadline:
                break
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: "))["id"])
                if a_event in seen:
                    break
    assert a_event in seen
    assert b_event not in seen

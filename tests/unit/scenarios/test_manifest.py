"""Manifests and overrides: every shipped manifest is valid, and every mistake is one error
naming the path of the field at fault."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scenarios.composer import ManifestError, catalog, parse
from scenarios.composer.manifest import render, resolve_settings
from scenarios.composer.plan import desired_of

VILLAGE = "tenants/sh-jiading-anting-xingming"


def shipped(scenario: str) -> dict[str, Any]:
    import yaml

    path = catalog.SCENARIOS_DIR / scenario / "manifest.yaml"
    return dict(yaml.safe_load(path.read_text()))


def test_every_shipped_manifest_is_valid_and_renders_for_a_village():
    found = catalog.available()
    assert {"citizen-report", "fire-smoke", "grid-patrol", "volunteer-hours"} <= set(found)
    for manifest in found.values():
        desired = desired_of(manifest, manifest.defaults(), VILLAGE)
        assert len(desired) == len(manifest.resources) > 0
        assert manifest.catalog_item == f"catalogItems/scenario-{manifest.id}"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda m: m.pop("version"), "(manifest)"),
        (lambda m: m.update(version="one"), "version"),
        (lambda m: m.update(area="space"), "area"),
        (lambda m: m["command"]["routing_rules"][0].pop("category"), "command.routing_rules[0]"),
        (
            lambda m: m["command"]["routing_rules"][0].update(id="Bad Id"),
            "command.routing_rules[0].id",
        ),
        (
            lambda m: m["settings"]["response_minutes"].update(default=0),
            "settings.response_minutes.default",
        ),
        (
            lambda m: m["settings"]["response_minutes"].update(type="float"),
            "settings.response_minutes.type",
        ),
        (
            lambda m: m["command"]["routing_rules"][0].update(handlerRole="${nobody}"),
            "command.routing_rules[0].handlerRole",
        ),
        (lambda m: m.update(unknown=1), "(manifest)"),
        (lambda m: m.update(components=["events"]), "components"),
        (
            lambda m: m["events"]["categories"].append(dict(m["events"]["categories"][0])),
            "events.categories[1].id",
        ),
    ],
)
def test_a_bad_manifest_is_one_error_naming_the_field(change, path):
    data = copy.deepcopy(shipped("fire-smoke"))
    change(data)
    with pytest.raises(ManifestError) as refused:
        parse(data, "fire-smoke/manifest.yaml")
    assert refused.value.path == path, str(refused.value)
    assert str(refused.value).startswith(f"fire-smoke/manifest.yaml: {path}: ")


def test_a_field_the_component_does_not_know_is_named_at_its_resource():
    data = shipped("fire-smoke")
    data["command"]["routing_rules"][0]["handlerRoll"] = "grid_worker"
    manifest = parse(data)
    with pytest.raises(ManifestError) as refused:
        desired_of(manifest, manifest.defaults(), VILLAGE)
    assert refused.value.path == "command.routing_rules[0]"
    assert "handlerRoll" in refused.value.message


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        ({"response_minutes": 0}, "overrides.response_minutes", "at least 1"),
        ({"response_minutes": 61}, "overrides.response_minutes", "at most 60"),
        ({"response_minutes": "5"}, "overrides.response_minutes", "type integer"),
        ({"response_minutes": True}, "overrides.response_minutes", "type integer"),
        ({"handler_role": "mayor"}, "overrides.handler_role", "one of"),
        ({"radius": 5}, "overrides.radius", "not a setting"),
        ({"smoke_trigger": float("nan")}, "overrides.smoke_trigger", "finite number"),
        ({"smoke_trigger": float("inf")}, "overrides.smoke_trigger", "finite number"),
        ({"smoke_trigger": float("-inf")}, "overrides.smoke_trigger", "finite number"),
    ],
)
def test_a_bad_override_names_the_setting(overrides, path, words):
    manifest = catalog.get("fire-smoke")
    with pytest.raises(ManifestError) as refused:
        resolve_settings(manifest, overrides)
    assert refused.value.path == path
    assert words in refused.value.message


def test_settings_fill_in_typed_values_and_durations():
    manifest = catalog.get("fire-smoke")
    values = resolve_settings(manifest, {"response_minutes": 3, "smoke_trigger": 0.4})
    assert values["handler_role"] == "grid_worker"  # the default
    rule = next(d for d in manifest.resources if d.kind == "command.routing_rules")
    spec = render(rule.spec, values)
    assert spec["responseSla"] == "180s"
    assert spec["handlerRole"] == "grid_worker"
    twin = next(d for d in manifest.resources if d.kind == "twin.rules")
    assert render(twin.spec, values)["threshold"]["trigger"] == 0.4
    # Long durations stay digits a Duration parses (not "1.296e+06s").
    assert render("${days|hours}", {"days": 360}) == "1296000s"
    assert render("${n|seconds}", {"n": 1.5}) == "1.5s"
    assert render("${village}/x ${tenant}", {"village": "a/b", "tenant": "tenants/a-b"}) == (
        "a/b/x tenants/a-b"
    )


def test_an_unknown_scenario_names_the_known_ones():
    with pytest.raises(ManifestError) as refused:
        catalog.get("no-such-scenario")
    assert refused.value.path == "scenario"
    assert "fire-smoke" in refused.value.message


def test_a_report_template_names_its_form_unless_it_reads_events_or_tasks():
    data = shipped("muck-trucks")
    parse(copy.deepcopy(data), "muck-trucks/manifest.yaml")  # events: no form needed
    data["empower"]["report_templates"][0].pop("source")
    with pytest.raises(ManifestError) as refused:
        parse(data, "muck-trucks/manifest.yaml")
    assert refused.value.path == "empower.report_templates[0]"
    assert "'form' is a required property" in str(refused.value)


def test_the_catalogue_ships_all_25_scenarios():
    assert len(catalog.available()) == 25


def test_a_credit_policy_takes_the_villages_weights_and_bands():
    manifest = catalog.get("rural-credit")
    settings = {**manifest.defaults(), "points_weight": 3, "band_b_min": 500}
    policy = next(
        d.message
        for d in desired_of(manifest, settings, VILLAGE)
        if d.declared.key == "rural-credit"
    )
    assert (policy.window_days, policy.base_score, policy.points_weight) == (365, 400, 3)
    assert [(b.band, b.min_score) for b in policy.bands] == [
        ("A", 700),
        ("B", 500),
        ("C", 400),
        ("D", 0),
    ]
    data = shipped("rural-credit")
    data["empower"]["credit_policies"][0]["id"] = "Rural.Credit"
    with pytest.raises(ManifestError) as error:
        parse(data, "rural-credit")
    assert error.value.path == "empower.credit_policies[0].id"


def test_a_rendered_value_the_component_would_refuse_names_the_override_at_plan():
    rural = catalog.get("rural-credit")
    parent = "tenants/sh-jiading-anting-xiangyang"
    overrides = {"band_a_min": 500}  # below band B's default 550
    with pytest.raises(ManifestError) as refused:
        desired_of(rural, resolve_settings(rural, overrides), parent, overrides)
    assert refused.value.path == "overrides.band_a_min"
    assert "empower.credit_policies[0].bands[1].min_score" in refused.value.message
    assert "highest first" in refused.value.message
    fine = {"band_a_min": 800}
    assert desired_of(rural, resolve_settings(rural, fine), parent, fine)


def test_a_component_normalising_a_field_settles_once_recorded():
    from scenarios.composer.plan import Record, Recorded, diff, seen_digest

    rural = catalog.get("rural-credit")
    parent = "tenants/sh-jiading-anting-xiangyang"
    overrides = {"monthly_cap": 0}
    [rule] = [
        d
        for d in desired_of(rural, resolve_settings(rural, overrides), parent, overrides)
        if d.declared.kind == "empower.points_rules"
    ]
    made = copy.deepcopy(rule.message)
    made.ClearField("cap_period")  # no cap keeps no period, as empower stores it
    made.name = f"{parent}/pointsRules/r1"
    actual = {"empower.points_rules": {made.name: made}}
    digest = f"{rule.digest}/{seen_digest(made, rule.written)}"
    record = Record(
        "r",
        "rural-credit",
        "1.0.0",
        True,
        overrides,
        (Recorded(made.name, rule.declared.kind, rule.declared.key, digest, True),),
    )
    plan = diff(parent, "rural-credit", "1.0.0", overrides, [rule], actual, record, [])
    assert [a.op.value for a in plan.actions] == ["keep"] and plan.empty, plan.render()
    # A hand change is still a change.
    made.points = 99
    again = diff(parent, "rural-credit", "1.0.0", overrides, [rule], actual, record, [])
    assert [a.op.value for a in again.actions] == ["replace"]
    assert "points" in again.actions[0].fields


def test_going_back_to_an_empty_default_is_a_change():
    """`level2_team` set, then reset to its default "": the plan dispatching the team
    must change back (an empty string is a value the manifest writes, not "unset")."""
    from scenarios.composer.plan import Record, Recorded, diff, differences, seen_digest

    crowd = catalog.get("crowd-surge")
    parent = "tenants/sh-jiading-anting-xiangyang"

    def plan_of(overrides: dict[str, Any]) -> Any:
        settings = resolve_settings(crowd, overrides)
        return next(
            d
            for d in desired_of(crowd, settings, parent, overrides)
            if d.declared.kind == "command.emergency_plans"
        )

    chosen = plan_of({"level2_team": "other_team"})
    made = copy.deepcopy(chosen.message)
    made.name = f"{parent}/emergencyPlans/ep1"
    actual = {"command.emergency_plans": {made.name: made}}
    digest = f"{chosen.digest}/{seen_digest(made, chosen.written)}"
    record = Record(
        "r",
        "crowd-surge",
        crowd.version,
        True,
        {"level2_team": "other_team"},
        (Recorded(made.name, chosen.declared.kind, chosen.declared.key, digest, True),),
    )
    kept = diff(parent, crowd.id, crowd.version, {}, [chosen], actual, record, [])
    assert [a.op.value for a in kept.actions] == ["keep"]
    back = plan_of({})
    plan = diff(parent, crowd.id, crowd.version, {}, [back], actual, record, [])
    [action] = plan.actions
    assert action.op.value != "keep" and "levels" in action.fields, plan.render()
    # The fields alone differ too (a record from before kept no component form).
    assert differences(back, made) == ("levels",)

"""The composer against the running platform: plans read like `terraform plan`, shared
resources survive an uninstall, upgrades go through a plan, a failed apply says
`incomplete` and the next apply finishes it. Works in Xiangyang, away from the loops."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import grpc
import pytest
import yaml

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.command.v1 import plans_service_pb2 as plans_pb
from grassroots.empower.v1 import catalog_service_pb2 as catalog_pb
from grassroots.events.v1 import events_service_pb2 as events_pb
from scenarios.composer import ApplyError, Composer, ManifestError, Op, PlanBlocked, catalog, parse
from scenarios.composer.composer import _Acting, composer_principal
from scenarios.composer.kinds import KINDS
from services.kit import tenancy
from services.kit.principal import Principal
from tests.scenarios.harness import XIANGYANG, Platform

PARENT = tenancy.tenant_name(XIANGYANG)


def manifest_data(scenario: str) -> dict[str, Any]:
    path = catalog.SCENARIOS_DIR / scenario / "manifest.yaml"
    return dict(yaml.safe_load(path.read_text()))


async def _rule_names(composer: Composer) -> set[str]:
    with _Acting(composer_principal(XIANGYANG)):
        listed = await composer.stubs.command.ListRoutingRules(
            command_pb.ListRoutingRulesRequest(parent=PARENT, page_size=1000)
        )
    return {r.name for r in listed.routing_rules}


async def _category_names(composer: Composer) -> set[str]:
    with _Acting(composer_principal(XIANGYANG)):
        listed = await composer.stubs.events.ListCategories(
            events_pb.ListCategoriesRequest(parent=PARENT, page_size=1000)
        )
    return {c.name for c in listed.categories}


def test_uninstall_removes_what_one_scenario_owns_and_keeps_what_another_uses(
    platform: Platform,
):
    # A second scenario that also needs the garbage category, exactly as citizen-report has it.
    report = catalog.get("citizen-report")
    volunteers = manifest_data("volunteer-hours")
    garbage = next(c for c in manifest_data("citizen-report")["events"]["categories"])
    volunteers["events"]["categories"].append(garbage)
    volunteers["settings"].update(
        {k: v for k, v in manifest_data("citizen-report")["settings"].items() if "duplicate" in k}
    )
    sharing = parse(volunteers, "volunteer-hours (sharing)")
    category = f"{PARENT}/categories/environment.garbage"

    async def work(composer: Composer) -> None:
        first = await composer.apply(XIANGYANG, report)
        assert first.state == "complete"
        plan = await composer.plan(XIANGYANG, sharing)
        shared = next(a for a in plan.actions if a.key == "environment.garbage")
        assert shared.op == Op.KEEP and "shared with citizen-report" in shared.note
        await composer.apply(XIANGYANG, sharing)

        leaving = await composer.plan_uninstall(XIANGYANG, "citizen-report")
        text = leaving.render()
        assert text.startswith(f"uninstall citizen-report 1.0.0 from {PARENT}")
        assert ". events.categories environment.garbage" in text
        assert "still used by volunteer-hours" in text
        assert "- command.routing_rules citizen-report-environment" in text
        done = await composer.uninstall(XIANGYANG, "citizen-report")
        assert done.state == "removed"

        rules = await _rule_names(composer)
        assert not any("/citizen-report-" in r for r in rules)
        assert f"{PARENT}/routingRules/volunteer-hours-tasks" in rules
        assert category in await _category_names(composer)
        installed = {i.scenario: i for i in await composer.installed(XIANGYANG)}
        assert "citizen-report" not in installed
        assert installed["volunteer-hours"].state == "complete"
        assert category in {r.name for r in installed["volunteer-hours"].resources}

        # The district sees the village's installs in the adoption view.
        with _Acting(composer_principal(XIANGYANG)):
            adoption = await composer.stubs.catalog.GetAdoption(
                catalog_pb.GetAdoptionRequest(name=f"{PARENT}/adoption")
            )
        node = next(n for n in adoption.nodes if n.tenant == XIANGYANG)
        assert "catalogItems/scenario-volunteer-hours" in node.scenarios
        assert "catalogItems/scenario-citizen-report" not in node.scenarios

        await composer.uninstall(XIANGYANG, "volunteer-hours")
        assert not any("/volunteer-hours-" in r for r in await _rule_names(composer))

    platform.composer(work)


def test_an_upgrade_is_planned_and_applied_keeping_the_villages_overrides(platform: Platform):
    v1 = catalog.get("fire-smoke")
    newer = manifest_data("fire-smoke")
    newer["version"] = "1.1.0"
    newer["settings"]["response_minutes"]["default"] = 3
    newer["twin"]["rules"][0]["severity"] = 4
    v2 = parse(newer, "fire-smoke 1.1.0")

    async def work(composer: Composer) -> None:
        await composer.apply(XIANGYANG, v1, {"smoke_trigger": 0.7})
        plan = await composer.plan(XIANGYANG, v2)
        text = plan.render()
        assert text.startswith(f"upgrade fire-smoke 1.0.0 -> 1.1.0 in {PARENT}")
        ops = {a.key + "/" + a.kind: a for a in plan.actions}
        rule = ops["fire-smoke-alarm/command.routing_rules"]
        assert rule.op == Op.REPLACE and set(rule.fields) == {"responseSla"}
        twin_rule = ops["fire-smoke-alarm/twin.rules"]
        assert twin_rule.op == Op.REPLACE and twin_rule.fields == ("severity",)
        assert ops["safety.smoke_alarm/events.categories"].op == Op.UPDATE
        assert plan.settings == {"smoke_trigger": 0.7}  # the village's override is kept

        upgraded = await composer.upgrade(XIANGYANG, v2)
        assert upgraded.state == "complete"
        shown = await composer.show(XIANGYANG, "fire-smoke")
        assert shown is not None and (shown.version, shown.state) == ("1.1.0", "complete")
        assert (await composer.plan(XIANGYANG, v2)).empty
        await composer.uninstall(XIANGYANG, "fire-smoke")

    platform.composer(work)


def test_a_failed_apply_is_recorded_incomplete_and_the_next_apply_finishes_it(
    platform: Platform,
):
    broken = manifest_data("grid-patrol")
    template = broken["empower"]["report_templates"][0]
    nonsense = {"label": "Nonsense", "aggregate": "AGGREGATE_SUM", "field": "no_such_field"}
    template["columns"] = [*copy.deepcopy(template["columns"]), nonsense]
    bad = parse(broken, "grid-patrol (broken)")
    good = catalog.get("grid-patrol")

    async def work(composer: Composer) -> None:
        with pytest.raises(ApplyError) as failed:
            await composer.apply(XIANGYANG, bad)
        assert failed.value.path.startswith("empower.report_templates[0].")
        shown = await composer.show(XIANGYANG, "grid-patrol")
        assert shown is not None and shown.state == "incomplete"
        # What the first steps made is in place and recorded as this install's.
        assert f"{PARENT}/categories/patrol.finding" in await _category_names(composer)
        assert f"{PARENT}/categories/patrol.finding" in {r.name for r in shown.resources}

        plan = await composer.plan(XIANGYANG, good)
        assert "stopped half-way" in plan.render()
        assert {a.op for a in plan.actions if a.kind != "empower.report_templates"} == {Op.KEEP}
        finished = await composer.apply(XIANGYANG, good)
        assert finished.state == "complete"
        shown = await composer.show(XIANGYANG, "grid-patrol")
        assert shown is not None and shown.state == "complete"
        assert (await composer.plan(XIANGYANG, good)).empty

    platform.composer(work)


def test_a_refused_replacement_puts_the_old_resource_back_and_a_downgrade_is_refused(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
):
    # A refusal no plan check foresees (the plan runs command's own checks, so they are
    # left out here): the component refuses the create after the delete.
    rules = KINDS["command.routing_rules"]
    monkeypatch.setitem(KINDS, rules.name, dataclasses.replace(rules, check=None))
    good = catalog.get("ebike-charging")
    broken = manifest_data("ebike-charging")
    broken["command"]["routing_rules"][0]["priority"] = 100000  # command refuses it
    bad = parse(broken, "ebike-charging (refused priority)")
    older = manifest_data("ebike-charging")
    older["version"] = "0.0.1"
    old = parse(older, "ebike-charging 0.0.1")
    rule = f"{PARENT}/routingRules/ebike-charging-inspection"

    async def work(composer: Composer) -> None:
        await composer.apply(XIANGYANG, good, {"resolution_hours": 12})
        with pytest.raises(ApplyError) as failed:
            await composer.apply(XIANGYANG, bad)
        assert failed.value.path == "command.routing_rules[0].priority"
        assert "was put back as it was" in str(failed.value)
        with _Acting(composer_principal(XIANGYANG)):
            kept = await composer.stubs.command.GetRoutingRule(
                command_pb.GetRoutingRuleRequest(name=rule)
            )
        assert kept.priority == 10
        shown = await composer.show(XIANGYANG, "ebike-charging")
        assert shown is not None and shown.state == "incomplete"
        assert shown.overrides == {"resolution_hours": 12}
        finished = await composer.apply(XIANGYANG, good)
        assert finished.state == "complete"
        assert (await composer.plan(XIANGYANG, good)).empty

        down = await composer.plan(XIANGYANG, old)
        assert down.render().startswith(f"downgrade ebike-charging 1.0.0 -> 0.0.1 in {PARENT}")
        assert any("downgrade" in b for b in down.blockers)
        with pytest.raises(PlanBlocked):
            await composer.apply(XIANGYANG, old)
        allowed = await composer.plan(XIANGYANG, old, allow_downgrade=True)
        assert not allowed.blockers
        await composer.uninstall(XIANGYANG, "ebike-charging")

    platform.composer(work)


def test_no_cap_settles_and_later_overrides_merge_with_the_villages(platform: Platform):
    rural = catalog.get("rural-credit")

    async def work(composer: Composer) -> None:
        with pytest.raises(ManifestError) as refused:
            await composer.plan(XIANGYANG, rural, {"band_a_min": 500})
        assert refused.value.path == "overrides.band_a_min"
        assert await composer.show(XIANGYANG, "rural-credit") is None

        await composer.apply(XIANGYANG, rural, {"monthly_cap": 0})
        again = await composer.plan(XIANGYANG, rural)
        assert again.empty, again.render()  # installing twice changes nothing
        assert (await composer.apply(XIANGYANG, rural)).done == ()

        merged = await composer.plan(XIANGYANG, rural, {"points_per_deed": 10})
        assert merged.settings == {"monthly_cap": 0, "points_per_deed": 10}
        await composer.apply(XIANGYANG, rural, {"points_per_deed": 10})
        assert (await composer.plan(XIANGYANG, rural, {"deed_weight": 6})).settings == {
            "monthly_cap": 0,
            "points_per_deed": 10,
            "deed_weight": 6,
        }
        assert (await composer.plan(XIANGYANG, rural, {})).settings == {}
        only = await composer.plan(XIANGYANG, rural, {"deed_weight": 6}, reset=True)
        assert only.settings == {"deed_weight": 6}
        await composer.uninstall(XIANGYANG, "rural-credit")

    platform.composer(work)


async def _live_plans(composer: Composer) -> list[plans_pb.EmergencyPlan]:
    with _Acting(composer_principal(XIANGYANG)):
        listed = await composer.stubs.plans.ListEmergencyPlans(
            plans_pb.ListEmergencyPlansRequest(parent=PARENT, page_size=1000)
        )
    return [p for p in listed.emergency_plans if p.display_name == CROWD_PLAN]


async def _change_level(composer: Composer, name: str, level: int) -> plans_pb.EmergencyPlan:
    """A commander of the village (the composer's own principal holds no dispatch)."""
    commander = Principal(
        subject="services/test-commander",
        tenant=XIANGYANG,
        kind="service",
        scopes=frozenset({"command:read", "command:write", "command:dispatch"}),
    )
    with _Acting(commander):
        return await composer.stubs.plans.ChangeEmergencyLevel(
            plans_pb.ChangeEmergencyLevelRequest(name=name, level=level, reason="the test")
        )


CROWD_PLAN = "Crowd surge at a hotspot (scenario)"


def test_a_setting_changes_the_emergency_plan_in_place_leaving_one_live_plan(
    platform: Platform,
):
    """A setting that feeds the plan changes it where it is: the same plan, the new
    values, no second plan left dispatching beside it."""
    crowd = catalog.get("crowd-surge")

    async def work(composer: Composer) -> None:
        await composer.apply(XIANGYANG, crowd)
        try:
            [before] = await _live_plans(composer)
            plan = await composer.plan(XIANGYANG, crowd, {"level2_team": "xiangyang_volunteer"})
            [changed] = [a for a in plan.actions if a.kind == "command.emergency_plans"]
            assert (changed.op, changed.name, changed.fields) == (
                Op.UPDATE,
                before.name,
                ("levels",),
            )
            assert not plan.warnings or all("keeps working" not in w for w in plan.warnings)
            assert "~ command.emergency_plans crowd-surge-plan" in plan.render()
            await composer.apply(XIANGYANG, crowd, {"level2_team": "xiangyang_volunteer"})
            [after] = await _live_plans(composer)
            assert after.name == before.name
            assert after.levels[1].dispatches[0].team == "xiangyang_volunteer"
            assert (await composer.plan(XIANGYANG, crowd)).empty
            # Under an active level the levels cannot change: a blocker, before any step.
            await _change_level(composer, after.name, 2)
            held = await composer.plan(XIANGYANG, crowd, {"level2_team": "xiangyang_crowd"})
            assert any("level 2" in b and "stand it down first" in b for b in held.blockers)
            with pytest.raises(PlanBlocked):
                await composer.apply(XIANGYANG, crowd, {"level2_team": "xiangyang_crowd"})
            leaving = await composer.plan_uninstall(XIANGYANG, "crowd-surge")
            assert any("crowd-surge-plan" in b and "level 2" in b for b in leaving.blockers)
            with pytest.raises(PlanBlocked):
                await composer.uninstall(XIANGYANG, "crowd-surge")
            installed = await composer.show(XIANGYANG, "crowd-surge")
            assert installed is not None and installed.state == "complete"
            assert [p.name for p in await _live_plans(composer)] == [after.name]
            await _change_level(composer, after.name, 0)
        finally:
            await composer.uninstall(XIANGYANG, "crowd-surge")

    platform.composer(work)


def test_uninstall_deletes_the_plan_and_a_reinstall_leaves_one_live_plan(platform: Platform):
    """Uninstalling deletes the plan the scenario made (it can no longer be raised); a
    reinstall makes one new plan, which the scenario can change again."""
    crowd = catalog.get("crowd-surge")

    async def work(composer: Composer) -> None:
        await composer.apply(XIANGYANG, crowd)
        [first] = await _live_plans(composer)
        leaving = await composer.plan_uninstall(XIANGYANG, "crowd-surge")
        assert "- command.emergency_plans crowd-surge-plan" in leaving.render()
        await composer.uninstall(XIANGYANG, "crowd-surge")
        assert await _live_plans(composer) == []
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await _change_level(composer, first.name, 2)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND

        await composer.apply(XIANGYANG, crowd)
        try:
            [again] = await _live_plans(composer)
            assert again.name != first.name and again.current_level == 0
            changed = await composer.apply(XIANGYANG, crowd, {"level2_team": "xiangyang_crowd"})
            assert changed.state == "complete"
            assert [p.name for p in await _live_plans(composer)] == [again.name]
        finally:
            await composer.uninstall(XIANGYANG, "crowd-surge")
        assert await _live_plans(composer) == []

    platform.composer(work)


def test_a_resource_its_component_refuses_blocks_the_plan_and_install_does_nothing(
    platform: Platform,
):
    """crowd-surge 1.2.0 without level 2: command refuses the plan, so the plan says so
    and an install changes nothing (it once created 3 of 4 resources, then stopped)."""
    data = manifest_data("crowd-surge")
    data["version"] = "1.2.0"
    data["command"]["emergency_plans"][0]["displayName"] = "Crowd surge (no level 2)"
    levels = data["command"]["emergency_plans"][0]["levels"]
    levels[:] = [level for level in levels if level["level"] != 2]
    broken = parse(data, "crowd-surge 1.2.0 (no level 2)")

    async def work(composer: Composer) -> None:
        before = await _rule_names(composer)
        plan = await composer.plan(XIANGYANG, broken)
        assert any(
            b.startswith("command.emergency_plans[0].levels: level 2 is missing")
            for b in plan.blockers
        ), plan.blockers
        with pytest.raises(PlanBlocked):
            await composer.apply(XIANGYANG, broken)
        assert await composer.show(XIANGYANG, "crowd-surge") is None
        assert await _rule_names(composer) == before

    platform.composer(work)


def test_a_newer_version_that_stopped_half_way_can_go_back_to_the_shipped_one(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
):
    # A refusal no plan check foresees (command's own checks left out of the plan here).
    rules = KINDS["command.routing_rules"]
    monkeypatch.setitem(KINDS, rules.name, dataclasses.replace(rules, check=None))
    broken = manifest_data("ebike-charging")
    broken["version"] = "9.0.0"
    broken["command"]["routing_rules"][0]["priority"] = 100000  # command refuses it
    newer = parse(broken, "ebike-charging 9.0.0 (broken)")
    shipped = catalog.get("ebike-charging")

    async def work(composer: Composer) -> None:
        assert await composer.show(XIANGYANG, "ebike-charging") is None
        with pytest.raises(ApplyError):
            await composer.apply(XIANGYANG, newer)
        shown = await composer.show(XIANGYANG, "ebike-charging")
        assert shown is not None and (shown.version, shown.state) == ("9.0.0", "incomplete")
        back = await composer.plan(XIANGYANG, shipped)
        assert not back.blockers, back.blockers
        assert any("never finished" in w for w in back.warnings), back.warnings
        assert (await composer.apply(XIANGYANG, shipped)).state == "complete"
        shown = await composer.show(XIANGYANG, "ebike-charging")
        assert shown is not None and (shown.version, shown.state) == (shipped.version, "complete")
        await composer.uninstall(XIANGYANG, "ebike-charging")

    platform.composer(work)


def test_going_back_to_an_empty_default_changes_the_plan_back(platform: Platform):
    data = manifest_data("crowd-surge")  # a title of its own: no plan an earlier test left
    data["command"]["emergency_plans"][0]["displayName"] = "Crowd surge (empty default)"
    crowd = parse(data, "crowd-surge (own title)")

    async def teams(composer: Composer) -> list[str]:
        shown = await composer.show(XIANGYANG, "crowd-surge")
        assert shown is not None
        [name] = [r.name for r in shown.resources if r.kind == "command.emergency_plans"]
        with _Acting(composer_principal(XIANGYANG)):
            plan = await composer.stubs.plans.GetEmergencyPlan(
                plans_pb.GetEmergencyPlanRequest(name=name)
            )
        return [d.team for level in plan.levels for d in level.dispatches if d.role == "volunteer"]

    async def work(composer: Composer) -> None:
        await composer.apply(XIANGYANG, crowd, {"level2_team": "other_team"})
        try:
            assert await teams(composer) == ["other_team"]
            plan = await composer.plan(XIANGYANG, crowd, reset=True)
            [changed] = [a for a in plan.actions if a.kind == "command.emergency_plans"]
            assert changed.op != Op.KEEP and "levels" in changed.fields, plan.render()
            await composer.apply(XIANGYANG, crowd, reset=True)
            assert await teams(composer) == [""]
            assert (await composer.plan(XIANGYANG, crowd)).empty
        finally:
            await composer.uninstall(XIANGYANG, "crowd-surge")

    platform.composer(work)


def test_a_template_not_on_the_shelf_is_blocked_before_anything_changes(platform: Platform):
    """Empower records installs of catalog templates only: a manifest of another id
    plans with a blocker saying so, and an install changes nothing."""
    data = manifest_data("ebike-charging")
    data["id"] = "mine-not-shelved"
    mine = parse(data, "mine/manifest.yaml")

    async def work(composer: Composer) -> None:
        before = await _rule_names(composer)
        plan = await composer.plan(XIANGYANG, mine)
        assert any("is not a template of the catalog" in b for b in plan.blockers), plan.blockers
        with pytest.raises(PlanBlocked) as refused:
            await composer.apply(XIANGYANG, mine)
        assert "scenarios/mine-not-shelved/manifest.yaml" in str(refused.value)
        assert await composer.show(XIANGYANG, "mine-not-shelved") is None
        assert await _rule_names(composer) == before

    platform.composer(work)

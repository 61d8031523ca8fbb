"""How the composer plans emergency plans, worked out without a platform: a changed
setting changes the plan in place, an uninstall deletes it unless another scenario
lists it, and a plan standing at a level blocks what would change its levels or delete
it (tests/scenarios/test_composer.py runs the same against the platform)."""

from __future__ import annotations

import copy

from scenarios.composer import catalog
from scenarios.composer.manifest import resolve_settings
from scenarios.composer.plan import Op, Record, Recorded, desired_of, diff, seen_digest

PARENT = "tenants/sh-jiading-anting-xiangyang"
KIND = "command.emergency_plans"
NAME = f"{PARENT}/emergencyPlans/ep_1"


def _crowd(overrides):
    crowd = catalog.get("crowd-surge")
    desired = desired_of(crowd, resolve_settings(crowd, overrides), PARENT, overrides)
    return desired


def _installed(level: int = 0):
    """The village after an install with the defaults: the plan as command made it."""
    desired = _crowd({})
    [plan] = [d for d in desired if d.declared.kind == KIND]
    made = copy.deepcopy(plan.message)
    made.name = NAME
    made.current_level = level
    digest = f"{plan.digest}/{seen_digest(made, plan.written)}"
    record = Record(
        "r",
        "crowd-surge",
        "1.0.0",
        True,
        {},
        (Recorded(NAME, KIND, plan.declared.key, digest, True),),
    )
    return {KIND: {NAME: made}}, record


def _plan_of(plan):
    return next(a for a in plan.actions if a.kind == KIND)


def test_a_changed_setting_changes_the_plan_in_place():
    actual, record = _installed()
    overrides = {"level2_team": "xiangyang_volunteer"}
    wanted = [d for d in _crowd(overrides) if d.declared.kind == KIND]
    plan = diff(PARENT, "crowd-surge", "1.0.0", overrides, wanted, actual, record, [])
    action = _plan_of(plan)
    assert (action.op, action.name, action.fields) == (Op.UPDATE, NAME, ("levels",))
    assert not plan.blockers and "keeps working" not in plan.render()


def test_an_uninstall_deletes_the_plan_unless_another_scenario_lists_it():
    actual, record = _installed()
    leaving = diff(PARENT, "crowd-surge", "", {}, [], actual, record, [])
    assert _plan_of(leaving).op == Op.DELETE and not leaving.blockers
    other = Record("o", "tourism-flow", "1.0.0", True, {}, record.resources)
    shared = diff(PARENT, "crowd-surge", "", {}, [], actual, record, [other])
    action = _plan_of(shared)
    assert action.op == Op.RELEASE and "still used by tourism-flow" in action.note


def test_a_plan_at_a_level_blocks_new_levels_and_a_delete():
    actual, record = _installed(level=2)
    overrides = {"level2_team": "xiangyang_volunteer"}
    wanted = [d for d in _crowd(overrides) if d.declared.kind == KIND]
    changing = diff(PARENT, "crowd-surge", "1.0.0", overrides, wanted, actual, record, [])
    [blocker] = changing.blockers
    assert blocker.startswith(f"{KIND} crowd-surge-plan ({NAME}): level 2 of it is active")
    assert "stand it down first" in blocker
    leaving = diff(PARENT, "crowd-surge", "", {}, [], actual, record, [])
    [blocker] = leaving.blockers
    assert "cannot be deleted" in blocker and "stand it down first" in blocker
    # Unchanged, a plan at a level is simply kept.
    same = [d for d in _crowd({}) if d.declared.kind == KIND]
    kept = diff(PARENT, "crowd-surge", "1.0.0", {}, same, actual, record, [])
    assert _plan_of(kept).op == Op.KEEP and not kept.blockers

"""The components' own checks run when planning: a resource its component would refuse
blocks the plan, so an apply never stops half-way on a mistake the manifest carries."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from scenarios.composer import ManifestError, Op, catalog, parse
from scenarios.composer.plan import desired_of, diff

VILLAGE = "tenants/sh-jiading-anting-xingming"


def shipped(scenario: str) -> dict[str, Any]:
    path = catalog.SCENARIOS_DIR / scenario / "manifest.yaml"
    return dict(yaml.safe_load(path.read_text()))


def _plan(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    manifest = parse(data, "mine/manifest.yaml")
    settings = {**manifest.defaults(), **(overrides or {})}
    desired = desired_of(manifest, settings, VILLAGE, overrides)
    return diff(VILLAGE, manifest.id, manifest.version, {}, desired, {}, None, [])


def test_an_emergency_plan_without_level_2_blocks_the_plan():
    data = copy.deepcopy(shipped("crowd-surge"))
    data["version"] = "1.2.0"
    levels = data["command"]["emergency_plans"][0]["levels"]
    levels[:] = [level for level in levels if level["level"] != 2]
    plan = _plan(data)
    assert [
        b for b in plan.blockers if b.startswith("command.emergency_plans[0].levels: level 2")
    ], plan.blockers
    assert "(the command component refuses it)" in plan.render()
    # The rest is still shown, so the reader sees what it would have made.
    assert {a.op for a in plan.actions} == {Op.CREATE}


def test_a_routing_rule_command_refuses_blocks_the_plan_naming_its_field():
    data = copy.deepcopy(shipped("ebike-charging"))
    data["command"]["routing_rules"][0]["priority"] = 100000
    plan = _plan(data)
    assert any(b.startswith("command.routing_rules[0].priority: ") for b in plan.blockers), (
        plan.blockers
    )


def test_a_service_plan_that_never_fires_blocks_the_plan():
    data = copy.deepcopy(shipped("crowd-surge"))
    data["command"]["service_plans"] = [
        {
            "id": "visits",
            "displayName": "Visits",
            "recurrence": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;UNTIL=20200101T000000Z",
            "startTime": "2019-12-02T09:00:00+08:00",
            "visitMinutes": 30,
            "handlerRole": "carer",
            "targets": [
                {"id": "a", "location": {"longitude": 121.16, "latitude": 31.29}},
            ],
        }
    ]
    plan = _plan(data)
    assert any(b.startswith("command.service_plans[0].recurrence: ") for b in plan.blockers), (
        plan.blockers
    )


def test_every_shipped_manifest_passes_its_components_checks():
    for manifest in catalog.available().values():
        refused = [d.refused for d in desired_of(manifest, manifest.defaults(), VILLAGE)]
        assert not any(refused), (manifest.id, refused)


def test_a_refusal_from_an_override_is_an_error_naming_the_override():
    data = copy.deepcopy(shipped("crowd-surge"))
    manifest = parse(data)
    overrides = {"level2_team": "Not A Team"}
    with pytest.raises(ManifestError) as refused:
        desired_of(manifest, {**manifest.defaults(), **overrides}, VILLAGE, overrides)
    assert refused.value.path in ("overrides.level2_team", "settings.level2_team"), str(
        refused.value
    )


def test_an_uninstall_counts_as_shared_only_what_another_scenario_uses():
    from grassroots.events.v1 import events_service_pb2 as events_pb
    from grassroots.twin.v1 import twin_service_pb2 as twin_pb
    from scenarios.composer.plan import Record, Recorded

    category = f"{VILLAGE}/categories/safety.smoke_alarm"
    model = f"{VILLAGE}/models/SmokeDetector"
    actual = {
        "events.categories": {category: events_pb.Category(name=category)},
        "twin.models": {model: twin_pb.Model(name=model)},
    }
    mine = Record(
        "r",
        "fire-smoke",
        "1.0.0",
        True,
        {},
        (
            Recorded(category, "events.categories", "safety.smoke_alarm", "d", True),
            Recorded(model, "twin.models", "SmokeDetector", "d", True),
        ),
    )
    alone = diff(VILLAGE, "fire-smoke", "", {}, [], actual, mine, [])
    assert (alone.counts()["release"], alone.counts()["shared"]) == (2, 0)
    other = Record("o", "citizen-report", "1.0.0", True, {}, (mine.resources[0],))
    sharing = diff(VILLAGE, "fire-smoke", "", {}, [], actual, mine, [other])
    assert (sharing.counts()["release"], sharing.counts()["shared"]) == (2, 1)

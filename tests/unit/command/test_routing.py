"""Routing rules: inherited downward, nearest node first, first match wins, explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.command.domain import routing
from services.command.domain.model import EventFacts, Position, RoutingRule
from services.kit.errors import FailedPrecondition, InvalidArgument

VILLAGE = "sh/jiading/anting/xingming"
TOWN = "sh/jiading/anting"
T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def rule(tenant: str, rid: str, category: str, **extra) -> RoutingRule:
    extra.setdefault("handler_role", "grid_worker")
    return RoutingRule(tenant=tenant, id=rid, category=category, create_time=T0, **extra)


def facts(category: str = "environment.garbage", severity: int = 2, **extra) -> EventFacts:
    values = {
        "event": "tenants/x/events/e",
        "tenant": VILLAGE,
        "category": category,
        "severity": severity,
        "grid_cell": "xingming-g07",
        "location": Position(121.16, 31.29),
        "time": T0,
    }
    values.update(extra)
    return EventFacts(**values)


def test_the_villages_own_rule_wins_over_the_towns():
    rules = [
        rule(TOWN, "town", "environment.*", priority=100),
        rule(VILLAGE, "own", "environment.garbage", handler_role="volunteer"),
    ]
    chosen, decision = routing.route(rules, facts())
    assert chosen.id == "own"
    assert decision.handler_role == "volunteer"
    assert decision.rule == "tenants/sh-jiading-anting-xingming/routingRules/own"


def test_first_match_in_priority_order_and_the_explanation_says_why():
    rules = [
        rule(TOWN, "low", "environment.*"),
        rule(TOWN, "severe", "environment.*", priority=5, min_severity=4, team="rapid"),
    ]
    assert routing.route(rules, facts(severity=2))[0].id == "low"
    chosen, decision = routing.route(rules, facts(severity=4))
    assert chosen.id == "severe"
    assert "category environment.* and severity >= 4" in decision.explanation
    assert decision.team == "rapid"


def test_conditions_on_cells_villages_and_time_of_day():
    rules = [
        rule(TOWN, "cell", "*", grid_cells=("xingming-g01",), priority=3),
        rule(TOWN, "other_village", "*", village="sh/jiading/anting/xiangyang", priority=2),
        rule(TOWN, "night", "*", active_from="22:00", active_until="06:00", priority=1),
        rule(TOWN, "day", "*"),
    ]
    assert routing.route(rules, facts())[0].id == "day"
    assert routing.route(rules, facts(grid_cell="xingming-g01"))[0].id == "cell"
    night = T0 + timedelta(hours=13)  # 23:00 local
    assert routing.route(rules, facts(time=night))[0].id == "night"


def test_an_unroutable_event_names_its_category():
    with pytest.raises(FailedPrecondition) as refused:
        routing.route([rule(TOWN, "r", "safety.*")], facts())
    assert refused.value.reason == "UNROUTABLE"
    assert "environment.garbage" in refused.value.message


def test_unrouted_categories_are_those_no_unconditional_rule_covers():
    rules = [
        rule(TOWN, "a", "safety.*"),
        rule(VILLAGE, "b", "environment.garbage", min_severity=3),
    ]
    codes = ["safety.smoke_alarm", "environment.garbage", "roads.damage"]
    assert routing.unrouted(rules, VILLAGE, codes) == ["environment.garbage", "roads.damage"]


def test_category_patterns():
    assert routing.category_matches("safety.*", "safety.smoke_alarm")
    assert routing.category_matches("safety.", "safety.smoke_alarm")
    assert routing.category_matches("safety", "safety.smoke_alarm")
    assert not routing.category_matches("safety.*", "safetynet.x")
    assert routing.category_matches("*", "anything")


def test_a_bad_rule_names_every_wrong_field():
    bad = RoutingRule(
        tenant=TOWN,
        id="x",
        category="Not A Code",
        min_severity=9,
        active_from="25:00",
        village="sh/jiading/other",
        resolution_sla=timedelta(seconds=-1),
    )
    with pytest.raises(InvalidArgument) as refused:
        routing.validate(bad)
    fields = {v.field for v in refused.value.violations}
    assert {
        "routing_rule.category",
        "routing_rule.handler_role",
        "routing_rule.min_severity",
        "routing_rule.active_from",
        "routing_rule.village",
        "routing_rule.sla",
    } <= fields

"""A routing rule naming a category, role or team nothing matches is saved (they may
come later) with a warning in the answer, as unrouted categories are reported."""

from __future__ import annotations

from grassroots.command.v1 import command_service_pb2 as pb
from services.kit import tenancy
from tests.conftest import XINGMING
from tests.unit.command.test_loop import desk, setup_town


async def test_a_rule_that_matches_nothing_now_is_saved_with_warnings(command, grid_index):
    rule, _, _ = await setup_town(command, grid_index)
    assert list(rule.warnings) == []  # environment.* to grid workers: both exist
    odd = await command.stub.CreateRoutingRule(
        pb.CreateRoutingRuleRequest(
            parent=tenancy.tenant_name(XINGMING),
            routing_rule=pb.RoutingRule(
                category="nope.nothing", handler_role="wizard", team="night_owls"
            ),
        ),
        metadata=desk(),
    )
    assert odd.name  # saved all the same
    warned = " | ".join(odd.warnings)
    assert len(odd.warnings) == 3, warned
    assert "'nope.nothing'" in warned and "'wizard'" in warned and "'night_owls'" in warned

"""The demo's crowd plan sends people the demo has: a dispatch naming a team names the
team devstack gives the village's handlers of that role, and asks no more of them than
the demo makes."""

from __future__ import annotations

from devstack import demo_plans
from devstack.demo_command import team_of
from devstack.demo_identity import VOLUNTEERS


def test_the_crowd_plans_teams_are_staffed_by_the_demo() -> None:
    teamed = [
        (level.level, d)
        for level in demo_plans.crowd_plan().levels
        for d in level.dispatches
        if d.team
    ]
    assert teamed, "the demo plan dispatches a team"
    for level, dispatch in teamed:
        assert dispatch.team == team_of(demo_plans.VILLAGE, dispatch.role), level
        if dispatch.role == "volunteer":
            assert dispatch.count <= VOLUNTEERS, level


def test_the_changed_plan_has_a_request_id_of_its_own() -> None:
    # Data dirs made before keep the first definition under "demo-crowd-plan" and
    # refuse another under it: a start on one must not fail.
    assert demo_plans.CROWD_PLAN_REQUEST != "demo-crowd-plan"

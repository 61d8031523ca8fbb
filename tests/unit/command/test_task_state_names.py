"""A task's state has one name everywhere, the published contract's (`Task.State`): an
offered task is `assigned` in REST, in the list filter, on the board and in errors."""

from __future__ import annotations

from typing import get_args

from gateway.routers.command import _STATES
from gateway.schemas.command import TaskStateName
from grassroots.command.v1 import command_service_pb2 as pb
from services.command.api import _STATE_FILTER, _TASK_STATE_TO_PB
from services.command.domain.model import TaskState

# The contract's names: `STATE_ASSIGNED` is `assigned`.
CONTRACT = {
    name.removeprefix("STATE_").lower(): number
    for name, number in pb.Task.State.items()
    if number != pb.Task.STATE_UNSPECIFIED
}


def test_every_published_state_name_is_the_contracts() -> None:
    assert {state.published for state in TaskState} <= set(CONTRACT)
    for state in TaskState:
        assert _TASK_STATE_TO_PB[state] == CONTRACT[state.published], state
    assert TaskState.OFFERED.published == "assigned"


def test_rest_and_the_filter_name_states_as_the_domain_publishes_them() -> None:
    published = {state.published for state in TaskState}
    assert set(get_args(TaskStateName)) == published
    assert set(_STATE_FILTER) == published  # "offered" is not a second name
    # Every state REST shows is the contract's name of that number (ESCALATED, never set,
    # is shown as the task's state before it: assigned).
    for number, name in _STATES.items():
        if number != pb.Task.STATE_ESCALATED:
            assert CONTRACT[name] == number, name

"""State and source names exist in three places (the contract's enums, the events
domain's enums and the REST schema's literals); the contract is the one they follow."""

from __future__ import annotations

from typing import get_args

from gateway.schemas.events import SourceName, StateName
from grassroots.events.v1 import events_service_pb2 as pb
from services.events.domain.model import Source, State


def _contract_names(enum: object, prefix: str) -> set[str]:
    values = enum.DESCRIPTOR.values  # type: ignore[attr-defined]
    return {
        value.name.removeprefix(prefix).lower()
        for value in values
        if not value.name.endswith("_UNSPECIFIED")
    }


def test_event_states_are_the_contracts():
    names = _contract_names(pb.Event.State, "STATE_")
    assert {s.value for s in State} == names
    assert set(get_args(StateName)) == names


def test_event_sources_are_the_contracts():
    names = _contract_names(pb.Event.Source, "SOURCE_")
    assert {s.value for s in Source} == names
    assert set(get_args(SourceName)) == names


def test_report_sources_name_the_contracts_states_and_sources():
    """Empower's reports over events and tasks offer these names as choices."""
    from grassroots.command.v1 import command_service_pb2 as command_pb
    from services.empower.domain.report_sources import EVENT_SOURCES, EVENT_STATES, TASK_STATES

    assert set(EVENT_STATES) == _contract_names(pb.Event.State, "STATE_")
    assert set(EVENT_SOURCES) == _contract_names(pb.Event.Source, "SOURCE_")
    assert set(TASK_STATES) == _contract_names(command_pb.Task.State, "STATE_")

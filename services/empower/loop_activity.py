"""Events and tasks for reports, read from the events and command services over gRPC.

A report over events or tasks reads every one of a subtree's rows in its period, so
the calls page through `ListEvents` and `ListTasks` 1,000 at a time (never one call
per row). They carry a service principal of the template's own node with the read
scope only, so the services' tenancy limits the rows to that subtree as it would for
a person of that node.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.command.v1 import command_service_pb2_grpc as command_grpc
from grassroots.events.v1 import events_service_pb2 as events_pb
from grassroots.events.v1 import events_service_pb2_grpc as events_grpc
from services.empower.domain.report_sources import EventFact, TaskFact
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.principal import Principal
from services.kit.status import domain_error_from

SUBJECT = "services/empower"
PAGE = 1000


def _enum_text(prefixed: str, prefix: str = "STATE_") -> str:
    return prefixed.removeprefix(prefix).lower()


def _time(stamp: Timestamp) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _village(name: str, village: str, kind: str) -> str:
    if village:
        return village
    tenant, _ = tenancy.parse_child_name(name, kind)
    return tenant or ""


def event_fact(event: events_pb.Event) -> EventFact:
    created = _time(event.create_time)
    assert created is not None  # every stored event has one
    return EventFact(
        name=event.name,
        village=_village(event.name, event.village, "events"),
        category=event.category,
        state=_enum_text(events_pb.Event.State.Name(event.state)),
        source=_enum_text(events_pb.Event.Source.Name(event.source), "SOURCE_")
        if event.source
        else "resident",
        severity=event.severity,
        grid_cell=event.grid_cell,
        create_time=created,
        entity=event.entity,
    )


def task_fact(task: command_pb.Task) -> TaskFact:
    created = _time(task.create_time)
    assert created is not None
    return TaskFact(
        name=task.name,
        village=_village(task.name, task.village, "tasks"),
        category=task.category,
        team=task.team,
        state=_enum_text(command_pb.Task.State.Name(task.state)),
        handler_role=task.handler_role,
        severity=task.severity,
        escalation_level=task.escalation_level,
        grid_cell=task.grid_cell,
        create_time=created,
        due_time=_time(task.due_time),
        resolve_time=_time(task.resolve_time),
    )


class GrpcLoopActivity:
    """LoopActivity over the events and command services' public contracts."""

    def __init__(self, events_target: str, command_target: str, timeout: float = 30.0) -> None:
        self.events_channel = open_channel(events_target, default_timeout=timeout)
        self.command_channel = open_channel(command_target, default_timeout=timeout)
        self.events_stub = events_grpc.EventsServiceStub(self.events_channel)
        self.command_stub = command_grpc.CommandServiceStub(self.command_channel)

    @staticmethod
    def _metadata(subtree: str, scope: str) -> Sequence[tuple[str, str | bytes]]:
        return Principal(SUBJECT, subtree, "service", scopes=frozenset({scope})).to_metadata()

    async def events(self, subtree: str, since: datetime | None) -> list[EventFact]:
        # Oldest first, so an event created while paging lands on a later page, not twice.
        query = f'create_time >= "{since.isoformat()}"' if since is not None else ""
        found: list[EventFact] = []
        token = ""
        try:
            while True:
                page = await self.events_stub.ListEvents(
                    events_pb.ListEventsRequest(
                        parent=tenancy.tenant_name(subtree),
                        page_size=PAGE,
                        page_token=token,
                        filter=query,
                        order_by="create_time asc",
                    ),
                    metadata=self._metadata(subtree, "events:read"),
                )
                found += [event_fact(e) for e in page.events]
                token = page.next_page_token
                if not token:
                    return found
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "events") from None

    async def tasks(self, subtree: str, since: datetime | None) -> list[TaskFact]:
        # Only the period's tasks are read (a `create_time >=` filter). They come newest
        # first, so a task created while paging moves the rest down by one: the task at a
        # page's end comes again at the next page's start, and is kept once.
        query = f'create_time >= "{since.isoformat()}"' if since is not None else ""
        found: dict[str, TaskFact] = {}
        token = ""
        try:
            while True:
                page = await self.command_stub.ListTasks(
                    command_pb.ListTasksRequest(
                        parent=tenancy.tenant_name(subtree),
                        page_size=PAGE,
                        page_token=token,
                        filter=query,
                    ),
                    metadata=self._metadata(subtree, "command:read"),
                )
                for task in page.tasks:
                    found.setdefault(task.name, task_fact(task))
                token = page.next_page_token
                if not token:
                    return list(found.values())
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "command") from None

    async def close(self) -> None:
        await self.events_channel.close()
        await self.command_channel.close()

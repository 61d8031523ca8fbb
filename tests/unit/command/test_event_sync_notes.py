"""What command writes on an event's timeline when it moves the event for a task: the
routing explanation when dispatched, the handler's own answer when resolved."""

from __future__ import annotations

from grassroots.command.v1 import command_service_pb2 as pb
from services.command.intake import EventSync
from services.kit.bus.base import BusMessage, Delivery


class Events:
    def __init__(self) -> None:
        self.moves: list[tuple[str, str, str]] = []

    async def move(self, event: str, target: str, note: str) -> None:
        self.moves.append((event, target, note))


def delivery(kind: str, **task: object) -> Delivery:
    message = pb.Task(
        name="tenants/t/tasks/task_1",
        event="tenants/t/events/ev_1",
        routing=pb.RoutingDecision(routing_rule="tenants/t/routingRules/r", explanation="why"),
        **task,
    )
    return Delivery("1-0", BusMessage(kind, "k", "t", 1, message.SerializeToString()), 1)


async def test_a_resolved_task_puts_the_handlers_answer_on_the_event():
    events = Events()
    sync = EventSync(events)
    await sync(delivery("task.resolved", state=pb.Task.STATE_DONE, resolution_note="Fixed it"))
    await sync(delivery("task.resolved", state=pb.Task.STATE_DONE))
    await sync(delivery("task.accepted", state=pb.Task.STATE_ACCEPTED, resolution_note="x"))
    assert [note for _, _, note in events.moves] == [
        "Fixed it",
        "tenants/t/tasks/task_1: resolved",
        "tenants/t/tasks/task_1: accepted",
    ]

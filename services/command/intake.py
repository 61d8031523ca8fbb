"""The command service's two bus consumers.

* **Intake** reads the events service's stream through the consumer group
  `command-dispatch`: a reported event becomes its one task (the desk is idempotent on
  the event, so a redelivery finds the task the first delivery made); an event withdrawn,
  rejected or marked a duplicate cancels its task; a relocated or recategorised event
  is routed again.
* **Event sync** reads the command service's own `task.*` facts and walks each event to
  the state its task stands for, through the events API (services/command/events_client.py),
  so a crash between a task change and the event move only delays the move.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from grassroots.command.v1 import command_service_pb2 as command_pb
from grassroots.events.v1 import events_service_pb2 as events_pb
from services.command.domain.model import EventFacts, TaskState
from services.command.domain.ports import EventsPort
from services.command.domain.service import CommandDesk
from services.command.domain.tasks import EVENT_STATE
from services.command.events_client import facts_of
from services.kit.bus import Delivery
from services.kit.bus.base import entry_id_key

log = logging.getLogger("grassroots.command.intake")

REPORTED = "event.reported"
STATE_CHANGED = "event.state_changed"
# Facts the events service may publish when an event's place or category changes.
REROUTE_FACTS = frozenset({"event.located_again", "event.recategorized"})
_ENDED = {
    events_pb.Event.STATE_WITHDRAWN: "the event was withdrawn",
    events_pb.Event.STATE_REJECTED: "the event was rejected",
    events_pb.Event.STATE_DUPLICATE: "the event repeats another",
}
_TASK_STATES = {
    command_pb.Task.STATE_ASSIGNED: TaskState.OFFERED,
    command_pb.Task.STATE_ACCEPTED: TaskState.ACCEPTED,
    command_pb.Task.STATE_IN_PROGRESS: TaskState.IN_PROGRESS,
    command_pb.Task.STATE_DONE: TaskState.DONE,
    command_pb.Task.STATE_WAITING: TaskState.WAITING,
    command_pb.Task.STATE_CANCELLED: TaskState.CANCELLED,
}


def backdated_by(delivery: Delivery, event: events_pb.Event) -> timedelta:
    """How long before its publication the event is dated: an entry id starts with the
    milliseconds it was published at, so an import of past reports stands out."""
    published_ms = entry_id_key(delivery.id)[0]
    created_ms = event.create_time.seconds * 1000 + event.create_time.nanos // 1_000_000
    return timedelta(milliseconds=published_ms - created_ms)


class Intake:
    """Reported events become tasks; reports dated well before they were published
    (`history_after`: records of past work imported in bulk) are not work to dispatch."""

    def __init__(self, desk: CommandDesk, history_after: timedelta = timedelta(hours=1)) -> None:
        self.desk = desk
        self.history_after = history_after

    async def __call__(self, delivery: Delivery) -> None:
        kind = delivery.message.type
        if kind == REPORTED:
            facts = self._work_of(delivery)
            if facts is not None:
                await self.desk.dispatch(facts)
            return
        if kind not in REROUTE_FACTS and kind != STATE_CHANGED:
            return
        event = events_pb.Event.FromString(delivery.message.payload)
        if kind == STATE_CHANGED:
            why = _ENDED.get(event.state)
            if why is not None:
                await self.desk.cancel_for_event(event.name, why)
        else:
            await self.desk.reroute(facts_of(event))

    async def many(self, deliveries: Sequence[Delivery]) -> None:
        """One read's deliveries: its reports dispatched together (one commit for the lot),
        then the rest in order; an event's later facts come after its report either way."""
        reports = [
            facts
            for delivery in deliveries
            if delivery.message.type == REPORTED and (facts := self._work_of(delivery)) is not None
        ]
        if reports:
            await self.desk.dispatch_many(reports)
        for delivery in deliveries:
            if delivery.message.type != REPORTED:
                await self(delivery)

    def _work_of(self, delivery: Delivery) -> EventFacts | None:
        """The facts of a reported event to dispatch, or None when it is no work."""
        event = events_pb.Event.FromString(delivery.message.payload)
        if event.state != events_pb.Event.STATE_REPORTED:
            return None
        if backdated_by(delivery, event) > self.history_after:
            log.info("event %s is dated in the past (an import); no task", event.name)
            return None
        return facts_of(event)


class EventSync:
    def __init__(self, events: EventsPort) -> None:
        self.events = events

    async def __call__(self, delivery: Delivery) -> None:
        if not delivery.message.type.startswith("task."):
            return
        task = command_pb.Task.FromString(delivery.message.payload)
        state = _TASK_STATES.get(task.state)
        target = EVENT_STATE.get(state) if state is not None else None
        if target is None or not task.event or not task.routing.routing_rule:
            return  # cancelled, or unrouted: nobody accepted the event yet
        note = f"{task.name}: {delivery.message.type.removeprefix('task.')}"
        if delivery.message.type == "task.created":
            note = task.routing.explanation
        elif delivery.message.type == "task.resolved" and task.resolution_note:
            note = task.resolution_note  # the handler's answer, for the reporter to read
        await self.events.move(task.event, target, note[:2000])

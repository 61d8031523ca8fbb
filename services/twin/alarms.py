"""The alarm relay: delivers what rules decided, after the readings are stored.

Rules write alarms into the store in the same transaction as the readings that caused
them (an outbox). This relay takes them oldest first and tells the events service
(a fire creates the episode's event under the episode's idempotency key; a clear
comments on that event) or the bus (a level change). An alarm is marked delivered
only after the call succeeded, so a crash or an events outage delays alarms and never
loses or doubles one: the retry reuses the key, and the events service answers with
the event the first attempt made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.kit.errors import FailedPrecondition, InvalidArgument
from services.twin.domain.entities import Entity
from services.twin.domain.ports import Alarm, EventSink, FactSink, TwinStore
from services.twin.domain.rules import Rule
from services.twin.domain.service import TwinHub

log = logging.getLogger(__name__)


class AlarmRelay:
    def __init__(
        self,
        hub: TwinHub,
        store: TwinStore,
        events: EventSink,
        facts: FactSink,
        *,
        batch: int = 200,
        retry_seconds: float = 1.0,
    ) -> None:
        self.hub, self.store, self.events, self.facts = hub, store, events, facts
        self.batch = batch
        self.retry_seconds = retry_seconds
        self._wake = asyncio.Event()
        self.delivered = 0

    def wake(self) -> None:
        self._wake.set()

    async def deliver_pending(self) -> int:
        """Deliver what is pending, in order; stops at the first failure (retried later)."""
        done = 0
        while True:
            alarms = await self.store.pending_alarms(self.batch)
            if not alarms:
                return done
            for alarm in alarms:
                await self._deliver(alarm)
                done += 1
                self.delivered += 1

    async def _deliver(self, alarm: Alarm) -> None:
        rule = self.hub.rule(alarm.rule)
        entity = await self.hub.entity(alarm.entity)
        event = ""
        if rule is None or entity is None:
            log.warning("alarm %s for a rule or entity that is gone; dropped", alarm.seq)
        elif alarm.kind == "fire":
            event = await self._raise(alarm, rule, entity)
        elif alarm.kind == "clear":
            made = await self.store.event_of(alarm.episode)
            if made:
                await self.events.clear_event(made, alarm, rule)
        elif alarm.kind == "level":
            await self.facts.level_changed(alarm, rule)
        await self.store.alarm_delivered(alarm.seq, alarm.episode, event)

    async def _raise(self, alarm: Alarm, rule: Rule, entity: Entity) -> str:
        """The episode's event where the entity is now (a vehicle's latest position); a
        position the events service refuses (a truck off its corridor may be outside
        every village of its tenant) falls back to where the entity is registered, so
        one refused place never holds up the alarms behind it."""
        placed = await self.hub.placed(rule, entity)
        if placed is entity:
            return await self.events.raise_event(alarm, rule, entity)
        try:
            return await self.events.raise_event(alarm, rule, placed)
        except (InvalidArgument, FailedPrecondition) as exc:
            log.info("event of alarm %s placed at its entity instead: %s", alarm.seq, exc)
            return await self.events.raise_event(alarm, rule, entity)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.deliver_pending()
            except Exception as exc:  # the events service or the bus is down: retry
                log.warning("alarm delivery failed, retrying: %s", exc)
                await _sleep_or(stop, self.retry_seconds)
                continue
            self._wake.clear()
            waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
            await asyncio.wait(waits, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

"""Facts on the bus become points: the adapter between the bus and the ledger.

Reads the streams named in the settings through the consumer group `empower-points`
and hands each fact a points rule could pay for to `PointsLedger.apply_fact`. Shapes
(ADR 21):

* `task.resolved` from command: the payload is a `grassroots.command.v1.Task`; the
  holder is the task's handler, and its `team`, `category`, `grid_cell`, `village`,
  `event` and `task` (plus the message's headers) are the attributes rules match
  on: a rule for volunteer tasks matches `{"team": "volunteers"}`.
* any other fact type a points rule of the fact's village (or a node above it) names
  (`sorting.check_passed`, `patrol.completed`, ...): a JSON object `{"holder": "...",
  "holder_kind": "household" | "person", "attributes": {"...": "..."}}`.

Every other fact on the stream is acknowledged and left alone: command's other
`task.*` facts and its `emergency.*` facts (protobuf, for the notices consumer), and
any type no rule names, whatever its payload.

The message key is the fact's idempotency key, so a redelivered fact pays nothing
more. A payload that cannot be read fails its delivery, and the consumer parks it
on the dead stream after its retries.
"""

from __future__ import annotations

import asyncio
import json
import logging

from google.protobuf.message import DecodeError

from grassroots.command.v1 import command_service_pb2 as command_pb
from services.empower.domain.points import PointsLedger
from services.empower.domain.points_model import Fact, HolderKind
from services.kit.bus import Bus, Consumer, Delivery

log = logging.getLogger("grassroots.empower.points")

GROUP = "empower-points"
TASK_RESOLVED = "task.resolved"
_IGNORED_HEADERS = ("traceparent", "tracestate")
# Command's own fact families: protobuf payloads, of which points read task.resolved only.
_NEVER_PAID = ("task.", "emergency.")


def fact_of(delivery: Delivery) -> Fact | None:
    """The fact a message carries, or None for a fact type points never pay for."""
    message = delivery.message
    if message.type.startswith(_NEVER_PAID) and message.type != TASK_RESOLVED:
        return None
    attributes = {
        k: v
        for k, v in message.headers.items()
        if not k.startswith("x-") and k not in _IGNORED_HEADERS
    }
    if message.type == TASK_RESOLVED:
        try:
            task = command_pb.Task.FromString(message.payload)
        except DecodeError as exc:
            raise ValueError(f"{TASK_RESOLVED} payload is not a command Task: {exc}") from None
        if not task.handler:
            raise ValueError(f"{TASK_RESOLVED} names no handler")
        attributes.update(
            {
                "event": task.event,
                "task": task.name,
                "team": task.team,
                "category": task.category,
                "grid_cell": task.grid_cell,
                "village": task.village,
            }
        )
        return Fact(
            type=message.type,
            key=message.key,
            tenant=message.tenant,
            holder=task.handler,
            attributes=attributes,
            subject="services/command",
        )
    try:
        body = json.loads(message.payload)
        holder = body["holder"]
        kind = HolderKind(body.get("holder_kind", HolderKind.PERSON.value))
        extra = body.get("attributes", {})
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{message.type} payload is not a points fact: {exc}") from None
    if not isinstance(holder, str) or not isinstance(extra, dict):
        raise ValueError(f"{message.type} payload has a holder or attributes of the wrong type")
    attributes.update({str(k): str(v) for k, v in extra.items()})
    return Fact(
        type=message.type,
        key=message.key,
        tenant=message.tenant,
        holder=holder,
        holder_kind=kind,
        attributes=attributes,
    )


class PointsFacts:
    """One consumer per stream, feeding the ledger until stopped."""

    def __init__(self, ledger: PointsLedger, bus: Bus, streams: tuple[str, ...], name: str) -> None:
        self.ledger = ledger
        self.consumers = [
            Consumer(bus, stream, GROUP, name, self.handle, block_ms=500, min_idle_ms=10_000)
            for stream in streams
        ]

    async def handle(self, delivery: Delivery) -> None:
        message = delivery.message
        generic = message.type != TASK_RESOLVED and not message.type.startswith(_NEVER_PAID)
        if generic and not await self.ledger.pays_for(message.tenant, message.type):
            return  # no rule names it: not a points fact, and not ours to park
        fact = fact_of(delivery)
        if fact is None:
            return
        posted = await self.ledger.apply_fact(fact)
        for result in posted:
            if result.created:
                log.info(
                    "points credited",
                    extra={"event_key": fact.key, "amount": result.entry.amount},
                )

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(consumer.run(stop) for consumer in self.consumers))

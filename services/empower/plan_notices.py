"""Emergency level changes on the bus become the village's notices.

Reads command's stream through the consumer group `empower-plan-notices` and sends the
notices of each `emergency.level_changed` (a `grassroots.command.v1.EmergencyLevelChange`)
through the notice board, as the platform service `services/command` of the plan's
village (services/empower/domain/plan_notices.py says who each one reaches). Every other
fact type on the stream is acknowledged and left alone; a level change whose payload
cannot be read fails its delivery and is parked on the dead stream after its retries.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import DecodeError

from grassroots.command.v1 import plans_service_pb2 as plans_pb
from services.empower.domain.notices import NoticeBoard
from services.empower.domain.plan_notices import SENDER, PlanNotice, plan_notices
from services.kit import tenancy
from services.kit.bus import Bus, Consumer, Delivery
from services.kit.principal import Principal

log = logging.getLogger("grassroots.empower.plan_notices")

GROUP = "empower-plan-notices"
EMERGENCY_LEVEL_CHANGED = "emergency.level_changed"


def notices_of(delivery: Delivery) -> list[PlanNotice] | None:
    """The notices a message asks for, or None for a fact type this consumer ignores."""
    message = delivery.message
    if message.type != EMERGENCY_LEVEL_CHANGED:
        return None
    try:
        change = plans_pb.EmergencyLevelChange.FromString(message.payload)
    except DecodeError as exc:
        raise ValueError(f"{message.type} payload is not an EmergencyLevelChange: {exc}") from None
    if not tenancy.is_valid_path(message.tenant):
        raise ValueError(f"{message.type} names no tenant path: {message.tenant!r}")
    return plan_notices(
        message.tenant,
        message.key,
        change.display_name,
        change.to_level,
        [(n.audience, n.text) for n in change.notices],
    )


class PlanNotices:
    """One consumer per stream, sending level changes' notices until stopped."""

    def __init__(self, board: NoticeBoard, bus: Bus, streams: tuple[str, ...], name: str) -> None:
        self.board = board
        self.consumers = [
            Consumer(bus, stream, GROUP, name, self.handle, block_ms=500, min_idle_ms=10_000)
            for stream in streams
        ]

    async def handle(self, delivery: Delivery) -> None:
        wanted = notices_of(delivery)
        if not wanted:
            return
        for notice in wanted:
            sender = Principal(
                subject=SENDER,
                tenant=notice.tenant,
                kind="service",
                scopes=frozenset({"notices:send"}),
            )
            sent = await self.board.send(
                sender,
                notice.tenant,
                title=notice.title,
                body=notice.body,
                audience=notice.audience,
                channels=tuple(self.board.channels),
                request_id=notice.request_id,
            )
            log.info(
                "emergency notice sent",
                extra={"event_key": delivery.message.key, "notice": sent.resource_name},
            )

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(consumer.run(stop) for consumer in self.consumers))

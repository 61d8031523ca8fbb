"""The command outbox (`task.*` facts) as bus messages, for the kit's relay (ADR 6).

Keys are `<task id>:<fact>:<version>`, so consumers drop a fact published twice.
"""

from __future__ import annotations

from services.command.domain.ports import CommandStore
from services.kit.bus import Bus, BusMessage
from services.kit.outbox_relay import OutboxRelay
from services.kit.tracing import TRACEPARENT

STREAM = "command"


def command_relay(store: CommandStore, bus: Bus, *, batch: int) -> OutboxRelay:
    async def fetch(limit: int) -> list[BusMessage]:
        return [
            BusMessage(
                type=e.type,
                key=e.key,
                tenant=e.tenant,
                offset=e.seq,
                payload=e.payload,
                # The fact continues the trace of what made it (ADR 27).
                headers={TRACEPARENT: e.trace_context} if e.trace_context else {},
            )
            for e in await store.unpublished(limit)
        ]

    return OutboxRelay(fetch, store.mark_published, bus, STREAM, batch=batch)

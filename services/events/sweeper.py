"""Closes resolved events that nobody evaluated within the configured time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from services.events.domain.service import EventHub

log = logging.getLogger("grassroots.events.sweeper")


async def run_auto_close(
    hub: EventHub, after: timedelta, every_seconds: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            closed = await hub.auto_close(datetime.now(UTC), after)
            if closed:
                log.info("closed %d resolved events automatically", closed)
        except Exception:  # a sweep must never take the service down
            log.exception("auto-close sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)

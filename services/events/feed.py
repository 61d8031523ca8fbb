"""Wakes watchers and the outbox relay as soon as a change is committed in this process."""

from __future__ import annotations

import asyncio
import contextlib


class ChangeFeed:
    """`notify()` after a commit wakes everyone in `wait()`.

    Waiters also wake after `seconds`, so changes committed by another process (a
    second replica) are still seen, by polling.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)

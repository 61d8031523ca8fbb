"""Durable timers: deadlines kept as rows, claimed and fired once, surviving a crash.

An SLA deadline, an offer that runs out and a service order's next occurrence are all
the same thing: at time T, run the handler registered for kind K with this payload.
Keeping them in memory would lose them on kill -9, so each is a row in the command
store (`TimerStore`), and the `Scheduler` polls for rows that are due:

* **claim**: due, unfired rows are leased to this scheduler for `lease` (another
  replica skips leased rows; a dead one's lease runs out and its rows are taken over);
* **fire**: the handler of the row's kind runs with the whole batch of that kind;
* **finish**: the rows are marked fired, so they never fire again.

A crash between the handler's effect and the finish fires those rows again after the
lease, so handlers must be idempotent on the timer id (the SLA handler checks that
the task still waits on the deadline the timer names). Nothing else can fire a row
twice: a fired row is never claimed again, and a row is claimed by one owner at a time.
Timers due while the service was down are due at start-up and fire then, once.

Scheduling is idempotent on the id: scheduling an id that exists keeps the existing
row (a retried request or a replayed bus message cannot move a deadline). To move one,
cancel it and schedule a new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger("grassroots.command.timers")

MAX_KIND_LENGTH = 64
MAX_ID_LENGTH = 200
# Nothing was claimable although a row looked due (leased elsewhere): do not spin.
_IDLE_FLOOR_SECONDS = 0.02


@dataclass(frozen=True)
class Timer:
    """One deadline: `kind` picks the handler, `payload` is the handler's own text (JSON)."""

    id: str
    tenant: str
    kind: str
    due: datetime
    payload: str = ""
    # How many times it was claimed (1 on the first firing; more after a crash).
    attempts: int = 0
    fired: datetime | None = None
    cancelled: bool = False


class TimerStore(Protocol):
    """Where timers live; the command store implements it on SQLite and PostgreSQL."""

    async def schedule_timers(self, timers: Sequence[Timer]) -> int:
        """Insert timers; ids that exist already are left as they are. Returns how many
        were new."""
        ...

    async def cancel_timers(self, ids: Sequence[str]) -> int:
        """Cancel unfired timers; returns how many were cancelled."""
        ...

    async def claim_due_timers(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Timer]:
        """Lease up to `limit` unfired, uncancelled timers due at `now`, earliest first,
        whose lease (if any) ran out; each claimed row counts one more attempt."""
        ...

    async def finish_timers(self, ids: Sequence[str], owner: str, fired: datetime) -> int:
        """Mark timers this owner holds as fired; returns how many were marked."""
        ...

    async def get_timer(self, timer_id: str) -> Timer | None:
        """One timer by id, fired or not (None when unknown)."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest moment an unfired, uncancelled timer may be claimed: its due time,
        or the end of its lease when someone holds it."""
        ...


TimerHandler = Callable[[Sequence[Timer]], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Scheduler:
    """Fires due timers through the handler registered for their kind.

    `run` polls every `poll_seconds` at most, and sooner when `wake()` is called (a
    new timer due earlier than the next poll) or when the earliest row is due.
    """

    store: TimerStore
    owner: str
    batch: int = 1000
    lease: timedelta = timedelta(seconds=30)
    poll_seconds: float = 1.0
    clock: Callable[[], datetime] = utcnow
    _handlers: dict[str, TimerHandler] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, kind: str, handler: TimerHandler) -> None:
        """Register the handler of a kind; one handler per kind."""
        if kind in self._handlers:
            raise ValueError(f"timer kind {kind!r} has a handler already")
        self._handlers[kind] = handler

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def wake(self) -> None:
        """Look for due timers now instead of at the next poll."""
        self._wake.set()

    async def schedule(self, timers: Sequence[Timer]) -> int:
        """Store timers (idempotent on id) and wake the loop if one is due soon."""
        for timer in timers:
            check_timer(timer)
        added = await self.store.schedule_timers(timers)
        horizon = self.clock() + timedelta(seconds=self.poll_seconds)
        if any(t.due <= horizon for t in timers):
            self.wake()
        return added

    async def cancel(self, ids: Sequence[str]) -> int:
        return await self.store.cancel_timers(ids) if ids else 0

    async def fire_due(self) -> int:
        """Claim and fire one batch of due timers; returns how many fired."""
        now = self.clock()
        claimed = await self.store.claim_due_timers(now, self.owner, now + self.lease, self.batch)
        if not claimed:
            return 0
        by_kind: dict[str, list[Timer]] = {}
        for timer in claimed:
            by_kind.setdefault(timer.kind, []).append(timer)
        fired: list[str] = []
        for kind, timers in by_kind.items():
            handler = self._handlers.get(kind)
            if handler is None:
                # No handler here (an older replica): leave the lease to run out.
                log.warning("no handler for timer kind %s; %d left for later", kind, len(timers))
                continue
            try:
                await handler(timers)
            except Exception:
                log.exception("timer handler %s failed; its timers fire again later", kind)
                continue
            fired.extend(t.id for t in timers)
        if fired:
            await self.store.finish_timers(fired, self.owner, self.clock())
        return len(fired)

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due timers until `stop` is set; store outages are logged and retried."""
        while not stop.is_set():
            try:
                count = await self.fire_due()
                if count >= self.batch:
                    continue  # more may be due right now
                wait = self.poll_seconds
                upcoming = await self.store.next_due()
                if upcoming is not None:
                    wait = min(wait, (upcoming - self.clock()).total_seconds())
                if count == 0:
                    wait = max(wait, _IDLE_FLOOR_SECONDS)
            except Exception:
                log.exception("timer scheduler error; retrying")
                wait = self.poll_seconds
            self._wake.clear()
            if wait <= 0:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(self._wake, stop), wait)


async def _first(*events: asyncio.Event) -> None:
    """Return when any of the events is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def check_timer(timer: Timer) -> None:
    """Programming errors, not caller input: a timer needs an id, a kind and a zone."""
    if not timer.id or len(timer.id) > MAX_ID_LENGTH:
        raise ValueError(f"timer id must be 1..{MAX_ID_LENGTH} characters: {timer.id!r}")
    if not timer.kind or len(timer.kind) > MAX_KIND_LENGTH:
        raise ValueError(f"timer kind must be 1..{MAX_KIND_LENGTH} characters: {timer.kind!r}")
    if timer.due.tzinfo is None:
        raise ValueError("timer due time needs a time zone")

"""Watching entities: every change in order, or an honest word that some were missed.

Each committed change of an entity carries that entity's sequence number (+1 per change,
stored with the entity, so it survives restarts). The twin appends its changes to one
`ChangeLog`, a ring of the most recent changes in commit order, each at an offset.
Watchers read the log by offset like a Kafka consumer: a slow watcher never holds up
the twin or the other watchers; one that falls further behind than the ring holds, or
resumes from a token of an earlier process, is told what it missed (`Missed`) and goes
on from the oldest change still held, after re-reading the entities it watches.
Orion-LD dropped notifications silently in exactly this situation (its issue 1650).

Resume tokens are `<log epoch>.<offset>`: the epoch changes with every start of the
process, so a token from before a restart is answered with `Missed`, never with a gap.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.kit import tenancy
from services.kit.errors import InvalidArgument

DEFAULT_CAPACITY = 100_000
READ_BATCH = 500


@dataclass(frozen=True)
class EntityChange:
    """One committed change of one entity, as the twin reports it."""

    tenant: str  # tenant path
    entity_id: str
    entity_type: str
    sequence: int  # per entity, +1 per change
    kind: str  # "created" | "updated" | "deleted"
    location: tuple[float, float] | None = None  # longitude, latitude
    values: Mapping[str, Any] = field(default_factory=dict)  # what changed, opaque here


@dataclass(frozen=True)
class LoggedChange:
    """A change at its place in the log."""

    offset: int
    change: EntityChange


@dataclass(frozen=True)
class Missed:
    """Changes after `after` are gone from the log; the watch goes on at `resume_offset`
    (the watcher should re-read the entities it watches)."""

    after: int
    resume_offset: int


@dataclass(frozen=True)
class Idle:
    """Nothing selected for a while; the watch has read the log up to `offset`."""

    offset: int


@dataclass(frozen=True)
class Selector:
    """What one watcher watches, within the tenant subtree it may see."""

    tenant: str
    entity: tuple[str, str] | None = None  # tenant path, entity id
    entity_type: str | None = None
    box: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat

    def __post_init__(self) -> None:
        if self.box is not None:
            west, south, east, north = self.box
            if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
                raise InvalidArgument.field(
                    "area", "needs min_longitude <= max_longitude and min_latitude <= max_latitude"
                )

    def matches(self, change: EntityChange) -> bool:
        if not tenancy.contains(self.tenant, change.tenant):
            return False
        if self.entity is not None and (change.tenant, change.entity_id) != self.entity:
            return False
        if self.entity_type is not None and change.entity_type != self.entity_type:
            return False
        if self.box is not None:
            if change.location is None:
                return False
            lon, lat = change.location
            west, south, east, north = self.box
            if not (west <= lon <= east and south <= lat <= north):
                return False
        return True


class ChangeLog:
    """The most recent `capacity` changes, in commit order, readable by offset."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.epoch = secrets.token_hex(4)
        self._ring: deque[LoggedChange] = deque(maxlen=capacity)
        self._next = 1  # offset of the next change; offsets start at 1
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def last_offset(self) -> int:
        return self._next - 1

    @property
    def first_offset(self) -> int:
        """The oldest offset still held (last_offset + 1 while the log is empty)."""
        with self._lock:
            return self._ring[0].offset if self._ring else self._next

    def append(self, changes: Iterable[EntityChange]) -> None:
        """Called by the twin after each commit, from any thread."""
        with self._lock:
            for change in changes:
                self._ring.append(LoggedChange(self._next, change))
                self._next += 1
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)

    def read(self, after: int, limit: int = READ_BATCH) -> list[LoggedChange] | Missed:
        """Up to `limit` changes after offset `after`, or Missed when some are gone."""
        with self._lock:
            first = self._ring[0].offset if self._ring else self._next
            if after + 1 < first:
                return Missed(after, first)
            start = after + 1 - first
            end = min(len(self._ring), start + limit)
            return [self._ring[i] for i in range(start, end)]

    async def wait_after(self, after: int, seconds: float) -> None:
        """Return when a change after `after` exists, or after `seconds`."""
        event = asyncio.Event()
        with self._lock:
            if self._next - 1 > after:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            with self._lock:
                if (entry := (asyncio.get_running_loop(), event)) in self._waiters:
                    self._waiters.remove(entry)

    # -- resume tokens ----------------------------------------------------------------------

    def token(self, offset: int) -> str:
        return f"{self.epoch}.{offset}"

    def start_after(self, token: str) -> int | Missed:
        """The offset to read after: now for "", the token's for one of this log, else
        Missed (a token of an earlier process: the watcher re-reads and goes on now)."""
        if not token:
            return self.last_offset
        epoch, dot, number = token.partition(".")
        if not dot or not number.isascii() or not number.isdigit() or len(number) > 18:
            raise InvalidArgument.field("resume_token", "is not a token this service gave")
        offset = int(number)
        if epoch != self.epoch:
            return Missed(0, self.first_offset)
        if offset > self.last_offset:
            raise InvalidArgument.field("resume_token", "is ahead of the log")
        return offset

    async def follow(
        self, selector: Selector, token: str = "", idle_seconds: float = 15.0
    ) -> AsyncGenerator[LoggedChange | Missed | Idle, None]:
        """The selected changes after `token`, for ever; `Idle` after `idle_seconds`
        without one (a keep-alive for the transport, with a token to resume from)."""
        start = self.start_after(token)
        if isinstance(start, Missed):
            yield start
            after = start.resume_offset - 1
        else:
            after = start
        quiet_since = time.monotonic()
        while True:
            batch = self.read(after)
            if isinstance(batch, Missed):
                yield batch
                after = batch.resume_offset - 1
                continue
            for logged in batch:
                after = logged.offset
                if selector.matches(logged.change):
                    quiet_since = time.monotonic()
                    yield logged
            if time.monotonic() - quiet_since >= idle_seconds:
                quiet_since = time.monotonic()
                yield Idle(after)
            if not batch:
                await self.wait_after(after, idle_seconds)

"""The domain-event bus contract: append-only streams read through consumer groups.

The semantics are those of Redis Streams consumer groups, so the production adapter is a
thin translation and the embedded adapter (a SQLite log) can be tested by the same suite.
Delivery is at-least-once: a handler may see an entry again after a crash or a claim, so
consumers de-duplicate by `BusMessage.key`.

Entry ids look like Redis ids, `<milliseconds>-<sequence>`, and grow with every publish
to a stream. Compare them with `entry_id_key`, never as strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from services.kit.errors import FailedPrecondition

DEAD_SUFFIX = ".dead"
DEAD_REASON_HEADER = "x-dead-reason"


@dataclass(frozen=True)
class BusMessage:
    """One domain event as it travels: routing facts in fields, the body opaque.

    `key` lets consumers drop duplicates (delivery is at-least-once); `offset` is the
    publisher's per-tenant sequence, carried as data so readers can spot gaps.
    """

    type: str
    key: str
    tenant: str
    offset: int
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """An entry handed to one consumer; `delivery_count` is 1 on first read."""

    id: str
    message: BusMessage
    delivery_count: int


class NoSuchGroup(FailedPrecondition):
    """Reading, claiming or acking through a group nobody created: call `ensure_group`."""

    reason = "BUS_NO_SUCH_GROUP"


def dead_stream(stream: str) -> str:
    """Where a `Consumer` parks messages that failed too often."""
    return stream + DEAD_SUFFIX


def entry_id_key(entry_id: str) -> tuple[int, int]:
    """Sort key of an entry id (`"5-1"` -> `(5, 1)`; `"7"` means `"7-0"`)."""
    ms, _, seq = entry_id.partition("-")
    try:
        key = (int(ms), int(seq) if seq else 0)
    except ValueError:
        raise ValueError(f"not a stream entry id: {entry_id!r}") from None
    if key[0] < 0 or key[1] < 0:
        raise ValueError(f"not a stream entry id: {entry_id!r}")
    return key


def format_entry_id(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


@runtime_checkable
class Bus(Protocol):
    """Append-only streams with consumer groups (see the module docstring)."""

    async def publish(self, stream: str, message: BusMessage) -> str:
        """Append `message` to `stream` (created on first use); return its entry id."""
        ...

    async def publish_many(self, stream: str, messages: Sequence[BusMessage]) -> list[str]:
        """Append many messages in order, in one round trip; returns their entry ids."""
        ...

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        """Create `group` if missing; new groups start after `start` ("0" all, "$" new).

        An existing group keeps its position, so every process may call this at start-up.
        """
        ...

    async def read(
        self, stream: str, group: str, consumer: str, count: int = 10, block_ms: int = 0
    ) -> list[Delivery]:
        """Up to `count` entries never delivered to `group`, now pending for `consumer`.

        Waits up to `block_ms` for the first entry when there is none; 0 returns at once
        (unlike Redis, 0 never means "forever", so a stop request is always seen).
        """
        ...

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        """Mark entries handled for `group`; return how many were pending."""
        ...

    async def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 10
    ) -> list[Delivery]:
        """Take over up to `count` entries pending at least `min_idle_ms` (oldest first).

        The owner is presumed dead; each returned delivery counts one more delivery.
        """
        ...

    async def trim(self, stream: str, max_len: int) -> int:
        """Drop the oldest entries down to `max_len`, never one a group still needs.

        Entries pending in a group or not yet delivered to it are kept even if that leaves
        more than `max_len`. Returns how many entries were removed.
        """
        ...

    async def length(self, stream: str) -> int:
        """Entries currently stored in `stream` (0 if it does not exist)."""
        ...

    async def close(self) -> None:
        """Release connections or files; the bus cannot be used afterwards."""
        ...

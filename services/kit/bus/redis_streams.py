"""The production bus: Redis Streams with consumer groups, through redis.asyncio.

The `Bus` contract is Redis's own model, so each method is one or two commands. A message
is stored as a flat field map (`type`, `key`, `tenant`, `offset`, `payload` as raw bytes,
and one `h:<name>` field per header) so that `XRANGE` in redis-cli stays readable.
Connection failures surface as `Unavailable`, a missing group as `NoSuchGroup`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.typing import EncodableT, FieldT

from services.kit.bus.base import (
    BusMessage,
    Delivery,
    NoSuchGroup,
    entry_id_key,
    format_entry_id,
)
from services.kit.errors import Unavailable

_HEADER_PREFIX = b"h:"
_CLAIM_ROUNDS = 100  # XAUTOCLAIM scans at most 10 * COUNT pending entries per call


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(message: BusMessage) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {
        b"type": message.type.encode(),
        b"key": message.key.encode(),
        b"tenant": message.tenant.encode(),
        b"offset": str(message.offset).encode(),
        b"payload": message.payload,
    }
    for name, value in message.headers.items():
        fields[_HEADER_PREFIX + name.encode()] = value.encode()
    return fields


def _decode(fields: Mapping[bytes, bytes]) -> BusMessage:
    return BusMessage(
        type=fields.get(b"type", b"").decode(),
        key=fields.get(b"key", b"").decode(),
        tenant=fields.get(b"tenant", b"").decode(),
        offset=int(fields.get(b"offset", b"0")),
        payload=bytes(fields.get(b"payload", b"")),
        headers={
            name[len(_HEADER_PREFIX) :].decode(): value.decode()
            for name, value in fields.items()
            if name.startswith(_HEADER_PREFIX)
        },
    )


def _entries(response: Any) -> list[tuple[bytes, Mapping[bytes, bytes] | None]]:
    """The entries of a one-stream XREADGROUP reply, in RESP2 or RESP3 shape."""
    if not response:
        return []
    per_stream = response.values() if isinstance(response, dict) else [r[1] for r in response]
    found: list[tuple[bytes, Mapping[bytes, bytes] | None]] = []
    for entries in per_stream:
        found.extend(entries)
    return found


def _after(entry_id: bytes | str) -> tuple[int, int]:
    """The smallest id greater than `entry_id`."""
    ms, seq = entry_id_key(_text(entry_id))
    return (ms, seq + 1)


@asynccontextmanager
async def _translated(stream: str, group: str | None = None) -> AsyncIterator[None]:
    """Turn redis-py errors into the platform's: callers should not import redis."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise Unavailable(f"event bus unreachable: {exc}", reason="BUS_UNAVAILABLE") from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise NoSuchGroup(f"no consumer group {group!r} on stream {stream!r}") from exc
        raise


class RedisStreamsBus:
    """`Bus` on Redis Streams; `url` is a redis:// (or rediss://, unix://) URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Raw bytes in and out: payloads are binary protobuf.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=False, protocol=2
        )

    async def publish(self, stream: str, message: BusMessage) -> str:
        async with _translated(stream):
            entry_id = await self._redis.xadd(stream, _encode(message))
        return _text(entry_id)

    async def publish_many(self, stream: str, messages: Sequence[BusMessage]) -> list[str]:
        """One round trip for a whole batch (a pipeline of XADDs, in order)."""
        if not messages:
            return []
        async with _translated(stream):
            pipe = self._redis.pipeline(transaction=False)
            for message in messages:
                pipe.xadd(stream, _encode(message))
            entry_ids = await pipe.execute()
        return [_text(entry_id) for entry_id in entry_ids]

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        try:
            async with _translated(stream, group):
                await self._redis.xgroup_create(stream, group, id=start, mkstream=True)
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def read(
        self, stream: str, group: str, consumer: str, count: int = 10, block_ms: int = 0
    ) -> list[Delivery]:
        if count < 1:
            raise ValueError("count must be at least 1")
        async with _translated(stream, group):
            response = await self._redis.xreadgroup(
                group, consumer, {stream: ">"}, count=count, block=block_ms or None
            )
        return [
            Delivery(_text(entry_id), _decode(fields), 1)
            for entry_id, fields in _entries(response)
            if fields is not None
        ]

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        async with _translated(stream, group):
            return int(await self._redis.xack(stream, group, *ids))

    async def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 10
    ) -> list[Delivery]:
        if count < 1:
            raise ValueError("count must be at least 1")
        claimed: list[tuple[str, Mapping[bytes, bytes]]] = []
        cursor = "0-0"
        async with _translated(stream, group):
            for _ in range(_CLAIM_ROUNDS):
                reply = await self._redis.xautoclaim(
                    stream,
                    group,
                    consumer,
                    min_idle_ms,
                    start_id=cursor,
                    count=count - len(claimed),
                )
                cursor = _text(reply[0])
                claimed.extend((_text(i), f) for i, f in reply[1] if f is not None)
                if len(claimed) >= count or cursor == "0-0":
                    break
            if not claimed:
                return []
            # XAUTOCLAIM does not report delivery counts; XPENDING does, one id at a time.
            pipe = self._redis.pipeline(transaction=False)
            for entry_id, _ in claimed:
                pipe.xpending_range(stream, group, entry_id, entry_id, 1)
            details = await pipe.execute()
        deliveries = []
        for (entry_id, fields), detail in zip(claimed, details, strict=True):
            # Acked in the meantime by the old owner: nothing left to do for it.
            if detail:
                times = int(detail[0]["times_delivered"])
                deliveries.append(Delivery(entry_id, _decode(fields), times))
        return deliveries

    async def trim(self, stream: str, max_len: int) -> int:
        if max_len < 0:
            raise ValueError("max_len must not be negative")
        async with _translated(stream):
            newest = await self._redis.xrevrange(stream, count=max(max_len, 1)) or []
            if len(newest) < max_len or not newest:
                return 0
            oldest_kept = newest[-1][0]
            if oldest_kept is None:
                return 0
            cutoff = _after(oldest_kept) if max_len == 0 else entry_id_key(_text(oldest_kept))
            # The oldest entry any group still needs: pending, or after its last delivery.
            for info in await self._redis.xinfo_groups(stream):
                cutoff = min(cutoff, _after(info["last-delivered-id"]))
                if int(info["pending"]) > 0:
                    summary = await self._redis.xpending(stream, info["name"])
                    if summary["min"] is not None:
                        cutoff = min(cutoff, entry_id_key(_text(summary["min"])))
            return int(
                await self._redis.xtrim(stream, minid=format_entry_id(cutoff), approximate=False)
            )

    async def length(self, stream: str) -> int:
        async with _translated(stream):
            return int(await self._redis.xlen(stream))

    async def close(self) -> None:
        await self._redis.aclose()

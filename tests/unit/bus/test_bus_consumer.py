"""The `Consumer` loop on both adapters: retries, take-over and the dead stream."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from services.kit.bus import DEAD_REASON_HEADER, Bus, BusMessage, Consumer, Delivery, dead_stream


def message(key: str) -> BusMessage:
    return BusMessage(
        type="event.reported",
        key=key,
        tenant="sh/jiading/anting/xingming",
        offset=0,
        payload=key.encode(),
        headers={"x-request-id": f"req-{key}"},
    )


async def wait_until(predicate: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_poison_message_goes_to_dead_stream_and_the_rest_flows(bus: Bus, stream: str) -> None:
    calls: Counter[str] = Counter()

    async def handler(delivery: Delivery) -> None:
        calls[delivery.message.key] += 1
        if delivery.message.key == "bad":
            raise RuntimeError("cannot route this event")

    consumer = Consumer(
        bus, stream, "command", "worker-1", handler, min_idle_ms=20, block_ms=20, count=10
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    keys = ["a", "b", "bad", "c", "d"]
    for key in keys:
        await bus.publish(stream, message(key))

    async def settled() -> bool:
        return await bus.length(dead_stream(stream)) == 1 and all(
            calls[k] for k in keys if k != "bad"
        )

    try:
        await wait_until(settled)
        published_later = await bus.publish(stream, message("e"))

        async def later_handled() -> bool:
            return calls["e"] == 1

        await wait_until(later_handled)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)

    assert calls == Counter({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "bad": 5})
    # Everything in the original group is acked, the poison message included.
    assert await bus.claim_stale(stream, "command", "inspector", min_idle_ms=0, count=100) == []
    assert published_later

    dead = dead_stream(stream)
    assert dead == f"{stream}.dead"
    await bus.ensure_group(dead, "inspect")
    [parked] = await bus.read(dead, "inspect", "me", count=10)
    assert parked.message.key == "bad"
    assert parked.message.payload == b"bad"
    assert parked.message.headers["x-request-id"] == "req-bad"
    reason = parked.message.headers[DEAD_REASON_HEADER]
    assert "max_deliveries=5" in reason
    assert "cannot route this event" in reason


async def test_consumer_takes_over_entries_of_a_dead_member(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    for key in ("x", "y"):
        await bus.publish(stream, message(key))
    # A member reads and dies without acking.
    assert len(await bus.read(stream, "g", "crashed", count=10)) == 2

    handled: list[tuple[str, int]] = []

    async def handler(delivery: Delivery) -> None:
        handled.append((delivery.message.key, delivery.delivery_count))

    consumer = Consumer(bus, stream, "g", "survivor", handler, min_idle_ms=30, block_ms=10)
    await asyncio.sleep(0.05)
    assert await consumer.run_once() == 2
    assert handled == [("x", 2), ("y", 2)]
    assert await bus.claim_stale(stream, "g", "inspector", min_idle_ms=0) == []


async def test_run_stops_promptly_when_asked(bus: Bus, stream: str) -> None:
    async def handler(delivery: Delivery) -> None:
        return None

    consumer = Consumer(bus, stream, "g", "w", handler, block_ms=50)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_a_batch_handler_takes_a_read_at_once_and_a_poison_message_is_handled_alone(
    bus: Bus, stream: str
) -> None:
    batches: list[list[str]] = []
    singles: Counter[str] = Counter()

    async def one(delivery: Delivery) -> None:
        singles[delivery.message.key] += 1
        if delivery.message.key == "bad":
            raise RuntimeError("cannot route this event")

    async def many(deliveries: list[Delivery]) -> None:
        keys = [d.message.key for d in deliveries]
        batches.append(keys)
        if "bad" in keys:
            raise RuntimeError("one of these cannot be routed")

    good = ["a", "b", "c"]
    for key in good:
        await bus.publish(stream, message(key))
    consumer = Consumer(
        bus,
        stream,
        "command",
        "worker-1",
        one,
        min_idle_ms=20,
        block_ms=20,
        count=10,
        batch_handler=many,
    )
    await bus.ensure_group(stream, "command")
    assert await consumer.run_once() == 3
    assert batches == [good] and not singles  # one call for the read, acked together
    assert await bus.claim_stale(stream, "command", "inspector", min_idle_ms=0, count=10) == []

    for key in ["d", "bad", "e"]:
        await bus.publish(stream, message(key))
    assert await consumer.run_once() == 3
    # The batch failed: each was handled on its own, and only the poison message stays.
    assert batches[-1] == ["d", "bad", "e"]
    assert singles == Counter({"d": 1, "bad": 1, "e": 1})
    [left] = await bus.claim_stale(stream, "command", "inspector", min_idle_ms=0, count=10)
    assert left.message.key == "bad"

"""Stopping a reader stops it: a blocked read cancelled twice (as a closing event loop
and its caller may both do) ends cancelled on both buses, and a consumer whose task is
cancelled ends even when the read it was in turns the cancel into an error. The local
bus's reads once waited on a Condition, whose lock a second cancel could leave released:
the cancel came out as "Lock is not acquired", the consumer logged it and retried, and a
test's event loop could not close for five minutes."""

from __future__ import annotations

import asyncio

from services.kit.bus import Bus, LocalLogBus
from services.kit.bus.consumer import Consumer


async def test_a_blocked_read_cancelled_twice_ends_cancelled(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g", "$")
    for turns in range(6):  # the second cancel lands after 0 to 5 turns of the loop
        reading = asyncio.create_task(bus.read(stream, "g", "c", 10, 5_000))
        await asyncio.sleep(0.05)
        reading.cancel()
        for _ in range(turns):
            await asyncio.sleep(0)
        reading.cancel()
        done, _ = await asyncio.wait({reading}, timeout=2)
        assert done, "the read went on after being cancelled"
        assert reading.cancelled(), reading.exception()


async def test_a_cancelled_consumer_ends_without_retrying(bus: Bus, stream: str, caplog) -> None:
    async def handle(_delivery) -> None:
        return None

    consumer = Consumer(bus, stream, "g", "c", handle, block_ms=5_000, error_backoff_ms=10)
    running = asyncio.create_task(consumer.run(asyncio.Event()))
    await asyncio.sleep(0.2)  # blocked in its read
    running.cancel()
    await asyncio.sleep(0)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=2)
    assert done, "the consumer kept running after being cancelled"
    assert running.cancelled()
    assert "bus consumer error" not in caplog.text


class CancelTurnedIntoError(LocalLogBus):
    """A read that, cancelled, raises an error instead: what the old local read did."""

    async def read(self, *args, **kwargs):
        try:
            return await super().read(*args, **kwargs)
        except asyncio.CancelledError:
            raise RuntimeError("Lock is not acquired.") from None


async def test_a_consumer_stops_even_when_its_read_turns_the_cancel_into_an_error(
    tmp_path, caplog
) -> None:
    bus = CancelTurnedIntoError(tmp_path / "bus.sqlite3")

    async def handle(_delivery) -> None:
        return None

    try:
        consumer = Consumer(bus, "s", "g", "c", handle, block_ms=5_000, error_backoff_ms=10)
        running = asyncio.create_task(consumer.run(asyncio.Event()))
        await asyncio.sleep(0.2)  # blocked in its read
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=2)
        if not done:
            running.cancel()  # let the test end
        assert done, "the consumer took the error for an outage and went on reading"
        assert "bus consumer error" not in caplog.text
    finally:
        await bus.close()

"""What the bus metrics count, on both adapters: the lag of each first delivery (its
age since publish) and the messages given up to the dead stream."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from services.kit.bus import Bus, Consumer, Delivery
from tests.unit.bus.test_bus_consumer import message, wait_until


def _value(name: str, stream: str, group: str) -> float:
    return REGISTRY.get_sample_value(name, {"stream": stream, "group": group}) or 0.0


async def test_lag_is_observed_once_per_message_and_dead_letters_are_counted(
    bus: Bus, stream: str
) -> None:
    async def handler(delivery: Delivery) -> None:
        if delivery.message.key == "bad":
            raise RuntimeError("cannot handle this")

    await bus.publish(stream, message("a"))
    await bus.publish(stream, message("bad"))
    await asyncio.sleep(0.3)  # the messages wait on the stream before anyone reads
    consumer = Consumer(bus, stream, "g", "w", handler, min_idle_ms=20, block_ms=20)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def buried() -> bool:
        return _value("grassroots_bus_dead_letters_total", stream, "g") == 1

    try:
        await wait_until(buried)
    finally:
        stop.set()
        await task
    # "a" and the first delivery of "bad": retries are not new lag.
    assert _value("grassroots_bus_delivery_lag_seconds_count", stream, "g") == 2
    assert _value("grassroots_bus_delivery_lag_seconds_sum", stream, "g") >= 0.5

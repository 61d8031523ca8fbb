"""The `Bus` contract, run against both adapters (see conftest's `bus` fixture)."""

from __future__ import annotations

import asyncio

import pytest

from services.kit.bus import Bus, BusMessage, NoSuchGroup, entry_id_key


def message(i: int, tenant: str = "sh/jiading/anting/xingming") -> BusMessage:
    return BusMessage(
        type="event.reported",
        key=f"ev_{i:04d}",
        tenant=tenant,
        offset=i,
        payload=b"\x00\x01binary\xff" + bytes([i % 256]),
        headers={"x-request-id": f"req-{i}", "traceparent": "00-abc-def-01"},
    )


async def publish_many(bus: Bus, stream: str, n: int) -> list[str]:
    return [await bus.publish(stream, message(i)) for i in range(n)]


async def test_publish_read_ack_in_order(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 5)
    assert [entry_id_key(i) for i in ids] == sorted(entry_id_key(i) for i in ids)
    assert len(set(ids)) == 5

    got = await bus.read(stream, "g", "c1", count=10, block_ms=0)
    assert [d.id for d in got] == ids
    assert [d.message for d in got] == [message(i) for i in range(5)]
    assert all(d.delivery_count == 1 for d in got)
    assert await bus.read(stream, "g", "c1", count=10, block_ms=0) == []

    assert await bus.ack(stream, "g", ids) == 5
    assert await bus.ack(stream, "g", ids) == 0
    assert await bus.claim_stale(stream, "g", "c2", min_idle_ms=0, count=10) == []
    assert await bus.length(stream) == 5


async def test_read_respects_count_and_resumes(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 5)
    first = await bus.read(stream, "g", "c1", count=2)
    rest = await bus.read(stream, "g", "c1", count=10)
    assert [d.id for d in first + rest] == ids


async def test_blocking_read_wakes_on_publish(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    reader = asyncio.create_task(bus.read(stream, "g", "c1", count=10, block_ms=5_000))
    await asyncio.sleep(0.05)
    entry_id = await bus.publish(stream, message(1))
    got = await asyncio.wait_for(reader, 5)
    assert [d.id for d in got] == [entry_id]
    # With nothing new, a blocking read gives up after block_ms.
    assert await bus.read(stream, "g", "c1", count=10, block_ms=30) == []


async def test_two_consumers_in_a_group_split_the_entries(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 7)
    seen: dict[str, list[str]] = {"c1": [], "c2": []}
    for turn in range(10):
        name = "c1" if turn % 2 == 0 else "c2"
        seen[name] += [d.id for d in await bus.read(stream, "g", name, count=1)]
    assert seen["c1"] and seen["c2"]
    assert not set(seen["c1"]) & set(seen["c2"])
    assert sorted(seen["c1"] + seen["c2"], key=entry_id_key) == ids


async def test_two_groups_each_get_every_entry(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "command")
    await bus.ensure_group(stream, "empower")
    ids = await publish_many(bus, stream, 4)
    a = await bus.read(stream, "command", "c", count=10)
    assert await bus.ack(stream, "command", [d.id for d in a]) == 4
    b = await bus.read(stream, "empower", "c", count=10)
    assert [d.id for d in a] == [d.id for d in b] == ids


async def test_ensure_group_is_idempotent_and_honours_start(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    old = await publish_many(bus, stream, 2)
    await bus.ensure_group(stream, "late", start="$")
    new = await bus.publish(stream, message(9))
    assert [d.id for d in await bus.read(stream, "late", "c", count=10)] == [new]

    assert [d.id for d in await bus.read(stream, "g", "c", count=1)] == old[:1]
    await bus.ensure_group(stream, "g")  # must not rewind the group
    assert [d.id for d in await bus.read(stream, "g", "c", count=10)] == [old[1], new]

    await bus.ensure_group(stream, "from-id", start=old[0])
    assert [d.id for d in await bus.read(stream, "from-id", "c", count=10)] == [old[1], new]


async def test_group_on_an_empty_stream_creates_it(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    assert await bus.length(stream) == 0
    assert await bus.read(stream, "g", "c", count=1) == []


async def test_missing_group_is_a_clear_error(bus: Bus, stream: str) -> None:
    await bus.publish(stream, message(1))
    with pytest.raises(NoSuchGroup):
        await bus.read(stream, "nobody", "c", count=1)
    with pytest.raises(NoSuchGroup):
        await bus.claim_stale(stream, "nobody", "c", min_idle_ms=0)


async def test_claim_stale_redelivers_only_unacked_after_min_idle(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 3)
    await bus.read(stream, "g", "dead-worker", count=10)
    assert await bus.ack(stream, "g", [ids[1]]) == 1

    assert await bus.claim_stale(stream, "g", "c2", min_idle_ms=5_000) == []
    await asyncio.sleep(0.12)
    claimed = await bus.claim_stale(stream, "g", "c2", min_idle_ms=100, count=10)
    assert [d.id for d in claimed] == [ids[0], ids[2]]
    assert [d.delivery_count for d in claimed] == [2, 2]
    assert [d.message for d in claimed] == [message(0), message(2)]

    # Claiming resets the idle time, so nobody else takes them straight back.
    assert await bus.claim_stale(stream, "g", "c3", min_idle_ms=100) == []
    await asyncio.sleep(0.12)
    again = await bus.claim_stale(stream, "g", "c3", min_idle_ms=100, count=1)
    assert [(d.id, d.delivery_count) for d in again] == [(ids[0], 3)]


async def test_trim_keeps_every_unacknowledged_entry(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 10)
    await bus.read(stream, "g", "c1", count=10)
    await bus.ack(stream, "g", ids[:4])

    assert await bus.trim(stream, 0) == 4
    assert await bus.length(stream) == 6
    claimed = await bus.claim_stale(stream, "g", "c2", min_idle_ms=0, count=100)
    assert [d.id for d in claimed] == ids[4:]
    assert [d.message for d in claimed] == [message(i) for i in range(4, 10)]

    await bus.ack(stream, "g", ids[4:])
    assert await bus.trim(stream, 0) == 6
    assert await bus.length(stream) == 0


async def test_trim_stops_at_the_oldest_pending_entry(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 6)
    await bus.read(stream, "g", "c1", count=10)
    await bus.ack(stream, "g", ids[1:5])  # ids[0] still pending
    assert await bus.trim(stream, 0) == 0
    assert await bus.length(stream) == 6


async def test_trim_keeps_entries_a_group_has_not_read(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "fast")
    await bus.ensure_group(stream, "slow")
    ids = await publish_many(bus, stream, 8)
    await bus.ack(stream, "fast", [d.id for d in await bus.read(stream, "fast", "c", count=10)])
    await bus.ack(stream, "slow", [d.id for d in await bus.read(stream, "slow", "c", count=3)])

    assert await bus.trim(stream, 0) == 3
    assert [d.id for d in await bus.read(stream, "slow", "c", count=10)] == ids[3:]


async def test_trim_to_max_len_when_everything_is_acknowledged(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    ids = await publish_many(bus, stream, 10)
    await bus.ack(stream, "g", [d.id for d in await bus.read(stream, "g", "c", count=10)])
    assert await bus.trim(stream, 20) == 0
    assert await bus.trim(stream, 4) == 6
    assert await bus.length(stream) == 4
    # Ids keep growing after a trim; a new group from "0" sees what is left.
    newer = await bus.publish(stream, message(10))
    assert entry_id_key(newer) > entry_id_key(ids[-1])
    await bus.ensure_group(stream, "new")
    assert [d.id for d in await bus.read(stream, "new", "c", count=10)] == [*ids[6:], newer]


async def test_trim_without_groups_is_plain_retention(bus: Bus, stream: str) -> None:
    await publish_many(bus, stream, 5)
    assert await bus.trim(stream, 2) == 3
    assert await bus.length(stream) == 2
    assert await bus.trim(f"{stream}.missing", 0) == 0


async def test_publish_many_keeps_order_in_one_call(bus: Bus, stream: str) -> None:
    await bus.ensure_group(stream, "g")
    before = await bus.publish(stream, message(0))
    ids = await bus.publish_many(stream, [message(i) for i in range(1, 6)])
    assert len(ids) == 5
    assert [entry_id_key(i) for i in [before, *ids]] == sorted(
        entry_id_key(i) for i in [before, *ids]
    )
    assert len({before, *ids}) == 6
    got = await bus.read(stream, "g", "c1", count=10, block_ms=0)
    assert [d.message.offset for d in got] == list(range(6))
    assert await bus.publish_many(stream, []) == []

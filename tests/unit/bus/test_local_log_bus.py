"""What only the embedded log promises: durability across reopen, sharing a file, URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.kit.bus import BusMessage, LocalLogBus, open_bus
from services.kit.bus.redis_streams import RedisStreamsBus


def message(i: int) -> BusMessage:
    return BusMessage("event.reported", f"ev_{i}", "sh/jiading", i, b"\x00" * i, {"n": str(i)})


async def test_entries_groups_and_pending_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = LocalLogBus(path)
    await bus.ensure_group("events", "command")
    await bus.ensure_group("events", "empower")
    ids = [await bus.publish("events", message(i)) for i in range(3)]
    [delivered] = await bus.read("events", "command", "worker-1", count=1)
    await bus.close()

    reopened = LocalLogBus(path)
    try:
        assert await reopened.length("events") == 3
        # The pending entry is still owed to the group, and nothing is read twice.
        [claimed] = await reopened.claim_stale("events", "command", "worker-2", min_idle_ms=0)
        assert (claimed.id, claimed.delivery_count) == (delivered.id, 2)
        assert claimed.message == message(0)
        rest = await reopened.read("events", "command", "worker-2", count=10)
        assert [d.id for d in rest] == ids[1:]
        # The other group kept its own position (nothing read yet).
        assert [d.id for d in await reopened.read("events", "empower", "w", count=10)] == ids
        newer = await reopened.publish("events", message(3))
        assert newer not in ids
    finally:
        await reopened.close()


async def test_a_second_handle_on_the_file_sees_publishes_by_polling(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    writer, reader = LocalLogBus(path), LocalLogBus(path)
    try:
        await reader.ensure_group("events", "g")
        waiting = asyncio.create_task(reader.read("events", "g", "c", count=5, block_ms=5_000))
        await asyncio.sleep(0.1)
        entry_id = await writer.publish("events", message(1))
        got = await asyncio.wait_for(waiting, 5)
        assert [d.id for d in got] == [entry_id]
    finally:
        await writer.close()
        await reader.close()


async def test_open_bus_chooses_the_adapter_by_url(tmp_path: Path) -> None:
    by_url = open_bus((tmp_path / "a.sqlite3").as_uri())
    by_path = open_bus(str(tmp_path / "b.sqlite3"))
    remote = open_bus("redis://127.0.0.1:6379/0")
    try:
        assert isinstance(by_url, LocalLogBus)
        assert by_url.path == tmp_path / "a.sqlite3"
        assert isinstance(by_path, LocalLogBus)
        assert by_path.path == tmp_path / "b.sqlite3"
        assert isinstance(remote, RedisStreamsBus)
    finally:
        for bus in (by_url, by_path, remote):
            await bus.close()
    with pytest.raises(ValueError, match="scheme"):
        open_bus("amqp://localhost/")
    with pytest.raises(ValueError):
        open_bus("")
    for typo in ("redis//127.0.0.1:6379/0", "redis:/127.0.0.1:6379/0", "file//tmp/bus"):
        with pytest.raises(ValueError, match="mistyped"):
            open_bus(typo)

"""The change log watchers read: order, selection, resume, and being told of a gap."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.kit.errors import InvalidArgument
from services.twin.domain.stream import (
    ChangeLog,
    EntityChange,
    Idle,
    LoggedChange,
    Missed,
    Selector,
)

XINGMING = "sh/jiading/anting/xingming"


def change(entity: str, sequence: int, **kw) -> EntityChange:  # type: ignore[no-untyped-def]
    defaults = {"tenant": XINGMING, "entity_type": "WaterLevelGauge", "kind": "updated"}
    return EntityChange(entity_id=entity, sequence=sequence, **{**defaults, **kw})


def test_selectors_choose_by_subtree_entity_model_and_area() -> None:
    gauge = change("g1", 1, location=(121.16, 31.30))
    assert Selector("sh/jiading").matches(gauge)
    assert not Selector("sh/jiading/anting/xiangyang").matches(gauge)
    assert Selector(XINGMING, entity=(XINGMING, "g1")).matches(gauge)
    assert not Selector(XINGMING, entity=(XINGMING, "g2")).matches(gauge)
    assert not Selector("sh", entity=("sh/jiading", "g1")).matches(gauge)
    assert Selector(XINGMING, entity_type="WaterLevelGauge").matches(gauge)
    assert not Selector(XINGMING, entity_type="SmokeDetector").matches(gauge)
    assert Selector(XINGMING, box=(121.1, 31.2, 121.2, 31.4)).matches(gauge)
    assert not Selector(XINGMING, box=(121.2, 31.2, 121.3, 31.4)).matches(gauge)
    assert not Selector(XINGMING, box=(121.1, 31.2, 121.2, 31.4)).matches(change("g2", 1))
    with pytest.raises(InvalidArgument):
        Selector(XINGMING, box=(121.3, 31.2, 121.2, 31.4))


def test_reads_are_in_commit_order_and_a_gap_is_reported() -> None:
    log = ChangeLog(capacity=10)
    log.append(change("g1", n) for n in range(1, 26))
    assert log.first_offset == 16 and log.last_offset == 25
    assert log.read(3) == Missed(3, 16)
    held = log.read(15)
    assert isinstance(held, list)
    assert [c.change.sequence for c in held] == list(range(16, 26))
    assert log.read(25) == []


def test_resume_tokens() -> None:
    log = ChangeLog()
    log.append([change("g1", 1), change("g1", 2)])
    assert log.start_after("") == 2
    assert log.start_after(log.token(1)) == 1
    # A token of an earlier process: told it missed, resumes at the oldest held change.
    assert log.start_after("00000000.1") == Missed(0, 1)
    for bad in ("x", "abc.", "abc.-1", f"{log.epoch}.99", f"{log.epoch}.1٢"):
        with pytest.raises(InvalidArgument) as caught:
            log.start_after(bad)
        assert caught.value.violations[0].field == "resume_token"


async def _watch(
    log: ChangeLog,
    selector: Selector,
    seen: dict[str, int],
    gaps: list[Missed],
    total: int,
    delay: float = 0.0,
    token: str = "",
) -> None:
    """Follow until every entity reached `total`, checking order as a watcher must."""
    async for item in log.follow(selector, token, idle_seconds=0.05):
        if len(seen) == 100 and all(v == total for v in seen.values()):
            return
        if isinstance(item, Missed):
            gaps.append(item)
            # Told of a gap: a real watcher re-reads the entities; the test reads the truth.
            seen.update(TRUTH)
            continue
        if isinstance(item, Idle):
            continue
        assert isinstance(item, LoggedChange)
        entity, sequence = item.change.entity_id, item.change.sequence
        if gaps and sequence <= seen.get(entity, 0):
            continue  # older than the state re-read after the gap
        assert sequence == seen.get(entity, 0) + 1, (entity, sequence, seen.get(entity))
        seen[entity] = sequence
        if delay:
            await asyncio.sleep(delay)


TRUTH: dict[str, int] = {}


async def test_a_hundred_entities_fifty_updates_three_watchers_one_of_them_slow() -> None:
    log = ChangeLog(capacity=800)
    TRUTH.clear()
    views: list[dict[str, int]] = [{}, {}, {}]
    gaps: list[list[Missed]] = [[], [], []]
    watchers = [
        asyncio.create_task(_watch(log, Selector("sh"), views[0], gaps[0], 50)),
        asyncio.create_task(_watch(log, Selector(XINGMING), views[1], gaps[1], 50)),
        asyncio.create_task(_watch(log, Selector("sh"), views[2], gaps[2], 50, delay=0.002)),
    ]
    await asyncio.sleep(0.05)
    for round_ in range(1, 51):
        log.append(change(f"e{i}", round_) for i in range(100))
        for i in range(100):
            TRUTH[f"e{i}"] = round_
        await asyncio.sleep(0)
    async with asyncio.timeout(60):
        await asyncio.gather(*watchers)
    for view in views:
        assert view == {f"e{i}": 50 for i in range(100)}
    assert gaps[0] == [] and gaps[1] == []  # the prompt watchers saw every change in order
    assert gaps[2], "the slow watcher fell behind the ring and must have been told"


async def test_a_change_appended_from_another_thread_wakes_the_watcher() -> None:
    log = ChangeLog()
    got: list[int] = []

    async def first() -> None:
        async for item in log.follow(Selector(XINGMING), idle_seconds=30):
            assert isinstance(item, LoggedChange)
            got.append(item.change.sequence)
            return

    task = asyncio.create_task(first())
    await asyncio.sleep(0.05)
    threading.Thread(target=log.append, args=([change("g1", 7)],)).start()
    async with asyncio.timeout(10):
        await task
    assert got == [7]


async def test_idle_watchers_get_keepalives_with_their_position() -> None:
    log = ChangeLog()
    log.append([change("other", 1, tenant="sh/jiading/malu")])
    stream = log.follow(Selector(XINGMING), log.token(0), idle_seconds=0.05)
    async with asyncio.timeout(10):
        item = await anext(stream)
    assert item == Idle(1)
    await stream.aclose()

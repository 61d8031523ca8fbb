"""Durable timers: due rows fire once, leases protect them, a restart fires late ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.command.domain.timers import Scheduler, Timer
from services.command.store.sqlite import SqliteCommandStore

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def timer(n: int, due: datetime, kind: str = "test.kind") -> Timer:
    return Timer(id=f"t{n}", tenant="sh/jiading/anting", kind=kind, due=due, payload=f'{{"n":{n}}}')


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.fired: list[str] = []

    async def __call__(self, timers: Sequence[Timer]) -> None:
        self.fired.extend(t.id for t in timers)


async def test_due_timers_fire_once_and_future_ones_wait(store):
    clock = Clock(T0)
    seen = Recorder()
    scheduler = Scheduler(store, owner="a", clock=clock)
    scheduler.on("test.kind", seen)
    await scheduler.schedule(
        [timer(1, T0 - timedelta(seconds=1)), timer(2, T0 + timedelta(minutes=5))]
    )

    assert await scheduler.fire_due() == 1
    assert await scheduler.fire_due() == 0
    assert seen.fired == ["t1"]
    assert (await store.get_timer("t1")).fired is not None
    assert (await store.get_timer("t2")).fired is None
    assert await store.next_due() == T0 + timedelta(minutes=5)

    clock.now = T0 + timedelta(minutes=6)
    assert await scheduler.fire_due() == 1
    assert seen.fired == ["t1", "t2"]
    assert await store.next_due() is None


async def test_scheduling_an_existing_id_keeps_the_first_deadline(store):
    first = timer(1, T0)
    assert await store.schedule_timers([first]) == 1
    assert await store.schedule_timers([timer(1, T0 + timedelta(hours=1))]) == 0
    assert (await store.get_timer("t1")).due == T0


async def test_cancelled_timers_never_fire(store):
    clock = Clock(T0)
    seen = Recorder()
    scheduler = Scheduler(store, owner="a", clock=clock)
    scheduler.on("test.kind", seen)
    await scheduler.schedule([timer(1, T0), timer(2, T0)])
    assert await scheduler.cancel(["t1"]) == 1
    await scheduler.fire_due()
    assert seen.fired == ["t2"]
    assert await store.cancel_timers(["t2"]) == 0  # fired already: nothing to cancel


async def test_a_lease_keeps_others_off_until_it_runs_out(store):
    """A scheduler that claimed and died: its rows wait for the lease, then fire elsewhere."""
    lease_until = T0 + timedelta(seconds=30)
    await store.schedule_timers([timer(1, T0)])
    claimed = await store.claim_due_timers(T0, "dead", lease_until, 10)
    assert [t.id for t in claimed] == ["t1"]
    assert claimed[0].attempts == 1
    assert (
        await store.claim_due_timers(T0 + timedelta(seconds=10), "b", T0 + timedelta(minutes=1), 10)
        == []
    )
    # The dead owner's lease ran out: another takes the row over, once.
    taken = await store.claim_due_timers(
        T0 + timedelta(seconds=31), "b", T0 + timedelta(minutes=2), 10
    )
    assert [t.attempts for t in taken] == [2]
    assert await store.finish_timers(["t1"], "dead", T0) == 0  # not the holder any more
    assert await store.finish_timers(["t1"], "b", T0 + timedelta(seconds=32)) == 1
    assert (
        await store.claim_due_timers(T0 + timedelta(hours=1), "c", T0 + timedelta(hours=2), 10)
        == []
    )


async def test_a_failing_handler_leaves_its_timers_for_later(store):
    clock = Clock(T0)
    calls: list[int] = []

    async def broken(timers: Sequence[Timer]) -> None:
        calls.append(len(timers))
        raise RuntimeError("down")

    scheduler = Scheduler(store, owner="a", clock=clock, lease=timedelta(seconds=5))
    scheduler.on("test.kind", broken)
    await scheduler.schedule([timer(1, T0)])
    assert await scheduler.fire_due() == 0
    assert (await store.get_timer("t1")).fired is None
    clock.now = T0 + timedelta(seconds=6)
    assert await scheduler.fire_due() == 0
    assert calls == [1, 1]


async def test_the_run_loop_fires_a_timer_scheduled_while_it_waits(store):
    seen = Recorder()
    scheduler = Scheduler(store, owner="a", poll_seconds=30)
    scheduler.on("test.kind", seen)
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.05)
    await scheduler.schedule([timer(1, datetime.now(UTC))])
    for _ in range(200):
        if seen.fired:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await running
    assert seen.fired == ["t1"]


async def test_timers_due_while_closed_fire_once_after_reopening(tmp_path):
    path = tmp_path / "command.sqlite3"
    first = SqliteCommandStore(path)
    await first.schedule_timers([timer(n, T0 + timedelta(seconds=n)) for n in range(5)])
    await first.close()

    reopened = SqliteCommandStore(path)
    seen = Recorder()
    scheduler = Scheduler(reopened, owner="after", clock=Clock(T0 + timedelta(minutes=1)))
    scheduler.on("test.kind", seen)
    assert await scheduler.fire_due() == 5
    assert await scheduler.fire_due() == 0
    assert sorted(seen.fired) == [f"t{n}" for n in range(5)]
    await reopened.close()


def test_a_kind_has_one_handler(tmp_path):
    scheduler = Scheduler(SqliteCommandStore(tmp_path / "c.sqlite3"), owner="a")
    scheduler.on("k", Recorder())
    with pytest.raises(ValueError, match="has a handler"):
        scheduler.on("k", Recorder())

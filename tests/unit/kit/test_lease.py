"""Singleton jobs: one holder at a time on real PostgreSQL, a dead holder's job taken
over once its lease expires, a holder that cannot renew stopping its job."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.kit.lease import LocalLeases, PostgresLeases, run_as_singleton


@pytest.fixture
async def leases_on(postgis_test_dsn):
    """A factory of lease stores on this test's database, each as a replica holds one."""
    made: list[PostgresLeases] = []

    def make() -> PostgresLeases:
        made.append(PostgresLeases(postgis_test_dsn))
        return made[-1]

    yield make
    for leases in made:
        await leases.close()


async def test_one_holder_at_a_time_and_a_new_token_on_takeover(leases_on):
    leases = leases_on()
    assert await leases.acquire("relay", "a", 0.3) == 1
    assert await leases.acquire("relay", "b", 0.3) is None
    assert await leases.acquire("relay", "a", 0.3) == 1  # renewing keeps the token
    await asyncio.sleep(0.5)  # a stopped renewing: expired
    assert await leases.acquire("relay", "b", 5) == 2
    assert await leases.acquire("relay", "a", 5) is None
    await leases.release("relay", "a")  # not a's to release: nothing changes
    assert await leases.acquire("relay", "a", 5) is None
    await leases.release("relay", "b")
    assert await leases.acquire("relay", "a", 5) == 3
    assert await leases.acquire("other", "b", 5) == 1  # leases are independent


async def test_local_leases_always_grant():
    assert await LocalLeases().acquire("x", "anyone", 1) == 1


class Recorder:
    """A job that notes who runs when, so overlaps show."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.overlaps = 0
        self.starts: list[tuple[str, float]] = []

    def job(self, who: str):
        async def run(until: asyncio.Event) -> None:
            self.running.add(who)
            self.overlaps += len(self.running) > 1
            self.starts.append((who, time.monotonic()))
            try:
                await until.wait()
            finally:
                self.running.discard(who)

        return run


async def test_a_dead_holders_job_moves_to_another_replica_within_the_lease_time(leases_on):
    recorder = Recorder()
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    seconds = 1.0
    a = asyncio.create_task(
        run_as_singleton(leases_on(), "sweep", recorder.job("a"), stop_a, seconds=seconds)
    )
    await asyncio.sleep(0.3)
    b = asyncio.create_task(
        run_as_singleton(leases_on(), "sweep", recorder.job("b"), stop_b, seconds=seconds)
    )
    await asyncio.sleep(1.5)
    assert recorder.running == {"a"}, "the second replica waits while the first holds the lease"
    a.cancel()  # dies without releasing, like kill -9: its lease must expire first
    died = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await a
    recorder.running.discard("a")
    for _ in range(60):
        if "b" in recorder.running:
            break
        await asyncio.sleep(0.1)
    taken = next(t for who, t in recorder.starts if who == "b")
    # The lease runs out `seconds` after the last renewal, and the waiting replica looks
    # every third of that; the rest is slack for a busy machine (the suite runs in two
    # sessions side by side), far below the 30 s a lease-less takeover would wait for.
    assert taken - died <= seconds + seconds / 3 + 1.5, "taken over within the lease time"
    assert recorder.overlaps == 0
    stop_b.set()
    await b
    assert recorder.running == set()


async def test_a_stopped_holder_releases_so_the_next_need_not_wait(leases_on):
    recorder = Recorder()
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(
        run_as_singleton(leases_on(), "relay", recorder.job("a"), stop_a, seconds=30)
    )
    await asyncio.sleep(0.3)
    stop_a.set()
    await a
    b = asyncio.create_task(
        run_as_singleton(leases_on(), "relay", recorder.job("b"), stop_b, seconds=30)
    )
    for _ in range(50):
        if "b" in recorder.running:
            break
        await asyncio.sleep(0.1)
    assert "b" in recorder.running, "a 30 s lease given back on shutdown is free at once"
    stop_b.set()
    await b


class Unreachable:
    """A lease store whose database went away after the first grant."""

    def __init__(self) -> None:
        self.calls = 0

    async def acquire(self, name: str, holder: str, seconds: float) -> int | None:
        self.calls += 1
        if self.calls > 1:
            raise OSError("connection refused")
        return 1

    async def release(self, name: str, holder: str) -> None:
        raise OSError("connection refused")


async def test_a_holder_that_cannot_renew_stops_its_job():
    recorder = Recorder()
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_as_singleton(Unreachable(), "relay", recorder.job("a"), stop, seconds=0.3)
    )
    await asyncio.sleep(0.05)
    assert recorder.running == {"a"}
    await asyncio.sleep(0.4)
    assert recorder.running == set(), "no renewal, no job: someone else may hold it by now"
    stop.set()
    await runner

"""A flood of sign-ins is refused promptly instead of queueing every password check
behind the others until the gateway's deadline passes (504 for everyone, the owner too)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.verification_gate import SIGN_IN_BUSY, GateLimits, VerificationGate
from services.kit.errors import ResourceExhausted, Unauthenticated, Unavailable

from .conftest import PASSWORD, XINGMING, add_user

ATTACKER = "198.51.100.66"
OWNER = "203.0.113.9"


class HeldHasher(PasswordHasher):
    """Real argon2 whose checks wait until the test lets them finish, so the gate stays
    full as long as a test needs, on any machine."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.release = threading.Event()
        self.started = 0

    def verify(self, hash, password):
        self.started += 1
        self.release.wait(30)
        return super().verify(hash, password)


async def until(condition, what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def held_directory(store, clock, limits: GateLimits) -> tuple[IdentityDirectory, HeldHasher]:
    hasher = HeldHasher()
    gate = VerificationGate(limits)
    return IdentityDirectory(store, clock=clock, hasher=hasher, gate=gate), hasher


async def test_a_flood_from_one_address_is_refused_at_once_and_the_owner_signs_in(
    tree, store, clock
):
    await add_user(tree, XINGMING, "li.na")
    directory, hasher = held_directory(store, clock, GateLimits(parallel=1, queue=2, per_source=1))
    flood = [
        asyncio.create_task(directory.login(f"guess.{i}", "wrong password", ATTACKER))
        for i in range(6)
    ]
    await until(lambda: hasher.started == 1, "the first guess to be checked")
    # The address holds its one place; its other guesses are refused without waiting.
    await until(lambda: sum(t.done() for t in flood) == 5, "five refusals")
    checked = next(t for t in flood if not t.done())
    refused = [t.exception() for t in flood if t is not checked]
    assert all(isinstance(e, ResourceExhausted) for e in refused), refused
    assert {(e.reason, e.metadata["retry_after_seconds"]) for e in refused} == {(SIGN_IN_BUSY, "1")}
    # The owner, from another address, waits for the one running check, not the flood.
    owner = asyncio.create_task(directory.login("li.na", PASSWORD, OWNER))
    await until(lambda: directory.gate.admitted == 2, "the owner to queue")
    hasher.release.set()
    assert (await owner).access_token
    with pytest.raises(Unauthenticated):
        await checked
    assert directory.gate.admitted == 0


async def test_a_full_queue_refuses_every_address_and_a_long_wait_gives_up(tree, store, clock):
    limits = GateLimits(parallel=1, queue=1, per_source=5, max_wait=timedelta(milliseconds=200))
    directory, hasher = held_directory(store, clock, limits)
    running = asyncio.create_task(directory.login("first.guess", "x" * 10, "198.51.100.1"))
    await until(lambda: hasher.started == 1, "the first check")
    waiting = asyncio.create_task(directory.login("second.guess", "x" * 10, "198.51.100.2"))
    await until(lambda: directory.gate.admitted == 2, "the second to queue")
    with pytest.raises(ResourceExhausted) as full:
        await directory.login("third.guess", "x" * 10, "198.51.100.3")
    assert full.value.reason == SIGN_IN_BUSY
    # The queued one could not start in time: UNAVAILABLE (503 with Retry-After), not a hang.
    with pytest.raises(Unavailable) as gave_up:
        await waiting
    assert gave_up.value.reason == SIGN_IN_BUSY
    hasher.release.set()
    with pytest.raises(Unauthenticated):
        await running
    assert directory.gate.admitted == 0


async def test_a_check_that_could_not_finish_before_the_callers_deadline_is_refused(
    tree, store, clock
):
    directory, hasher = held_directory(store, clock, GateLimits(parallel=1, queue=4))
    running = asyncio.create_task(directory.login("first.guess", "x" * 10, "198.51.100.1"))
    await until(lambda: hasher.started == 1, "the first check")
    # The caller gives up in 0.3 s: no time to wait for a turn, so "busy" at once.
    with pytest.raises(Unavailable) as busy:
        await directory.login("li.na", PASSWORD, "203.0.113.9", time_left=0.3)
    assert busy.value.reason == SIGN_IN_BUSY
    hasher.release.set()
    with pytest.raises(Unauthenticated):
        await running

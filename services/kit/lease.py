"""Singleton jobs under a lease that fails over between replicas.

An outbox relay or a sweep must run in one replica at a time, and in another one soon
after that replica dies. The lease is a row in the service's own PostgreSQL database:
a holder takes it when it is free or expired, renews it every third of its time, and
each change of holder increments a fencing token. A replica killed with -9 stops
renewing; another takes over once the lease expires. Time is the database's clock, so
replicas with skewed clocks agree. A holder that cannot renew (database unreachable,
or taken over after a pause) stops its job before anyone else may start it.

Embedded stores are files that one process owns, so `LocalLeases` always grants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.kit.metrics import SINGLETON_RUNNING

log = logging.getLogger("grassroots.lease")

DEFAULT_LEASE_SECONDS = 15.0
LEASES_DDL = """CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
)"""
# Take a free or expired lease (a new token), or renew one's own (the same token); the
# database's clock decides expiry.
_ACQUIRE = """
INSERT INTO leases AS l (name, holder, token, expires_us)
VALUES (
    %(name)s, %(holder)s, 1,
    (extract(epoch from clock_timestamp()) * 1000000)::bigint + %(ttl_us)s
)
ON CONFLICT (name) DO UPDATE
SET holder = EXCLUDED.holder,
    expires_us = EXCLUDED.expires_us,
    token = CASE WHEN l.holder = EXCLUDED.holder THEN l.token ELSE l.token + 1 END
WHERE l.holder = EXCLUDED.holder
   OR l.expires_us < (extract(epoch from clock_timestamp()) * 1000000)::bigint
RETURNING token"""
_RELEASE = "UPDATE leases SET expires_us = 0 WHERE name = %(name)s AND holder = %(holder)s"


class Leases(Protocol):
    async def acquire(self, name: str, holder: str, seconds: float) -> int | None:
        """Take or renew lease `name` for `seconds`: its fencing token, or None if
        someone else holds it."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up now, so a successor need not wait for it to expire."""
        ...


class LocalLeases:
    """One process owns an embedded store's files: it always holds every lease."""

    async def acquire(self, name: str, holder: str, seconds: float) -> int | None:
        return 1

    async def release(self, name: str, holder: str) -> None:
        return None

    async def close(self) -> None:
        return None


class PostgresLeases:
    """Leases as rows of the `leases` table in the service's database.

    Its own two connections, as the DSN's role: the stores' pools act as the policed
    app role, which may not create tables, and a lease is nobody's tenant data.
    """

    def __init__(self, dsn: str) -> None:
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="grassroots-leases",
        )
        self._ready = False
        self._lock = asyncio.Lock()

    async def _ensure_open(self) -> None:
        async with self._lock:
            if not self._ready:
                await self._pool.open(wait=True, timeout=10)
                async with self._pool.connection() as conn:
                    await conn.execute(LEASES_DDL)
                self._ready = True

    async def acquire(self, name: str, holder: str, seconds: float) -> int | None:
        await self._ensure_open()
        params = {"name": name, "holder": holder, "ttl_us": int(seconds * 1e6)}
        async with self._pool.connection(timeout=seconds / 3) as conn:
            row = await (await conn.execute(_ACQUIRE, params)).fetchone()
        return None if row is None else int(row[0])

    async def release(self, name: str, holder: str) -> None:
        if self._ready:
            async with self._pool.connection(timeout=2) as conn:
                await conn.execute(_RELEASE, {"name": name, "holder": holder})

    async def close(self) -> None:
        await self._pool.close()


def holder_name() -> str:
    """This process, uniquely: host, pid and a random part (pids repeat in containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Singletons:
    """The singleton jobs of one process, each under its own lease in the process's
    PostgreSQL database (or always held on an embedded store).

    `running` names the jobs this replica runs now, so a test (or an operator reading
    the `grassroots_singleton_running` gauge) sees where each one is.
    """

    def __init__(self, postgres_dsn: str, seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.leases: PostgresLeases | LocalLeases = (
            PostgresLeases(postgres_dsn) if postgres_dsn else LocalLeases()
        )
        self.seconds = seconds
        self.running: set[str] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, job: Job) -> None:
        """Run `job(until)` under lease `name` until `stop()`."""

        async def tracked(until: asyncio.Event) -> None:
            self.running.add(name)
            SINGLETON_RUNNING.labels(name).set(1)
            try:
                await job(until)
            finally:
                self.running.discard(name)
                SINGLETON_RUNNING.labels(name).set(0)

        self._tasks.append(
            asyncio.create_task(
                run_as_singleton(self.leases, name, tracked, self._stop, seconds=self.seconds),
                name=f"singleton:{name}",
            )
        )

    async def stop(self, *wake: Callable[[], object]) -> None:
        """End every job and give the leases back, so another replica need not wait;
        `wake` are called once the stop is set (a relay waiting for a change)."""
        self._stop.set()
        for call in wake:
            call()
        await asyncio.gather(*self._tasks)
        await self.leases.close()


async def run_as_singleton(
    leases: Leases,
    name: str,
    job: Job,
    stop: asyncio.Event,
    *,
    seconds: float = DEFAULT_LEASE_SECONDS,
    holder: str | None = None,
) -> None:
    """Run `job(until)` only while this process holds lease `name`, until `stop`.

    `until` is set when the job must end: on `stop`, or when the lease is lost. A job
    that returns on its own is started again while the lease is held.
    """
    me = holder or holder_name()
    while not stop.is_set():
        token = await _try_acquire(leases, name, me, seconds)
        if token is None:
            await _sleep(stop, seconds / 3)
            continue
        log.info("holding lease %s (token %d)", name, token, extra={"lease": name})
        until = asyncio.Event()
        running: asyncio.Task[None] = asyncio.create_task(job(until))
        try:
            while not stop.is_set() and not running.done():
                await _sleep(stop, seconds / 3, running)
                if stop.is_set() or running.done():
                    break
                if await _try_acquire(leases, name, me, seconds) != token:
                    log.warning("lost lease %s; stopping its job", name, extra={"lease": name})
                    break
        finally:
            until.set()
            with contextlib.suppress(Exception):
                await running
    with contextlib.suppress(Exception):
        await leases.release(name, me)


async def _try_acquire(leases: Leases, name: str, holder: str, seconds: float) -> int | None:
    try:
        return await leases.acquire(name, holder, seconds)
    except Exception as exc:  # the database is unreachable: nobody may assume the lease
        log.warning("lease %s unavailable (%s)", name, exc, extra={"lease": name})
        return None


async def _sleep(
    stop: asyncio.Event, seconds: float, job: asyncio.Task[None] | None = None
) -> None:
    """Sleep `seconds`, waking early on `stop` (or when `job` ends)."""
    waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
    if job is not None:
        waits.add(job)
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            if waiting is not job:
                waiting.cancel()

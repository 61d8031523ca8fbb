"""SQLite for embedded stores: WAL, one writer thread, async-friendly.

sqlite3 connections belong to one thread, and the gRPC server runs on an event loop.
Every statement runs on the database's own single thread, so writes are serialised
in order without locks and the loop never blocks on disk.

Crossing between the loop and that thread costs more CPU than a small query (a future
per call, waking the thread, waking the loop), so under load the crossings are shared:
calls that arrive while the thread is busy wait in one queue and it runs them all, in
order, before it sleeps again; answers that are ready before the loop next looks are
handed over with one wake-up.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
# A call waiting for the thread: what to run, in which context, and whom to answer.
_Job = tuple[Callable[[sqlite3.Connection], Any], contextvars.Context, "asyncio.Future[Any]"]
# A call's outcome: its future, and its result or the exception it raised.
_Done = tuple["asyncio.Future[Any]", Any, BaseException | None]


class SqliteDatabase:
    """One SQLite file in WAL mode, reached through `run(fn)` on its own thread."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._jobs: list[tuple[_Job, asyncio.AbstractEventLoop]] = []
        self._draining = False  # the thread is running (or about to run) `_jobs`
        self._ready: dict[asyncio.AbstractEventLoop, list[_Done]] = {}
        self._executor.submit(self._open).result()

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        self._conn = conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None, "database is closed"
        return fn(self._conn)

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread and wait (for start-up, tests)."""
        return self._executor.submit(self._call, fn).result()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread without blocking the loop, in the
        caller's context (its trace, for outbox rows that record it); calls run in the
        order they were made."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._jobs.append(((fn, contextvars.copy_context(), future), loop))
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._executor.submit(self._drain)
            except BaseException:  # shut down: nothing will run what waits
                with self._lock:
                    self._jobs.clear()
                    self._draining = False
                raise
        return await future

    def _drain(self) -> None:
        """On the database thread: run what waits, oldest first, until nothing does."""
        while True:
            with self._lock:
                jobs, self._jobs = self._jobs, []
                if not jobs:
                    self._draining = False
                    return
            for (fn, context, future), loop in jobs:
                if future.cancelled():  # its caller gave up before it started
                    continue
                try:
                    done: _Done = (future, context.run(self._call, fn), None)
                except BaseException as exc:
                    done = (future, None, exc)
                self._deliver(loop, done)

    def _deliver(self, loop: asyncio.AbstractEventLoop, done: _Done) -> None:
        """Hand an outcome to its loop; one wake-up for all that are ready before it looks."""
        with self._lock:
            ready = self._ready.get(loop)
            if ready is not None:
                ready.append(done)
                return
            self._ready[loop] = [done]
        try:
            loop.call_soon_threadsafe(self._settle, loop)
        except RuntimeError:  # the loop is closed: nobody waits for these
            with self._lock:
                self._ready.pop(loop, None)

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: answer every call whose outcome is ready."""
        with self._lock:
            ready = self._ready.pop(loop, [])
        for future, result, exc in ready:
            if future.done():
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)

    def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)


def transaction(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True
) -> T:
    """Run `fn` inside BEGIN IMMEDIATE ... COMMIT; roll back on any error.

    `durable=False` commits without waiting for the disk (synchronous=NORMAL for this
    commit alone, where the file is FULL): for bookkeeping that a power loss may undo
    without harm, such as outbox rows marked published (they are published again and
    consumers drop the repeat by key). In WAL mode the next durable commit syncs the
    log, and with it this one; a process crash loses neither.
    """
    level = 0
    if not durable:
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
        if level > _NORMAL:
            conn.execute("PRAGMA synchronous=NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
    finally:
        if level > _NORMAL:
            conn.execute(f"PRAGMA synchronous={int(level)}")


_NORMAL = 1  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA

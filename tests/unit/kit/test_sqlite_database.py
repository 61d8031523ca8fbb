"""The kit's SQLite database: calls run on its one thread in order, each answered with
its own result or error in its caller's context, and concurrent calls share crossings."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3

import pytest

from services.kit.sqlite import SqliteDatabase, transaction

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="")


@pytest.fixture
def db(tmp_path):
    database = SqliteDatabase(tmp_path / "kit.sqlite3")
    database.run_sync(lambda conn: conn.execute("CREATE TABLE t (n INTEGER)"))
    yield database
    database.close()


async def test_concurrent_calls_run_in_order_with_their_own_answers_and_context(db):
    async def insert(n: int) -> str:
        who.set(f"caller {n}")

        def write(conn: sqlite3.Connection) -> str:
            if n == 7:
                raise ValueError("seven")
            conn.execute("INSERT INTO t VALUES (?)", (n,))
            return who.get()

        return await db.run(write)

    results = await asyncio.gather(*(insert(n) for n in range(20)), return_exceptions=True)
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [
        f"caller {n}" for n in range(20) if n != 7
    ]
    stored = await db.run(
        lambda conn: [r[0] for r in conn.execute("SELECT n FROM t ORDER BY rowid")]
    )
    assert stored == [n for n in range(20) if n != 7]


async def test_calls_made_while_the_thread_is_busy_share_one_crossing(db, monkeypatch):
    submitted = 0
    submit = db._executor.submit

    def counted(*args, **kwargs):
        nonlocal submitted
        submitted += 1
        return submit(*args, **kwargs)

    monkeypatch.setattr(db._executor, "submit", counted)
    results = await asyncio.gather(*(db.run(lambda conn, n=n: n) for n in range(50)))
    assert results == list(range(50))
    assert 1 <= submitted < 50


async def test_a_call_cancelled_before_it_starts_does_not_run(db):
    started = asyncio.Event()
    release = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def hold(conn: sqlite3.Connection) -> None:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(asyncio.shield(release), 5), loop
        ).result()

    holder = asyncio.ensure_future(db.run(hold))
    await started.wait()
    waiting = asyncio.ensure_future(db.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)")))
    await asyncio.sleep(0)
    waiting.cancel()
    release.set_result(None)
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await db.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 0


@pytest.mark.parametrize("fails", [False, True])
async def test_a_commit_that_need_not_be_durable_skips_the_sync_and_only_that_one(db, fails):
    """synchronous=NORMAL for that commit alone: the file's FULL is back afterwards,
    whether the transaction committed or rolled back."""
    levels: list[int] = []

    def write(conn: sqlite3.Connection) -> None:
        levels.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("INSERT INTO t VALUES (1)")
        if fails:
            raise ValueError("refused")

    def durable_and_not(conn: sqlite3.Connection) -> int:
        with contextlib.suppress(ValueError):
            transaction(conn, write, durable=False)
        with contextlib.suppress(ValueError):
            transaction(conn, write)
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]

    stored = await db.run(durable_and_not)
    assert levels == [1, 2]  # NORMAL, then the file's FULL again
    assert stored == (0 if fails else 2)
    assert await db.run(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == 2

"""The embedded bus: a durable log in one SQLite file, with Redis-style consumer groups.

For `make run`, unit tests and single-machine installs, where running Redis is a burden.
Every call is one transaction on the database thread (WAL, synchronous=FULL), so an id
returned by `publish` is on disk, and a reopened file has the same entries, groups and
pending entries. Several processes may share the file: SQLite serialises the writers and
`read` polls every 50 ms for entries that another process appended.

An entry id `<ms>-<seq>` is stored as the integer `ms * 1_000_000 + seq`, so ids order by
one indexed column; a sequence overflowing within one millisecond rolls into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from services.kit.bus.base import BusMessage, Delivery, NoSuchGroup, entry_id_key
from services.kit.sqlite import SqliteDatabase, transaction

_SEQ = 1_000_000
_POLL_S = 0.05

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_streams (
    name      TEXT PRIMARY KEY,
    last_pos  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bus_entries (
    stream    TEXT NOT NULL,
    pos       INTEGER NOT NULL,
    type      TEXT NOT NULL,
    key       TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    "offset"  INTEGER NOT NULL,
    payload   BLOB NOT NULL,
    headers   TEXT NOT NULL,
    PRIMARY KEY (stream, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_groups (
    stream          TEXT NOT NULL,
    name            TEXT NOT NULL,
    last_delivered  INTEGER NOT NULL,
    PRIMARY KEY (stream, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_pending (
    stream          TEXT NOT NULL,
    grp             TEXT NOT NULL,
    pos             INTEGER NOT NULL,
    consumer        TEXT NOT NULL,
    delivery_count  INTEGER NOT NULL,
    delivered_ms    INTEGER NOT NULL,
    PRIMARY KEY (stream, grp, pos)
) WITHOUT ROWID;
"""


def _now_ms() -> int:
    # Wall clock, not monotonic: idle times must mean the same in every process.
    return time.time_ns() // 1_000_000


def _to_pos(entry_id: str) -> int:
    ms, seq = entry_id_key(entry_id)
    if seq >= _SEQ:
        raise ValueError(f"sequence too large for the local bus: {entry_id!r}")
    return ms * _SEQ + seq


def _to_id(pos: int) -> str:
    return f"{pos // _SEQ}-{pos % _SEQ}"


def _message(row: sqlite3.Row) -> BusMessage:
    return BusMessage(
        type=row["type"],
        key=row["key"],
        tenant=row["tenant"],
        offset=row["offset"],
        payload=bytes(row["payload"]),
        headers=json.loads(row["headers"]),
    )


def _require_group(conn: sqlite3.Connection, stream: str, group: str) -> int:
    row = conn.execute(
        "SELECT last_delivered FROM bus_groups WHERE stream = ? AND name = ?", (stream, group)
    ).fetchone()
    if row is None:
        raise NoSuchGroup(f"no consumer group {group!r} on stream {stream!r}")
    return int(row["last_delivered"])


def _last_pos(conn: sqlite3.Connection, stream: str) -> int:
    row = conn.execute("SELECT last_pos FROM bus_streams WHERE name = ?", (stream,)).fetchone()
    return int(row["last_pos"]) if row else 0


def _if_any(
    conn: sqlite3.Connection,
    probe: Callable[[sqlite3.Connection], bool],
    write: Callable[[sqlite3.Connection], list[Delivery]],
) -> list[Delivery]:
    """Run `write` in a write transaction only if a plain read finds work.

    Idle consumers poll often; probing first keeps them off the file's single write lock.
    """
    if not probe(conn):
        return []
    return transaction(conn, write)


class LocalLogBus:
    """`Bus` on a SQLite file; `path` is created if missing and reopened as it was."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = SqliteDatabase(self.path, synchronous="FULL")
        self._db.run_sync(lambda conn: conn.executescript(SCHEMA))
        # Publishes through this object wake its readers at once; others are seen by polling.
        # An Event per publish, not a Condition: a reader cancelled twice while waiting
        # on a Condition could leave its lock released and turn the cancel into an error.
        self._published = asyncio.Event()
        self._version = 0

    async def publish(self, stream: str, message: BusMessage) -> str:
        return (await self.publish_many(stream, [message]))[0]

    async def publish_many(self, stream: str, messages: Sequence[BusMessage]) -> list[str]:
        """All messages in one transaction: one fsync for the batch, order kept."""
        if not messages:
            return []

        def write(conn: sqlite3.Connection) -> list[int]:
            positions = []
            pos = _last_pos(conn, stream)
            for message in messages:
                pos = max(_now_ms() * _SEQ, pos + 1)
                headers = json.dumps(dict(message.headers), ensure_ascii=False, sort_keys=True)
                conn.execute(
                    'INSERT INTO bus_entries (stream, pos, type, key, tenant, "offset", payload, '
                    "headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        stream,
                        pos,
                        message.type,
                        message.key,
                        message.tenant,
                        message.offset,
                        message.payload,
                        headers,
                    ),
                )
                positions.append(pos)
            conn.execute(
                "INSERT INTO bus_streams (name, last_pos) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_pos = excluded.last_pos",
                (stream, pos),
            )
            return positions

        positions = await self._db.run(lambda conn: transaction(conn, write))
        self._version += 1
        published, self._published = self._published, asyncio.Event()
        published.set()  # wakes the readers waiting on it; later ones wait on the new one
        return [_to_id(pos) for pos in positions]

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        def write(conn: sqlite3.Connection) -> None:
            last = _last_pos(conn, stream)
            if last == 0:
                # Like XGROUP CREATE ... MKSTREAM: the stream exists from now on.
                conn.execute(
                    "INSERT OR IGNORE INTO bus_streams (name, last_pos) VALUES (?, 0)", (stream,)
                )
            begin = last if start == "$" else _to_pos(start)
            conn.execute(
                "INSERT OR IGNORE INTO bus_groups (stream, name, last_delivered) VALUES (?, ?, ?)",
                (stream, group, begin),
            )

        await self._db.run(lambda conn: transaction(conn, write))

    async def read(
        self, stream: str, group: str, consumer: str, count: int = 10, block_ms: int = 0
    ) -> list[Delivery]:
        if count < 1:
            raise ValueError("count must be at least 1")

        def has_new(conn: sqlite3.Connection) -> bool:
            last = _require_group(conn, stream, group)
            return (
                conn.execute(
                    "SELECT 1 FROM bus_entries WHERE stream = ? AND pos > ? LIMIT 1",
                    (stream, last),
                ).fetchone()
                is not None
            )

        def take(conn: sqlite3.Connection) -> list[Delivery]:
            last = _require_group(conn, stream, group)
            rows = conn.execute(
                'SELECT e.pos, e.type, e.key, e.tenant, e."offset", e.payload, e.headers '
                "FROM bus_entries e WHERE e.stream = ? AND e.pos > ? ORDER BY e.pos LIMIT ?",
                (stream, last, count),
            ).fetchall()
            if not rows:
                return []
            now = _now_ms()
            conn.executemany(
                "INSERT OR REPLACE INTO bus_pending "
                "(stream, grp, pos, consumer, delivery_count, delivered_ms) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                [(stream, group, row["pos"], consumer, now) for row in rows],
            )
            conn.execute(
                "UPDATE bus_groups SET last_delivered = ? WHERE stream = ? AND name = ?",
                (rows[-1]["pos"], stream, group),
            )
            return [Delivery(_to_id(row["pos"]), _message(row), 1) for row in rows]

        deadline = time.monotonic() + max(block_ms, 0) / 1000
        while True:
            seen = self._version
            deliveries = await self._db.run(lambda conn: _if_any(conn, has_new, take))
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            await self._wait_for_publish(seen, min(_POLL_S, remaining))

    async def _wait_for_publish(self, seen: int, timeout_s: float) -> None:
        """Sleep until this process publishes again (version moves past `seen`) or timeout."""
        if self._version != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._published.wait(), timeout_s)

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        positions = [(stream, group, _to_pos(i)) for i in ids]
        if not positions:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            done = 0
            for params in positions:
                done += conn.execute(
                    "DELETE FROM bus_pending WHERE stream = ? AND grp = ? AND pos = ?", params
                ).rowcount
            return done

        return await self._db.run(lambda conn: transaction(conn, write))

    async def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 10
    ) -> list[Delivery]:
        if count < 1:
            raise ValueError("count must be at least 1")

        def write(conn: sqlite3.Connection) -> list[Delivery]:
            _require_group(conn, stream, group)
            now = _now_ms()
            rows = conn.execute(
                "SELECT p.pos AS ppos, p.delivery_count, "
                'e.pos, e.type, e.key, e.tenant, e."offset", e.payload, e.headers '
                "FROM bus_pending p LEFT JOIN bus_entries e "
                "ON e.stream = p.stream AND e.pos = p.pos "
                "WHERE p.stream = ? AND p.grp = ? AND p.delivered_ms <= ? "
                "ORDER BY p.pos LIMIT ?",
                (stream, group, now - min_idle_ms, count),
            ).fetchall()
            claimed: list[Delivery] = []
            for row in rows:
                key = (stream, group, row["ppos"])
                if row["pos"] is None:
                    # The entry is gone (as XAUTOCLAIM does, forget it rather than loop).
                    conn.execute(
                        "DELETE FROM bus_pending WHERE stream = ? AND grp = ? AND pos = ?", key
                    )
                    continue
                conn.execute(
                    "UPDATE bus_pending SET consumer = ?, delivery_count = delivery_count + 1, "
                    "delivered_ms = ? WHERE stream = ? AND grp = ? AND pos = ?",
                    (consumer, now, *key),
                )
                claimed.append(
                    Delivery(_to_id(row["pos"]), _message(row), row["delivery_count"] + 1)
                )
            return claimed

        def has_stale(conn: sqlite3.Connection) -> bool:
            _require_group(conn, stream, group)
            return (
                conn.execute(
                    "SELECT 1 FROM bus_pending WHERE stream = ? AND grp = ? AND delivered_ms <= ? "
                    "LIMIT 1",
                    (stream, group, _now_ms() - min_idle_ms),
                ).fetchone()
                is not None
            )

        return await self._db.run(lambda conn: _if_any(conn, has_stale, write))

    async def trim(self, stream: str, max_len: int) -> int:
        if max_len < 0:
            raise ValueError("max_len must not be negative")

        def write(conn: sqlite3.Connection) -> int:
            if max_len == 0:
                cutoff = _last_pos(conn, stream) + 1
            else:
                row = conn.execute(
                    "SELECT pos FROM bus_entries WHERE stream = ? "
                    "ORDER BY pos DESC LIMIT 1 OFFSET ?",
                    (stream, max_len - 1),
                ).fetchone()
                if row is None:
                    return 0
                cutoff = int(row["pos"])
            # The oldest entry any group still needs: pending, or after its last delivery.
            for group in conn.execute(
                "SELECT name, last_delivered FROM bus_groups WHERE stream = ?", (stream,)
            ).fetchall():
                cutoff = min(cutoff, int(group["last_delivered"]) + 1)
                oldest = conn.execute(
                    "SELECT MIN(pos) AS pos FROM bus_pending WHERE stream = ? AND grp = ?",
                    (stream, group["name"]),
                ).fetchone()
                if oldest["pos"] is not None:
                    cutoff = min(cutoff, int(oldest["pos"]))
            return conn.execute(
                "DELETE FROM bus_entries WHERE stream = ? AND pos < ?", (stream, cutoff)
            ).rowcount

        return await self._db.run(lambda conn: transaction(conn, write))

    async def length(self, stream: str) -> int:
        def query(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) AS n FROM bus_entries WHERE stream = ?", (stream,)
            ).fetchone()
            return int(row["n"])

        return await self._db.run(query)

    async def close(self) -> None:
        await asyncio.to_thread(self._db.close)

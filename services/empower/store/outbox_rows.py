"""The outbox table points and notices write their facts into (ADR 6), on both backends.

A fact is inserted in the transaction of the change it reports; the relay reads the
unpublished rows in sequence order, publishes them and marks them. `seq` is the row's
place in its table, carried as the message's offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.empower.domain.facts import Fact
from services.empower.domain.people_model import to_us
from services.kit.bus import BusMessage


def sqlite_schema(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    type          TEXT NOT NULL,
    key           TEXT NOT NULL,
    payload       BLOB NOT NULL,
    create_us     INTEGER NOT NULL,
    published_us  INTEGER
);
CREATE INDEX IF NOT EXISTS {table}_unpublished ON {table} (seq) WHERE published_us IS NULL;
"""


def postgres_schema(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS {table} (
            seq           bigserial PRIMARY KEY,
            tenant        text COLLATE "C" NOT NULL,
            type          text NOT NULL,
            key           text NOT NULL,
            payload       bytea NOT NULL,
            create_us     bigint NOT NULL,
            published_us  bigint)""",
        f"CREATE INDEX IF NOT EXISTS {table}_unpublished ON {table} (seq) "
        "WHERE published_us IS NULL",
    )


def insert(table: str) -> str:
    return f"INSERT INTO {table} (tenant, type, key, payload, create_us) VALUES (?, ?, ?, ?, ?)"


def values(fact: Fact) -> tuple[object, ...]:
    return (fact.tenant, fact.type, fact.key, fact.payload, to_us(fact.time))


def unpublished(table: str) -> str:
    return (
        f"SELECT seq, tenant, type, key, payload FROM {table} "
        "WHERE published_us IS NULL ORDER BY seq LIMIT ?"
    )


def mark(table: str, count: int) -> str:
    return f"UPDATE {table} SET published_us = ? WHERE seq IN ({', '.join('?' * count)})"


def to_message(row: Mapping[str, Any]) -> BusMessage:
    return BusMessage(
        type=row["type"],
        key=row["key"],
        tenant=row["tenant"],
        offset=int(row["seq"]),
        payload=bytes(row["payload"]),
    )

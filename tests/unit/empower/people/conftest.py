"""The people registry and audit log on both stores, plus what an attacker could do.

Every test that takes `backend` runs twice: on the embedded SQLite file and on
PostgreSQL (a schema of the test's own in the session's database, see
tests/conftest.py). `backend.dump()` is everything an attacker reading the disk or a
backup would see; `backend.tamper(...)` changes rows behind the application's back,
with the append-only triggers switched off, as someone with disk access could.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from services.empower.domain.audit import AuditLog
from services.empower.domain.people import PeopleRegistry
from services.empower.domain.people_model import NewPerson
from services.empower.store.people_postgres import PostgresPeopleStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.kit import gb11643
from services.kit.principal import Principal
from services.kit.sealing import Sealer
from tests.conftest import TOWN, XIANGYANG, XINGMING

DISTRICT = "sh/jiading"
# Fixed keys: this module may be imported twice (by pytest and by tests), and both
# copies must seal alike.
SEALER = Sealer({"k1": bytes(range(32))}, "k1", bytes(range(32, 64)))


def caller(tenant: str, *scopes: str, subject: str = "users/officer", app: str = "") -> Principal:
    return Principal(subject=subject, tenant=tenant, kind="user", scopes=frozenset(scopes), app=app)


def id_number(birth: str = "19520314", sequence: int = 123, region: str = "310114") -> str:
    """A valid GB 11643 number; an odd sequence is a man, an even one a woman."""
    first17 = f"{region}{birth}{sequence:03d}"
    return gb11643.with_check_character(first17)


def phone(n: int) -> str:
    """A distinct mobile number per n, with digits that do not repeat much."""
    return f"139{(n * 7_919_113 + 52_341_877) % 10**8:08d}"


def new_person(n: int, **overrides: Any) -> NewPerson:
    values: dict[str, Any] = {
        "name": f"Zhou Meilan{n}",
        "id_number": id_number(sequence=n),
        "phone": phone(n),
        "address": f"{n} Riverside Lane",
    }
    values.update(overrides)
    return NewPerson(**values)


def _sqlite_dump(path: Path) -> str:
    """The raw bytes of the file and its write-ahead log, then an SQL dump."""
    raw = b""
    for suffix in ("", "-wal"):
        part = Path(str(path) + suffix)
        if part.exists():
            raw += part.read_bytes()
    conn = sqlite3.connect(path)
    try:
        dumped = "\n".join(conn.iterdump())
    finally:
        conn.close()
    return raw.decode("latin-1") + "\n" + dumped


def _pg_dump(dsn: str, schema: str) -> str:
    dumped = subprocess.run(
        ["pg_dump", "--data-only", "--schema", schema, "--dbname", dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "COPY" in dumped and "people" in dumped
    return dumped


@dataclass
class Backend:
    name: str
    store: Any
    path: Path | None = None
    dsn: str = ""
    schema: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    async def dump(self) -> str:
        """Every stored byte an attacker could read, as text."""
        if self.path is not None:
            return await asyncio.to_thread(_sqlite_dump, self.path)
        texts: list[str] = []
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (self.schema,),
            )
            tables = [r[0] for r in await cur.fetchall()]
            assert {"people", "people_audit", "people_audit_head"} <= set(tables)
            for table in tables:
                cur = await conn.execute(
                    sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))
                )
                texts.extend(r[0] for r in await cur.fetchall())
        dumped = await asyncio.to_thread(_pg_dump, self.dsn, self.schema)
        return "\n".join(texts) + "\n" + dumped

    async def tamper(self, statement: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement past the application (SQLite `?` or PostgreSQL `%s` marks).

        The append-only triggers are dropped or disabled first, as an attacker with
        the file or a superuser login would; returns the rows changed.
        """
        if self.path is not None:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("DROP TRIGGER IF EXISTS people_audit_no_update")
                conn.execute("DROP TRIGGER IF EXISTS people_audit_no_delete")
                return conn.execute(statement.replace("%s", "?"), params).rowcount
            finally:
                conn.close()
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute("ALTER TABLE people_audit DISABLE TRIGGER USER")
            try:
                cur = await conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
                return cur.rowcount
            finally:
                await conn.execute("ALTER TABLE people_audit ENABLE TRIGGER USER")

    async def rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read rows directly, as the schema owner (no row-level security)."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                return conn.execute(statement.replace("%s", "?"), params).fetchall()
            finally:
                conn.close()
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            cur = await conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return await cur.fetchall()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        # Only PostgreSQL runs need the server: look the DSN fixture up lazily.
        dsn = request.getfixturevalue("postgis_test_dsn")
        schema = re.search(r"search_path=(\w+)", dsn)
        assert schema is not None
        store = await PostgresPeopleStore.open(dsn, max_connections=8)
        result = Backend("postgres", store, dsn=dsn, schema=schema.group(1))
    else:
        path = tmp_path / "people.sqlite3"
        result = Backend("sqlite", SqlitePeopleStore(path), path=path)
    yield result
    closed = result.store.close()
    if inspect.isawaitable(closed):
        await closed


@pytest.fixture
def audit(backend: Backend) -> AuditLog:
    return AuditLog(backend.store)


@pytest.fixture
def registry(backend: Backend, audit: AuditLog) -> PeopleRegistry:
    return PeopleRegistry(backend.store, audit, SEALER)


__all__ = [
    "DISTRICT",
    "TOWN",
    "XIANGYANG",
    "XINGMING",
    "caller",
    "id_number",
    "new_person",
    "phone",
]

"""The identity directory on both stores, with a clock the tests move.

Every test that takes `directory` runs on the embedded SQLite file and on
PostgreSQL (a schema of the test's own, see tests/conftest.py) with row-level
security in force. Password hashing is real argon2id with cheap parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from services.empower.domain.audit import AuditLog
from services.empower.domain.identity import IdentityDirectory
from services.empower.domain.model import Level, User
from services.empower.domain.roles import scopes_for_roles
from services.empower.store.identity_postgres import PostgresIdentityStore
from services.empower.store.identity_sqlite import SqliteIdentityStore
from services.empower.store.people_postgres import PostgresPeopleStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.kit.principal import Principal

CITY = "sh"
DISTRICT = "sh/jiading"
TOWN = "sh/jiading/anting"
XINGMING = "sh/jiading/anting/xingming"
XIANGYANG = "sh/jiading/anting/xiangyang"
GRID = "sh/jiading/anting/xingming/g01"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    """Real argon2id, with parameters small enough for a fast suite."""
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


def bootstrap() -> Principal:
    """The platform itself, which alone may create a root city."""
    return Principal(
        subject="services/bootstrap",
        tenant=CITY,
        kind="service",
        scopes=frozenset({"tenants:write"}),
    )


def staff(tenant: str, *roles: str, subject: str = "users/admin") -> Principal:
    """A signed-in user of `tenant` holding exactly the scopes of `roles`."""
    return Principal(
        subject=subject, tenant=tenant, kind="user", roles=roles, scopes=scopes_for_roles(roles)
    )


async def open_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    if backend == "postgres":
        # Only PostgreSQL runs need the server: look the DSN fixture up lazily.
        return await PostgresIdentityStore.open(request.getfixturevalue("postgis_test_dsn"))
    return SqliteIdentityStore(tmp_path / "identity.sqlite3", synchronous="OFF")


async def close_store(store) -> None:
    closed = store.close()
    if inspect.isawaitable(closed):
        await closed


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[object]:
    opened = await open_store(backend, request, tmp_path)
    yield opened
    await close_store(opened)


@pytest.fixture
async def audit_log(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[AuditLog]:
    """The audit chain administrative actions go to, on the same backend."""
    people: SqlitePeopleStore | PostgresPeopleStore
    if backend == "postgres":
        people = await PostgresPeopleStore.open(request.getfixturevalue("postgis_test_dsn"))
    else:
        people = SqlitePeopleStore(tmp_path / "people.sqlite3")
    yield AuditLog(people, clock=clock)
    await close_store(people)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def directory(store, clock: Clock, audit_log: AuditLog) -> IdentityDirectory:
    return IdentityDirectory(store, clock=clock, hasher=cheap_hasher(), audit=audit_log)


async def build_tree(directory: IdentityDirectory) -> None:
    """sh > jiading > anting > {xingming > g01, xiangyang}."""
    root = bootstrap()
    await directory.create_tenant(root, "", "sh", "Shanghai", Level.CITY, "310000")
    await directory.create_tenant(root, CITY, "jiading", "Jiading", Level.DISTRICT, "310114")
    await directory.create_tenant(root, DISTRICT, "anting", "Anting", Level.TOWN, "310114102")
    await directory.create_tenant(root, TOWN, "xingming", "Xingming", Level.VILLAGE, "310114102201")
    await directory.create_tenant(
        root, TOWN, "xiangyang", "Xiangyang", Level.VILLAGE, "310114102202"
    )
    await directory.create_tenant(root, XINGMING, "g01", "Grid 1", Level.GRID, "xingming-g01")


@pytest.fixture
async def tree(directory: IdentityDirectory) -> IdentityDirectory:
    await build_tree(directory)
    return directory


async def add_user(
    directory: IdentityDirectory,
    tenant: str,
    username: str,
    *roles: str,
    password: str | None = PASSWORD,
    kind: str = "staff",
) -> User:
    """A user created by a district admin-like principal holding every scope it grants."""
    wanted = roles or ("grid_worker",)
    creator = Principal(
        subject="services/bootstrap",
        tenant=CITY,
        kind="service",
        scopes=scopes_for_roles(wanted) | {"users:write"},
    )
    return await directory.create_user(
        creator, tenant, username, username.title(), kind, wanted, password
    )

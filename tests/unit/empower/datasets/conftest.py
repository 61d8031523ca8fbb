"""The datasets on both stores: every test taking `desk` runs on SQLite and PostgreSQL.

Addresses come from a fixed address list (`StaticAddresses`, the same port the
map-backed source fills); `test_map_addresses.py` reads the real map service.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.empower.domain.audit import AuditLog
from services.empower.domain.datasets.addresses import AddressBook
from services.empower.domain.datasets.model import (
    Classification,
    Dataset,
    DatasetField,
    FieldType,
)
from services.empower.domain.datasets.service import DatasetDesk
from services.empower.domain.model import Level, Tenant
from services.empower.store.datasets_postgres import PostgresDatasetStore
from services.empower.store.datasets_sqlite import SqliteDatasetStore
from services.empower.store.identity_postgres import PostgresIdentityStore
from services.empower.store.identity_sqlite import SqliteIdentityStore
from services.empower.store.people_postgres import PostgresPeopleStore
from services.empower.store.people_sqlite import SqlitePeopleStore
from services.kit import gb11643
from services.kit.principal import Principal
from services.kit.sealing import Sealer
from tests.conftest import TOWN, XIANGYANG, XINGMING

DISTRICT = "sh/jiading"
# The nodes the tests name, as the identity store holds them.
TREE = {
    "sh": Level.CITY,
    DISTRICT: Level.DISTRICT,
    TOWN: Level.TOWN,
    XINGMING: Level.VILLAGE,
    XIANGYANG: Level.VILLAGE,
}
SEALER = Sealer({"k1": bytes(range(32))}, "k1", bytes(range(32, 64)))
BOOK = AddressBook(
    {
        **{f"xingming-b{i:04d}": XINGMING for i in range(1, 101)},
        **{f"xiangyang-b{i:04d}": XIANGYANG for i in range(1, 101)},
    }
)
RESIDENTS = Dataset(
    tenant="",
    dataset_id="",
    display_name="Residents register",
    description="Households registered in the district, cleaned by the data centre.",
    classification=Classification.INTERNAL,
    fields=(
        DatasetField("id_number", FieldType.ID_NUMBER, required=True),
        DatasetField("name", FieldType.PERSON_NAME, required=True),
        DatasetField("phone", FieldType.MOBILE),
        DatasetField("address", FieldType.ADDRESS, required=True),
        DatasetField("birth_date", FieldType.DATE),
        DatasetField("lives_alone", FieldType.BOOLEAN),
        DatasetField("household_size", FieldType.INTEGER),
    ),
    key_field="id_number",
    area="elderly care",
)
HEADER = "id_number,name,phone,address,birth_date,lives_alone,household_size"


class StaticAddresses:
    """An address list given up front (the map-backed one asks the map service)."""

    def __init__(self, book: AddressBook = BOOK) -> None:
        self.book = book
        self.asked: list[str] = []

    async def address_book(self, tenant: str) -> AddressBook:
        self.asked.append(tenant)
        return self.book


def caller(tenant: str, *scopes: str, subject: str = "users/officer") -> Principal:
    return Principal(subject=subject, tenant=tenant, kind="user", scopes=frozenset(scopes))


def publisher() -> Principal:
    return caller(DISTRICT, "datasets:publish", "datasets:read", subject="users/district-data")


def id_number(n: int, birth: str = "19520314") -> str:
    return gb11643.with_check_character(f"310114{birth}{n % 1000:03d}")


def resident_line(n: int, village: str = "xingming", **overrides: str) -> str:
    values = {
        "id_number": id_number(n),
        "name": f"Zhou Meilan{n}",
        "phone": f"139 {n:04d} {n:04d}",
        "address": f"{village} b{n % 100 + 1}",
        "birth_date": "1952-03-14",
        "lives_alone": "yes" if n % 2 else "no",
        "household_size": str(1 + n % 4),
    }
    values.update(overrides)
    return ",".join(values[c] for c in HEADER.split(","))


def csv(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


@dataclass
class Backend:
    name: str
    desk: DatasetDesk
    store: Any
    people: Any
    dsn: str = ""
    identity: Any = None  # the tenant tree installations are recorded in


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    dsn = ""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgis_test_dsn")
        assert re.search(r"search_path=(\w+)", dsn)
        store: Any = await PostgresDatasetStore.open(dsn, max_connections=4)
        people: Any = await PostgresPeopleStore.open(dsn, max_connections=4)
        identity: Any = await PostgresIdentityStore.open(dsn)
    else:
        store = SqliteDatasetStore(tmp_path / "datasets.sqlite3")
        people = SqlitePeopleStore(tmp_path / "people.sqlite3")
        identity = SqliteIdentityStore(tmp_path / "identity.sqlite3", synchronous="OFF")
    for path, level in TREE.items():
        await identity.create_tenant(Tenant(path, path, level, "310114", datetime.now(UTC)))
    desk = DatasetDesk(store, StaticAddresses(), AuditLog(people), SEALER)
    yield Backend(request.param, desk, store, people, dsn, identity)
    for closing in (store, people, identity):
        closed = closing.close()
        if inspect.isawaitable(closed):
            await closed


async def published(desk: DatasetDesk, dataset_id: str = "residents", **changes: Any) -> Dataset:
    return await desk.create_dataset(
        publisher(), DISTRICT, dataset_id, replace(RESIDENTS, **changes)
    )


__all__ = ["DISTRICT", "TOWN", "XIANGYANG", "XINGMING"]

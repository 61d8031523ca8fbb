"""The demo village's residents as people of the registry (synthetic data).

Demo seeding is the development stack's business, not the people domain's: it reads
the `residents` layer that `devstack.demo_village` writes and loads it through the
registry's own validation and sealing, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from numpy.typing import NDArray

from services.empower.domain.people import (
    ELDERLY_AGE,
    ID_PREFIX,
    PeopleRegistry,
    id_number_birth_date,
    seal_record,
    validate,
)
from services.empower.domain.people_model import Kind, NewPerson
from services.empower.domain.people_ports import PeopleStore
from services.kit import tenancy
from services.kit.ids import new_id
from services.kit.sealing import Sealer
from services.kit.tenancy import ALL_TENANTS


@dataclass(frozen=True)
class Resident:
    """One row of the demo village's `residents` layer (devstack.demo_village)."""

    resident_id: str
    tenant: str
    building_id: str
    name: str
    id_number: str
    phone: str
    birth_year: int
    lives_alone: bool


def residents_from_columns(
    columns: Mapping[str, Sequence[object] | NDArray[Any]],
) -> list[Resident]:
    """Rows from the residents' columns (`devstack.demo_village.residents_for`)."""
    count = len(columns["resident_id"])
    return [
        Resident(
            resident_id=str(columns["resident_id"][i]),
            tenant=str(columns["tenant"][i]),
            building_id=str(columns["building_id"][i]),
            name=str(columns["name"][i]),
            id_number=str(columns["id_number"][i]),
            phone=str(columns["phone"][i]),
            birth_year=int(str(columns["birth_year"][i])),
            lives_alone=bool(columns["lives_alone"][i]),
        )
        for i in range(count)
    ]


def resident_to_new_person(resident: Resident, today: date) -> NewPerson:
    """Older people living alone become `elderly_alone`, the others `resident`."""
    born = id_number_birth_date(resident.id_number.upper())
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    alone = resident.lives_alone
    return NewPerson(
        name=resident.name,
        id_number=resident.id_number,
        phone=resident.phone,
        kind=Kind.ELDERLY_ALONE if alone and age >= ELDERLY_AGE else Kind.RESIDENT,
        building=resident.building_id,
        tags=("synthetic", "lives_alone") if alone else ("synthetic",),
    )


async def seed_residents(
    target: PeopleRegistry | PeopleStore,
    residents: Iterable[Resident | NewPerson],
    *,
    tenant: str = "",
    sealer: Sealer | None = None,
) -> int:
    """Bulk-load residents in one transaction; returns how many were new.

    Platform work, not a caller's request: no principal, no audit entry. People whose
    ID number their tenant already has are skipped, so seeding twice adds nothing.
    A `Resident` carries its tenant; a `NewPerson` goes to `tenant`. Give a store
    with the `sealer` its registry uses, or the registry itself.
    """
    if isinstance(target, PeopleRegistry):
        store: PeopleStore = target.store
        sealer = target.sealer
    else:
        store = target
        if sealer is None:
            raise ValueError("seeding a store directly needs the registry's sealer")
    now = datetime.now(UTC)
    records = []
    for item in residents:
        if isinstance(item, Resident):
            home = tenancy.validate_path(item.tenant, "tenant")
            new = resident_to_new_person(item, now.date())
        else:
            home = tenancy.validate_path(tenant, "tenant")
            new = item
        records.append(seal_record(sealer, new_id(ID_PREFIX), home, validate(new), now))
    return await store.insert_people(ALL_TENANTS, records, skip_existing=True)

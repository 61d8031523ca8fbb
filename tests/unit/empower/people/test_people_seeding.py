"""Loading the demo village's residents: fast, in one go, and only once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from devstack import demo_village
from devstack.demo_people import Resident, residents_from_columns, seed_residents
from devstack.demo_village import VILLAGE_TENANTS
from services.empower.domain.people import id_number_birth_date, seal_record, validate
from services.empower.domain.people_model import Kind, NewPerson
from services.kit.errors import InvalidArgument
from tests.unit.empower.people.conftest import SEALER, TOWN, XINGMING, caller, new_person


@pytest.fixture(scope="module")
def residents(demo_gpkg) -> list[Resident]:
    return residents_from_columns(demo_village.residents_for(demo_gpkg))


async def test_the_demo_residents_load_in_one_transaction_and_only_once(registry, residents):
    assert len(residents) > 600 and {r.tenant for r in residents} == set(VILLAGE_TENANTS)
    started = time.perf_counter()
    assert await seed_residents(registry, residents) == len(residents)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"seeding {len(residents)} people took {elapsed:.2f} s"
    assert await seed_residents(registry, residents) == 0  # the same ID numbers: skipped

    town = caller(TOWN, "people:read")
    seen, token = 0, ""
    kinds: Counter[Kind] = Counter()
    while True:
        page = await registry.list_people(town, TOWN, page_size=1000, page_token=token)
        seen += len(page.people)
        kinds.update(p.kind for p in page.people)
        token = page.next_page_token
        if not token:
            break
    assert seen == len(residents)
    today = datetime.now(UTC).date()
    elderly_alone = sum(
        1
        for r in residents
        if r.lives_alone and (today - id_number_birth_date(r.id_number)).days >= 60 * 366
    )
    assert elderly_alone > 0
    assert elderly_alone <= kinds[Kind.ELDERLY_ALONE] <= sum(r.lives_alone for r in residents)


async def test_a_seeded_resident_is_found_by_id_number_and_reads_back_exactly(registry, residents):
    await seed_residents(registry, residents)
    resident = next(r for r in residents if r.tenant == XINGMING and r.lives_alone)
    reader = caller(XINGMING, "people:read", "people:read_sensitive")
    page = await registry.list_people(
        reader, XINGMING, f'id_number = "{resident.id_number}"', purpose="demo check"
    )
    [person] = page.people
    assert (person.name, person.id_number, person.phone, person.building) == (
        resident.name,
        resident.id_number,
        resident.phone,
        resident.building_id,
    )
    assert person.birth_date.year == resident.birth_year
    assert "synthetic" in person.tags and "lives_alone" in person.tags


async def test_bulk_insert_alone_is_well_under_a_second(backend, residents):
    """The store's part, crypto done beforehand: one transaction for ~700 rows."""
    now = datetime.now(UTC)
    records = [
        seal_record(SEALER, f"pe_{i:05d}", r.tenant, validate(new_person(i)), now)
        for i, r in enumerate(residents)
    ]
    started = time.perf_counter()
    assert await backend.store.insert_people("*", records, skip_existing=True) == len(records)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{backend.name}: {len(records)} rows took {elapsed:.2f} s"


async def test_new_people_can_be_seeded_into_a_store_with_the_registrys_sealer(backend, registry):
    people = [new_person(n) for n in range(3)]
    assert await seed_residents(backend.store, people, tenant=XINGMING, sealer=SEALER) == 3
    found = await registry.list_people(caller(XINGMING, "people:read"), XINGMING)
    assert len(found.people) == 3
    with pytest.raises(ValueError, match="sealer"):
        await seed_residents(backend.store, people, tenant=XINGMING)
    with pytest.raises(InvalidArgument) as info:
        await seed_residents(registry, [NewPerson(name="Gu", id_number=people[0].id_number)])
    assert info.value.violations[0].field == "tenant"  # a NewPerson needs `tenant`

"""The registry on both stores: scopes, tenancy, masking, lookups, audited reads."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from services.empower.domain.audit import AuditLog
from services.empower.domain.people import PeopleRegistry, open_record
from services.empower.domain.people_model import AuditEntry, Kind, PersonChanges, person_name
from services.kit.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.masking import SENSITIVE_SCOPE
from tests.unit.empower.people.conftest import (
    DISTRICT,
    TOWN,
    XIANGYANG,
    XINGMING,
    caller,
    id_number,
    new_person,
    phone,
)

WRITER = caller(XINGMING, "people:write", "people:read", subject="users/clerk")
READER = caller(XINGMING, "people:read", subject="users/helper")
SENSITIVE = caller(
    XINGMING, "people:read", SENSITIVE_SCOPE, subject="users/social-worker", app="apps/eldercare"
)
TOWN_SENSITIVE = caller(TOWN, "people:read", SENSITIVE_SCOPE, subject="users/town-officer")
AUDITOR = caller(DISTRICT, "audit:read", subject="users/auditor")


async def entries(audit: AuditLog) -> list[AuditEntry]:
    return (await audit.list_entries(AUDITOR, DISTRICT, page_size=1000)).entries


async def test_a_created_person_belongs_to_the_parent_and_reads_back_masked(registry, audit):
    created = await registry.create_person(WRITER, XINGMING, new_person(1, kind="elderly_alone"))
    assert created.tenant == XINGMING and created.id.startswith("pe_")
    assert created.masked and created.name == "Z*** M***"  # a write reveals nothing
    got = await registry.get_person(READER, XINGMING, created.id)
    assert got.masked
    assert got.id_number == "310" + "*" * 11 + id_number(sequence=1)[-4:]
    assert got.phone == "139****" + phone(1)[-4:]
    assert (got.kind, got.address, got.gender.value) == (
        Kind.ELDERLY_ALONE,
        "1 Riverside Lane",
        "male",
    )
    assert got.birth_date.isoformat() == "1952-03-14"
    assert await entries(audit) == []  # masked reads leave no audit entry


async def test_scopes_are_required(registry):
    with pytest.raises(PermissionDenied, match="people:write"):
        await registry.create_person(READER, XINGMING, new_person(1))
    person = await registry.create_person(WRITER, XINGMING, new_person(1))
    nobody = caller(XINGMING, subject="users/nobody")
    with pytest.raises(PermissionDenied, match="people:read"):
        await registry.get_person(nobody, XINGMING, person.id)
    with pytest.raises(PermissionDenied):
        await registry.list_people(nobody, XINGMING)
    with pytest.raises(PermissionDenied):
        await registry.delete_person(READER, XINGMING, person.id)


async def test_another_villages_people_are_not_found(registry):
    mine = await registry.create_person(WRITER, XINGMING, new_person(1))
    neighbour = caller(XIANGYANG, "people:read", "people:write")
    with pytest.raises(NotFound):
        await registry.create_person(neighbour, XINGMING, new_person(2))
    for tenant in (XINGMING, XIANGYANG, None):
        with pytest.raises(NotFound):
            await registry.get_person(neighbour, tenant, mine.id)
    with pytest.raises(NotFound):
        await registry.list_people(neighbour, XINGMING)
    with pytest.raises(NotFound):
        await registry.update_person(neighbour, None, mine.id, PersonChanges(address="x"))
    with pytest.raises(NotFound):
        await registry.delete_person(neighbour, None, mine.id)
    # Asked under the wrong village, even the owner's village does not find it.
    with pytest.raises(NotFound):
        await registry.get_person(caller(TOWN, "people:read"), XIANGYANG, mine.id)
    # The town sees its villages, also through the wildcard.
    town = caller(TOWN, "people:read")
    assert (await registry.get_person(town, None, mine.id)).id == mine.id


async def test_lists_cover_the_subtree_in_id_order_across_pages(registry):
    created = []
    for n in range(5):
        created.append(await registry.create_person(WRITER, XINGMING, new_person(n)))
    other = caller(XIANGYANG, "people:write")
    for n in range(5, 8):
        created.append(await registry.create_person(other, XIANGYANG, new_person(n)))
    town = caller(TOWN, "people:read")
    seen, token, tokens = [], "", []
    while True:
        page = await registry.list_people(town, TOWN, page_size=3, page_token=token)
        assert len(page.people) <= 3 and all(p.masked for p in page.people)
        seen.extend(p.id for p in page.people)
        token = page.next_page_token
        if not token:
            break
        tokens.append(token)
    assert len(tokens) == 2
    assert seen == sorted(p.id for p in created)
    village = await registry.list_people(READER, XINGMING, page_size=100)
    assert {p.tenant for p in village.people} == {XINGMING} and len(village.people) == 5
    with pytest.raises(InvalidArgument) as info:
        await registry.list_people(town, TOWN, page_token="not-a-token")
    assert info.value.violations[0].field == "page_token"
    with pytest.raises(InvalidArgument) as info:  # a token of another query
        await registry.list_people(town, TOWN, 'kind = "resident"', 3, tokens[0])
    assert info.value.violations[0].field == "page_token"


async def test_exact_lookups_go_through_the_blind_index(registry):
    number = next(id_number(sequence=s) for s in range(50, 999) if id_number(sequence=s)[-1] == "X")
    target = await registry.create_person(
        WRITER, XINGMING, new_person(7, id_number=number, phone="13800001111", kind="volunteer")
    )
    for n in range(3):
        await registry.create_person(WRITER, XINGMING, new_person(n))
    town = caller(TOWN, "people:read", SENSITIVE_SCOPE)
    for expression in (
        f'id_number = "{number.lower()}"',
        'phone = "+86 138 0000 1111"',
        'kind = "volunteer"',
        f'id_number = "{number}" AND kind = "volunteer"',
    ):
        page = await registry.list_people(town, TOWN, expression, purpose="lookup")
        assert [p.id for p in page.people] == [target.id], expression
    missing = await registry.list_people(town, TOWN, 'phone = "13800001112"', purpose="lookup")
    assert missing.people == []
    both = f'id_number = "{number}" AND kind = "resident"'
    assert (await registry.list_people(town, TOWN, both, purpose="lookup")).people == []
    for bad in ('id_number = "123"', 'phone = "abc"', 'kind = "pet"', 'name = "Zhou"'):
        with pytest.raises(InvalidArgument) as info:
            await registry.list_people(town, TOWN, bad, purpose="lookup")
        assert info.value.violations[0].field == "filter"


async def test_an_id_number_is_registered_once_per_village(registry):
    await registry.create_person(WRITER, XINGMING, new_person(1))
    with pytest.raises(AlreadyExists) as info:
        await registry.create_person(WRITER, XINGMING, new_person(1, phone="13700000000"))
    assert id_number(sequence=1) not in info.value.message
    # The same person may also be registered by the neighbouring village.
    other = caller(XIANGYANG, "people:write")
    assert (await registry.create_person(other, XIANGYANG, new_person(1))).tenant == XIANGYANG


async def test_unmasked_reads_need_a_purpose_and_leave_one_entry_each(registry, audit):
    person = await registry.create_person(WRITER, XINGMING, new_person(1))
    for purpose in ("", "   "):
        with pytest.raises(InvalidArgument) as info:
            await registry.get_person(SENSITIVE, XINGMING, person.id, purpose)
        assert info.value.violations[0].field == "purpose"
        with pytest.raises(InvalidArgument):
            await registry.list_people(SENSITIVE, XINGMING, purpose=purpose)
    assert await entries(audit) == []

    got = await registry.get_person(SENSITIVE, None, person.id, "home visit 2026-11-30")
    assert not got.masked
    assert (got.name, got.id_number, got.phone) == (
        "Zhou Meilan1",
        id_number(sequence=1),
        phone(1),
    )
    [entry] = await entries(audit)
    assert entry.sequence == 1
    assert (entry.subject, entry.app, entry.tenant, entry.purpose) == (
        "users/social-worker",
        "apps/eldercare",
        XINGMING,
        "home visit 2026-11-30",
    )
    assert entry.records == (person_name(XINGMING, person.id),)
    assert entry.fields == ("name", "id_number", "phone")
    assert entry.action == "people.read"


async def test_an_unmasked_list_page_is_one_entry_naming_every_person(registry, audit):
    numbers = {}
    for n in range(4):
        numbers[(await registry.create_person(WRITER, XINGMING, new_person(n))).id] = n
    ids = sorted(numbers)  # pages go by id
    page = await registry.list_people(TOWN_SENSITIVE, TOWN, page_size=3, purpose="care census")
    assert not any(p.masked for p in page.people)
    assert [p.id_number for p in page.people] == [id_number(sequence=numbers[i]) for i in ids[:3]]
    rest = await registry.list_people(
        TOWN_SENSITIVE, TOWN, page_size=3, page_token=page.next_page_token, purpose="care census"
    )
    # A page that shows nobody reveals nothing and leaves no entry.
    await registry.list_people(TOWN_SENSITIVE, TOWN, 'kind = "volunteer"', purpose="census")
    newest, oldest = await entries(audit)
    assert oldest.records == tuple(person_name(XINGMING, i) for i in ids[:3])
    assert newest.records == (person_name(XINGMING, rest.people[0].id),)
    assert (oldest.tenant, oldest.subject) == (TOWN, "users/town-officer")


class FailingAudit:
    """An audit store that cannot write (a full disk, a lost connection)."""

    def __init__(self, store):
        self.store = store

    async def append_audit(self, tenant, make):
        raise DomainError("the audit log is unavailable")


async def test_nothing_unmasked_is_returned_when_the_audit_entry_cannot_be_written(
    backend, registry
):
    person = await registry.create_person(WRITER, XINGMING, new_person(1))
    broken = PeopleRegistry(backend.store, AuditLog(FailingAudit(backend.store)), registry.sealer)
    with pytest.raises(DomainError, match="unavailable"):
        await broken.get_person(SENSITIVE, XINGMING, person.id, "home visit")
    with pytest.raises(DomainError, match="unavailable"):
        await broken.list_people(SENSITIVE, XINGMING, purpose="home visit")
    # Masked reads need no entry and still work.
    assert (await broken.get_person(READER, XINGMING, person.id)).masked


async def test_updates_reseal_and_reindex_and_check_the_etag(registry, audit):
    person = await registry.create_person(WRITER, XINGMING, new_person(1))
    changes = PersonChanges(phone="13611112222", tags=("diabetic",))
    changed = await registry.update_person(WRITER, XINGMING, person.id, changes, person.etag)
    assert changed.masked and changed.phone == "136****2222" and changed.version == 2
    assert changed.tags == ("diabetic",) and changed.create_time == person.create_time
    with pytest.raises(Aborted):
        await registry.update_person(
            WRITER, XINGMING, person.id, PersonChanges(address="x"), person.etag
        )
    old = await registry.list_people(SENSITIVE, XINGMING, f'phone = "{phone(1)}"', purpose="check")
    assert old.people == []
    [found] = (
        await registry.list_people(SENSITIVE, XINGMING, 'phone = "13611112222"', purpose="check")
    ).people
    assert found.id == person.id
    full = await registry.get_person(SENSITIVE, XINGMING, person.id, "check the change")
    assert (full.phone, full.name, full.id_number) == (
        "13611112222",
        "Zhou Meilan1",
        id_number(sequence=1),
    )
    with pytest.raises(InvalidArgument) as info:
        await registry.update_person(WRITER, XINGMING, person.id, PersonChanges(phone="12"))
    assert info.value.violations[0].field == "phone"
    other = await registry.create_person(WRITER, XINGMING, new_person(2))
    with pytest.raises(AlreadyExists):
        await registry.update_person(
            WRITER, XINGMING, other.id, PersonChanges(id_number=id_number(sequence=1))
        )


async def test_deleted_people_are_gone(registry):
    person = await registry.create_person(WRITER, XINGMING, new_person(1))
    await registry.delete_person(WRITER, None, person.id)
    with pytest.raises(NotFound):
        await registry.get_person(READER, XINGMING, person.id)
    with pytest.raises(NotFound):
        await registry.delete_person(WRITER, XINGMING, person.id)


async def test_no_id_number_phone_or_name_is_stored_in_plain_text(backend, registry):
    people = [new_person(n, name=f"Qian Xiuying{n}") for n in range(6)]
    for new in people:
        await registry.create_person(WRITER, XINGMING, new)
    await registry.list_people(SENSITIVE, XINGMING, purpose="dump check")
    dump = await backend.dump()
    assert "Riverside Lane" in dump  # the dump does hold the rows...
    for new in people:
        # ...but not one of these, in any common spelling.
        for secret in (new.id_number, new.id_number[6:], new.phone, new.phone[3:], new.name):
            assert secret not in dump, secret
    assert not re.search(r"310114\d{11}[\dX]", dump)  # no ID number of the region at all
    # Lookups still work without any plain value stored.
    by_id = f'id_number = "{people[3].id_number}"'
    found = await registry.list_people(SENSITIVE, XINGMING, by_id, purpose="dump check")
    assert len(found.people) == 1
    by_phone = f'phone = "{people[4].phone}"'
    found = await registry.list_people(SENSITIVE, XINGMING, by_phone, purpose="dump check")
    assert len(found.people) == 1


async def test_sealed_values_cannot_be_swapped_between_rows(backend, registry):
    a = await registry.create_person(WRITER, XINGMING, new_person(1))
    b = await registry.create_person(WRITER, XINGMING, new_person(2))
    [(b_sealed,)] = await backend.rows("SELECT id_number_sealed FROM people WHERE id = ?", (b.id,))
    changed = await backend.tamper(
        "UPDATE people SET id_number_sealed = ? WHERE id = ?", (b_sealed, a.id)
    )
    assert changed == 1
    with pytest.raises(DomainError, match="does not open") as info:
        await registry.get_person(SENSITIVE, XINGMING, a.id, "home visit")
    assert id_number(sequence=2) not in info.value.message
    # The untouched row still opens.
    record = await backend.store.get_person(XINGMING, b.id)
    assert open_record(registry.sealer, record).id_number == id_number(sequence=2)


CARER = caller(XINGMING, "people:read", subject="users/carer-wang")
OTHER_CARER = caller(XINGMING, "people:read", subject="users/carer-li")


async def test_only_the_assigned_carer_reads_the_person_unmasked_with_a_purpose(registry, audit):
    theirs = await registry.create_person(WRITER, XINGMING, new_person(1, carer=CARER.subject))
    other = await registry.create_person(WRITER, XINGMING, new_person(2))
    assert theirs.masked and theirs.carer == CARER.subject

    # Without a purpose the carer reads like anyone with people:read: masked.
    assert (await registry.get_person(CARER, XINGMING, theirs.id)).masked
    assert (await registry.get_person(OTHER_CARER, XINGMING, theirs.id, "visit")).masked
    assert (await registry.get_person(CARER, XINGMING, other.id, "visit")).masked
    assert await entries(audit) == []

    got = await registry.get_person(CARER, XINGMING, theirs.id, "weekly visit")
    assert not got.masked and (got.name, got.phone) == ("Zhou Meilan1", phone(1))
    page = await registry.list_people(CARER, XINGMING, purpose="weekly round")
    assert {p.id: p.masked for p in page.people} == {theirs.id: False, other.id: True}
    logged = sorted(await entries(audit), key=lambda e: e.sequence)
    assert [(e.subject, e.purpose, e.records) for e in logged] == [
        ("users/carer-wang", "weekly visit", (person_name(XINGMING, theirs.id),)),
        ("users/carer-wang", "weekly round", (person_name(XINGMING, theirs.id),)),
    ]
    # An app never counts as a carer, whatever subject it signs with.
    app = caller(XINGMING, "people:read", subject=CARER.subject, app="apps/x")
    assert (await registry.get_person(replace(app, kind="app"), XINGMING, theirs.id, "x")).masked


async def test_a_carer_is_a_user_and_changes_with_an_update(registry):
    with pytest.raises(InvalidArgument) as info:
        await registry.create_person(WRITER, XINGMING, new_person(1, carer="carer-wang"))
    assert info.value.violations[0].field == "carer"
    person = await registry.create_person(WRITER, XINGMING, new_person(1))
    assert person.carer == ""
    moved = await registry.update_person(
        WRITER, XINGMING, person.id, PersonChanges(carer=OTHER_CARER.subject)
    )
    assert moved.carer == OTHER_CARER.subject
    assert not (await registry.get_person(OTHER_CARER, XINGMING, person.id, "visit")).masked

"""Exact lookups by sealed values cannot recover what masking hides (issue 11, item 1).

A caller with `people:read` alone sees `310***********1855`, the birth year and the
gender. If `filter=id_number = "..."` answered such a caller, each guess would say
yes or no; the check character leaves about one candidate in eleven, so a full ID
number falls in a few dozen requests. The first test runs that attack.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest

from services.empower.domain.lookup_limit import LookupLimit
from services.empower.domain.people import PeopleRegistry
from services.kit import gb11643
from services.kit.errors import InvalidArgument, PermissionDenied, ResourceExhausted
from services.kit.masking import SENSITIVE_SCOPE
from tests.unit.empower.people.conftest import SEALER, XINGMING, caller, new_person

WRITER = caller(XINGMING, "people:write", "people:read", subject="users/clerk")
GRID_WORKER = caller(XINGMING, "people:read", "events:read", subject="users/grid-worker")
SECRETARY = caller(XINGMING, "people:read", SENSITIVE_SCOPE, subject="users/secretary")
AUDITOR = caller("sh/jiading", "audit:read", subject="users/auditor")


def candidates(masked_id: str, birth_year: int, region: str) -> list[str]:
    """Every valid ID number consistent with what a masked copy shows, as the probe built them."""
    head, tail = masked_id[:3], masked_id[-4:]
    assert region.startswith(head)
    found = []
    for month in range(1, 13):
        for day in range(1, calendar.monthrange(birth_year, month)[1] + 1):
            first17 = f"{region}{birth_year}{month:02d}{day:02d}{tail[:3]}"
            if gb11643.check_character(first17) == tail[3]:
                found.append(first17 + tail[3])
    return found


async def test_a_masked_id_number_cannot_be_recovered_through_the_filter(registry):
    secret = new_person(1).id_number
    await registry.create_person(WRITER, XINGMING, new_person(1))
    [seen] = (await registry.list_people(GRID_WORKER, XINGMING)).people
    assert seen.masked and seen.id_number != secret
    guesses = candidates(seen.id_number, seen.birth_date.year, "310114")
    assert secret in guesses and len(guesses) < 60  # the attack needs only this many calls
    recovered, refused = [], 0
    for guess in guesses:
        try:
            page = await registry.list_people(GRID_WORKER, XINGMING, f'id_number = "{guess}"')
        except PermissionDenied as exc:
            assert "people:read_sensitive" in exc.message
            refused += 1
            continue
        recovered += [guess for _ in page.people]
    assert recovered == []
    assert refused == len(guesses)


async def test_a_masked_phone_cannot_be_confirmed_either(registry):
    person = await registry.create_person(WRITER, XINGMING, new_person(2))
    [seen] = (await registry.list_people(GRID_WORKER, XINGMING)).people
    assert seen.phone != new_person(2).phone and "****" in seen.phone
    with pytest.raises(PermissionDenied):
        await registry.list_people(GRID_WORKER, XINGMING, f'phone = "{new_person(2).phone}"')
    # Filters on fields the caller sees anyway still work.
    page = await registry.list_people(GRID_WORKER, XINGMING, 'kind = "resident"')
    assert [p.id for p in page.people] == [person.id]


async def test_a_lookup_needs_a_purpose_and_is_audited_even_without_a_match(registry, audit):
    await registry.create_person(WRITER, XINGMING, new_person(3))
    miss = new_person(4).id_number
    with pytest.raises(InvalidArgument) as info:
        await registry.list_people(SECRETARY, XINGMING, f'id_number = "{miss}"')
    assert info.value.violations[0].field == "purpose"
    page = await registry.list_people(
        SECRETARY, XINGMING, f'id_number = "{miss}"', purpose="checking a paper form"
    )
    assert page.people == []
    hit = await registry.list_people(
        SECRETARY, XINGMING, f'phone = "{new_person(3).phone}"', purpose="returning a call"
    )
    assert len(hit.people) == 1 and not hit.people[0].masked
    entries = (await audit.list_entries(AUDITOR, "sh/jiading")).entries
    by_purpose = {e.purpose: e for e in entries}
    empty = by_purpose["checking a paper form"]
    assert (empty.action, empty.records, empty.fields) == ("people.lookup", (), ("id_number",))
    assert empty.subject == SECRETARY.subject
    # The entry names the field looked up, never the value guessed.
    assert miss not in repr(empty)
    found = by_purpose["returning a call"]
    assert found.action == "people.lookup" and found.records == (hit.people[0].resource_name,)
    assert {"name", "id_number", "phone"} == set(found.fields)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_lookups_are_rate_limited_per_caller(backend, audit):
    clock = Clock()
    registry = PeopleRegistry(
        backend.store, audit, SEALER, clock=clock, lookup_limit=LookupLimit(clock, lookups=5)
    )
    await registry.create_person(WRITER, XINGMING, new_person(5))
    query = f'id_number = "{new_person(5).id_number}"'
    for _ in range(5):
        await registry.list_people(SECRETARY, XINGMING, query, purpose="visit")
    with pytest.raises(ResourceExhausted) as info:
        await registry.list_people(SECRETARY, XINGMING, query, purpose="visit")
    assert info.value.metadata["retry_after_seconds"] == "60"
    # Another caller has a window of their own; reads without a sealed filter are not counted.
    other = caller(XINGMING, "people:read", SENSITIVE_SCOPE, subject="users/carer")
    await registry.list_people(other, XINGMING, query, purpose="visit")
    await registry.list_people(SECRETARY, XINGMING, 'kind = "resident"', purpose="visit")
    clock.now += timedelta(seconds=61)
    assert len((await registry.list_people(SECRETARY, XINGMING, query, purpose="v")).people) == 1

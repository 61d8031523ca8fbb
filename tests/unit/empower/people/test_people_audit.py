"""The audit chain on both stores: linking, listing, and catching any change."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from services.empower.domain.audit import AuditLog, to_filter
from services.empower.domain.people_model import GENESIS_HASH, VerifyResult, to_us
from services.kit import rls
from services.kit.errors import InvalidArgument, NotFound, PermissionDenied
from services.kit.tenancy import ALL_TENANTS
from tests.unit.empower.people.conftest import (
    DISTRICT,
    TOWN,
    XIANGYANG,
    XINGMING,
    caller,
)

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
AUDITOR = caller(DISTRICT, "audit:read", "audit:verify", subject="users/auditor")
FIELDS = ("name", "id_number", "phone")


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def reader(tenant: str, subject: str, app: str = "apps/eldercare"):
    return caller(tenant, "people:read", subject=subject, app=app)


async def write_three(log: AuditLog, clock: Clock | None = None) -> None:
    """Three entries by callers in two villages, an hour apart when a clock is given."""
    calls = [
        (reader(XINGMING, "users/a"), ["tenants/sh-jiading-anting-xingming/people/pe_1"]),
        (reader(XIANGYANG, "users/b", app=""), ["tenants/sh-jiading-anting-xiangyang/people/pe_2"]),
        (
            reader(XINGMING, "users/a"),
            [
                "tenants/sh-jiading-anting-xingming/people/pe_1",
                "tenants/sh-jiading-anting-xingming/people/pe_3",
            ],
        ),
    ]
    for who, records in calls:
        await log.record_read(who, records, FIELDS, f"visit by {who.subject}")
        if clock is not None:
            clock.now += timedelta(hours=1)


async def test_entries_link_by_sha256_of_the_previous_hash_and_canonical_json(audit):
    await write_three(audit)
    entries = list(reversed((await audit.list_entries(AUDITOR, DISTRICT)).entries))
    assert [e.sequence for e in entries] == [1, 2, 3]
    previous = "0" * 64
    for entry in entries:
        body = json.dumps(
            {
                "action": "people.read",
                "app": entry.app,
                "fields": ["name", "id_number", "phone"],
                "purpose": entry.purpose,
                "records": list(entry.records),
                "sequence": entry.sequence,
                "subject": entry.subject,
                "tenant": entry.tenant,
                "time_us": to_us(entry.time),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert entry.prev_hash == previous
        assert entry.entry_hash == hashlib.sha256((previous + body).encode()).hexdigest()
        previous = entry.entry_hash
    assert await audit.store.audit_head() == (3, previous)
    assert await audit.verify(AUDITOR) == VerifyResult(True, 3, None)


async def test_an_empty_chain_verifies(audit):
    assert await audit.verify() == VerifyResult(True, 0, None)
    assert await audit.store.audit_head() == (0, GENESIS_HASH)


def _changed(value: Any) -> Any:
    """The same value with one character (or one unit) different."""
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):  # a PostgreSQL text[]
        return [_changed(value[0]), *value[1:]]
    text = str(value)
    if not text:
        return "Y"  # an empty field gains a byte
    at = min(len(text) - 2, 4) if len(text) > 2 else 0
    return text[:at] + ("Y" if text[at] != "Y" else "Z") + text[at + 1 :]


COLUMNS = (
    "sequence",
    "time_us",
    "subject",
    "app",
    "tenant",
    "action",
    "purpose",
    "records",
    "fields",
    "prev_hash",
    "entry_hash",
)


@pytest.mark.parametrize("column", COLUMNS)
async def test_a_change_in_any_column_is_found_at_its_entry(backend, audit, column):
    await write_three(audit)
    [(value,)] = await backend.rows(f"SELECT {column} FROM people_audit WHERE sequence = 2")
    if column == "sequence":
        value = 20  # renumbered: entry 2 is missing where it should be
    changed = await backend.tamper(
        f"UPDATE people_audit SET {column} = ? WHERE sequence = 2", (_changed(value),)
    )
    assert changed == 1
    assert await audit.verify() == VerifyResult(False, 1, 2)


async def test_removed_entries_are_found_in_the_middle_and_at_the_end(backend, audit):
    await write_three(audit)
    assert await backend.tamper("DELETE FROM people_audit WHERE sequence = 3") == 1
    assert await audit.verify() == VerifyResult(False, 2, 3)  # the head still says 3
    await backend.tamper("DELETE FROM people_audit WHERE sequence = 1")
    assert await audit.verify() == VerifyResult(False, 0, 1)


async def test_the_application_cannot_change_or_delete_entries(backend, audit):
    await write_three(audit)
    if backend.path is not None:
        conn = sqlite3.connect(backend.path, isolation_level=None)
        try:
            for statement in (
                "UPDATE people_audit SET purpose = 'nothing' WHERE sequence = 1",
                "DELETE FROM people_audit WHERE sequence = 1",
            ):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(statement)
        finally:
            conn.close()
    else:
        # The app role has no UPDATE or DELETE right at all...
        for statement in (
            "UPDATE people_audit SET purpose = 'nothing' WHERE sequence = 1",
            "DELETE FROM people_audit WHERE sequence = 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                async with rls.scoped_transaction(backend.store.pool, ALL_TENANTS) as conn:
                    await conn.execute(statement)
        # ...and even the owner meets the trigger.
        async with await psycopg.AsyncConnection.connect(backend.dsn, autocommit=True) as conn:
            for statement in (
                "UPDATE people_audit SET purpose = 'nothing' WHERE sequence = 1",
                "DELETE FROM people_audit WHERE sequence = 1",
                "TRUNCATE people_audit",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    await conn.execute(statement)
    assert await audit.verify() == VerifyResult(True, 3, None)


async def test_concurrent_appends_never_fork_the_chain(audit):
    who = [reader(XINGMING if i % 2 else XIANGYANG, f"users/u{i}") for i in range(40)]
    calls = [audit.record_read(w, [f"pe_{i}"], FIELDS, "census") for i, w in enumerate(who)]
    # Every call finishes before the checks, so a failure leaves no task behind.
    results = await asyncio.gather(*calls, return_exceptions=True)
    written = [r for r in results if not isinstance(r, BaseException)]
    assert len(written) == 40, [r for r in results if isinstance(r, BaseException)][:1]
    assert sorted(e.sequence for e in written) == list(range(1, 41))
    assert len({e.prev_hash for e in written}) == 40  # nobody linked to the same predecessor
    assert await audit.verify() == VerifyResult(True, 40, None)


async def test_auditors_see_the_entries_of_callers_in_their_subtree(backend):
    clock = Clock()
    log = AuditLog(backend.store, clock=clock)
    await write_three(log, clock)
    district = await log.list_entries(AUDITOR, DISTRICT)
    assert [e.sequence for e in district.entries] == [3, 2, 1]  # newest first
    town = await log.list_entries(caller(TOWN, "audit:read"), TOWN)
    assert len(town.entries) == 3
    village = await log.list_entries(caller(XIANGYANG, "audit:read"), XIANGYANG)
    assert [(e.sequence, e.subject, e.app) for e in village.entries] == [(2, "users/b", "")]
    with pytest.raises(NotFound):
        await log.list_entries(caller(XIANGYANG, "audit:read"), XINGMING)
    with pytest.raises(PermissionDenied, match="audit:read"):
        await log.list_entries(caller(DISTRICT, "people:read"), DISTRICT)


async def test_entries_filter_by_subject_record_and_time_and_page(backend):
    clock = Clock()
    log = AuditLog(backend.store, clock=clock)
    await write_three(log, clock)  # at T0, T0 + 1 h, T0 + 2 h

    async def sequences(expression: str) -> list[int]:
        return [e.sequence for e in (await log.list_entries(AUDITOR, DISTRICT, expression)).entries]

    assert await sequences('subject = "users/a"') == [3, 1]
    assert await sequences('record = "tenants/sh-jiading-anting-xingming/people/pe_3"') == [3]
    assert await sequences('record = "tenants/sh-jiading-anting-xingming/people/pe_1"') == [3, 1]
    assert await sequences('record = "tenants/sh-jiading-anting-xingming/people/pe_"') == []
    assert await sequences('time >= "2026-11-20T09:00:00Z"') == [3, 2]
    assert await sequences('time > "2026-11-20T09:00:00Z"') == [3]
    assert await sequences('time < "2026-11-20T09:00:00+00:00"') == [1]
    assert await sequences('time <= "2026-11-20T17:00:00+08:00"') == [2, 1]
    assert await sequences('subject = "users/a" AND time >= "2026-11-20T08:30:00Z"') == [3]
    first = await log.list_entries(AUDITOR, DISTRICT, page_size=2)
    assert [e.sequence for e in first.entries] == [3, 2] and first.next_page_token
    rest = await log.list_entries(AUDITOR, DISTRICT, page_size=2, page_token=first.next_page_token)
    assert [e.sequence for e in rest.entries] == [1] and not rest.next_page_token
    with pytest.raises(InvalidArgument):
        await log.list_entries(AUDITOR, DISTRICT, 'subject = "users/b"', 2, first.next_page_token)


@pytest.mark.parametrize(
    "bad",
    ['time >= "yesterday"', 'time >= "2026-11-20T08:00:00"', 'purpose = "x"', 'subject > "a"'],
)
def test_bad_audit_filters_name_the_filter(bad):
    with pytest.raises(InvalidArgument) as info:
        to_filter(bad)
    assert info.value.violations[0].field == "filter"


async def test_verifying_needs_its_own_scope(audit):
    with pytest.raises(PermissionDenied, match="audit:verify"):
        await audit.verify(caller(DISTRICT, "audit:read"))
    assert (await audit.verify(AUDITOR)).ok


async def test_purposes_are_required_and_bounded(audit):
    who = reader(XINGMING, "users/a")
    for purpose in ("", " \t", "x" * 501):
        with pytest.raises(InvalidArgument) as info:
            await audit.record_read(who, ["r"], FIELDS, purpose)
        assert info.value.violations[0].field == "purpose"
    assert await audit.store.audit_head() == (0, GENESIS_HASH)


@pytest.mark.parametrize(
    ("column", "value"), [("time_us", "noon"), ("records", "not json"), ("fields", "[1, 2]")]
)
async def test_values_of_the_wrong_shape_are_found_too(tmp_path, column, value):
    """SQLite columns take any type: a row that no longer decodes is a broken link."""
    from services.empower.store.people_sqlite import SqlitePeopleStore
    from tests.unit.empower.people.conftest import Backend

    store = SqlitePeopleStore(tmp_path / "people.sqlite3")
    backend = Backend("sqlite", store, path=tmp_path / "people.sqlite3")
    log = AuditLog(store)
    try:
        await write_three(log)
        await backend.tamper(f"UPDATE people_audit SET {column} = ? WHERE sequence = 2", (value,))
        assert await log.verify() == VerifyResult(False, 1, 2)
        listed = await log.list_entries(AUDITOR, DISTRICT)
        assert [e.sequence for e in listed.entries] == [3, 2, 1]  # still listed, never hidden
    finally:
        store.close()

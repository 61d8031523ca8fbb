"""How people and audit entries map to rows, and the statements both stores run.

Statements are written once with `?` placeholders and rendered by each store's
dialect (`services.kit.sqldialect`, ADR 12). The row mapping itself differs (SQLite
keeps lists as JSON text, PostgreSQL as arrays) and stays in each store.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.empower.domain.people_model import AuditFilter, PersonFilter, PersonRecord, to_us
from services.kit import tenancy
from services.kit.errors import AlreadyExists
from services.kit.tenancy import ALL_TENANTS

PERSON_COLUMNS = (
    "id, tenant, kind, name_sealed, id_number_sealed, id_number_index, phone_sealed, "
    "phone_index, gender, birth_date, address, building, grid_cell, tags, create_us, "
    "update_us, version, carer, user_ref"
)

AUDIT_COLUMNS = (
    "sequence, time_us, subject, app, tenant, action, purpose, records, fields, "
    "prev_hash, entry_hash"
)

PERSON_COLUMN_NAMES = tuple(c.strip() for c in PERSON_COLUMNS.split(","))

# What an update may change: everything but the id, the tenant and the creation time.
UPDATED_COLUMNS = tuple(c for c in PERSON_COLUMN_NAMES if c not in ("id", "tenant", "create_us"))

INSERT_PERSON = (
    f"INSERT INTO people ({PERSON_COLUMNS}) VALUES ({', '.join('?' * len(PERSON_COLUMN_NAMES))})"
)
# An update writes every changeable column, and only over the version it read.
UPDATE_PERSON = (
    f"UPDATE people SET {', '.join(c + ' = ?' for c in UPDATED_COLUMNS)} "
    "WHERE id = ? AND version = ?"
)
GET_PERSON = f"SELECT {PERSON_COLUMNS} FROM people WHERE id = ? AND {{subtree}}"
DELETE_PERSON = "DELETE FROM people WHERE id = ? AND {subtree}"
INSERT_AUDIT = (
    f"INSERT INTO people_audit ({AUDIT_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS.split(',')))})"
)
READ_HEAD = "SELECT sequence, entry_hash FROM people_audit_head WHERE id = 1"
MOVE_HEAD = "UPDATE people_audit_head SET sequence = ?, entry_hash = ? WHERE id = 1"
AUDIT_CHAIN = (
    f"SELECT {AUDIT_COLUMNS} FROM people_audit WHERE sequence > ? AND sequence <= ? "
    "ORDER BY sequence LIMIT ?"
)
# The filters a person list takes, each an equality on the column of its name.
_PERSON_FILTERS = ("id_number_index", "phone_index", "kind", "building", "grid_cell")


def in_subtree(subtree: str) -> tuple[str, list[object]]:
    """ "tenant is `subtree` or below it" and its values, as a range an index can scan
    ('/' sorts just before '0'); every tenant for ALL_TENANTS."""
    if subtree == ALL_TENANTS:
        return "1 = 1", []
    return "(tenant = ? OR (tenant >= ? AND tenant < ?))", [subtree, subtree + "/", subtree + "0"]


def people_query(
    subtree: str, filters: PersonFilter, limit: int, after_id: str | None
) -> tuple[str, list[object]]:
    """One page of people of a subtree by id, and its values."""
    condition, args = in_subtree(subtree)
    where = [condition]
    for name in _PERSON_FILTERS:
        value = getattr(filters, name)
        if value:
            where.append(f"{name} = ?")
            args.append(value)
    if after_id is not None:
        where.append("id > ?")
        args.append(after_id)
    args.append(limit)
    return (
        f"SELECT {PERSON_COLUMNS} FROM people WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        args,
    )


def audit_query(
    subtree: str,
    filters: AuditFilter,
    limit: int,
    before_sequence: int | None,
    names_record: str,
) -> tuple[str, list[object]]:
    """One page of audit entries of a subtree, newest first, and its values.

    `names_record` is the store's test that an entry's `records` holds `?`: the one
    statement the two stores write differently (a JSON array, an array column).
    """
    condition, args = in_subtree(subtree)
    where = [condition]
    if filters.subject:
        where.append("subject = ?")
        args.append(filters.subject)
    if filters.record:
        where.append(names_record)
        args.append(filters.record)
    if filters.time_from is not None:
        where.append("time_us >= ?")
        args.append(to_us(filters.time_from))
    if filters.time_before is not None:
        where.append("time_us < ?")
        args.append(to_us(filters.time_before))
    if before_sequence is not None:
        where.append("sequence < ?")
        args.append(before_sequence)
    args.append(limit)
    return (
        f"SELECT {AUDIT_COLUMNS} FROM people_audit WHERE {' AND '.join(where)} "
        "ORDER BY sequence DESC LIMIT ?",
        args,
    )


def duplicate_error(records: Sequence[PersonRecord]) -> AlreadyExists:
    """The error for a taken id or ID number; it never names the ID number (logs)."""
    where = f" in {tenancy.tenant_name(records[0].tenant)}" if len(records) == 1 else ""
    return AlreadyExists(
        f"a person with this ID number is already registered{where}", reason="PERSON_EXISTS"
    )

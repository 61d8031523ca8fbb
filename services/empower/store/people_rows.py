"""How people and audit entries map to rows: one definition both stores use."""

from __future__ import annotations

from collections.abc import Sequence

from services.empower.domain.people_model import PersonRecord
from services.kit import tenancy
from services.kit.errors import AlreadyExists

PERSON_COLUMNS = (
    "id, tenant, kind, name_sealed, id_number_sealed, id_number_index, phone_sealed, "
    "phone_index, gender, birth_date, address, building, grid_cell, tags, create_us, "
    "update_us, version"
)

AUDIT_COLUMNS = (
    "sequence, time_us, subject, app, tenant, action, purpose, records, fields, "
    "prev_hash, entry_hash"
)

PERSON_COLUMN_NAMES = tuple(c.strip() for c in PERSON_COLUMNS.split(","))

# What an update may change: everything but the id, the tenant and the creation time.
UPDATED_COLUMNS = tuple(c for c in PERSON_COLUMN_NAMES if c not in ("id", "tenant", "create_us"))


def duplicate_error(records: Sequence[PersonRecord]) -> AlreadyExists:
    """The error for a taken id or ID number; it never names the ID number (logs)."""
    where = f" in {tenancy.tenant_name(records[0].tenant)}" if len(records) == 1 else ""
    return AlreadyExists(
        f"a person with this ID number is already registered{where}", reason="PERSON_EXISTS"
    )

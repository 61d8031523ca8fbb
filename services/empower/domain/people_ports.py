"""What the people registry and the audit log need from storage, as interfaces.

Stores see only sealed values and blind indexes, never plain ID numbers or phone
numbers: encryption happens in the domain, so no store can leak what it never had.
Every method takes the tenant `subtree` the unit of work is limited to (a tenant path,
or ALL_TENANTS for the platform's own work such as seeding and chain checks);
stores filter by it in their queries, and PostgreSQL enforces it again with
row-level security.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from services.empower.domain.people_model import AuditEntry, AuditFilter, PersonFilter, PersonRecord

__all__ = ["AuditStore", "MakeEntry", "PeopleStore", "PersonChange"]

# Given the next sequence number and the previous entry's hash, the entry to append.
MakeEntry = Callable[[int, str], AuditEntry]
# A change to a stored person, applied inside the store's transaction.
PersonChange = Callable[[PersonRecord], PersonRecord]


class PeopleStore(Protocol):
    async def insert_people(
        self, subtree: str, records: Sequence[PersonRecord], *, skip_existing: bool = False
    ) -> int:
        """Insert in one transaction; returns how many rows were added.

        A record whose id, or whose ID number in its tenant, is already stored raises
        AlreadyExists (nothing is written), or is skipped with `skip_existing`.
        """
        ...

    async def get_person(self, subtree: str, person_id: str) -> PersonRecord | None:
        """The person if it lies in `subtree`."""
        ...

    async def list_people(
        self, subtree: str, filters: PersonFilter, limit: int, after_id: str | None
    ) -> list[PersonRecord]:
        """People in `subtree` matching `filters`, by id, after `after_id`."""
        ...

    async def update_person(
        self, subtree: str, person_id: str, change: PersonChange
    ) -> PersonRecord:
        """Apply `change` atomically (NOT_FOUND outside the subtree, ALREADY_EXISTS on a
        duplicate ID number)."""
        ...

    async def delete_person(self, subtree: str, person_id: str) -> bool:
        """Remove the person; False when there was none in the subtree."""
        ...


class AuditStore(Protocol):
    async def append_audit(self, tenant: str, make: MakeEntry) -> AuditEntry:
        """Under the chain-head lock: build the entry with `make(sequence, prev_hash)`,
        store it and move the head, in one transaction."""
        ...

    async def list_audit(
        self, subtree: str, filters: AuditFilter, limit: int, before_sequence: int | None
    ) -> list[AuditEntry]:
        """Entries whose tenant lies in `subtree`, newest first."""
        ...

    async def audit_chain(self, after: int, up_to: int, limit: int) -> list[AuditEntry]:
        """Entries with after < sequence <= up_to of the whole chain, in order.

        A row the store cannot decode comes back as `audit.unreadable_entry`.
        """
        ...

    async def audit_head(self) -> tuple[int, str]:
        """The last sequence number and hash (0 and 64 zeros for an empty chain)."""
        ...

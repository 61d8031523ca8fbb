"""The people registry's and the audit log's types: what the domain, the ports and
the stores share, with no behaviour beyond naming and hashing.

Kept apart from `people` and `audit` so that the ports can name these types without
importing the services that use the ports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from services.kit import tenancy

COLLECTION = "people"
GENESIS_HASH = "0" * 64


class Kind(StrEnum):
    RESIDENT = "resident"
    ELDERLY_ALONE = "elderly_alone"
    CARE_RECIPIENT = "care_recipient"
    VOLUNTEER = "volunteer"


class Gender(StrEnum):
    UNSPECIFIED = "unspecified"
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True)
class NewPerson:
    """What a caller sends to register someone; the tenant comes from the request's parent.

    Gender and birth date are read from the ID number when not given, and must agree
    with it when given.
    """

    name: str
    id_number: str
    phone: str = ""
    kind: str = Kind.RESIDENT
    gender: str = Gender.UNSPECIFIED
    birth_date: date | None = None
    address: str = ""
    building: str = ""
    grid_cell: str = ""
    tags: tuple[str, ...] = ()
    # The user assigned to care for this person (`users/{id}`): reads them unmasked.
    carer: str = ""
    # The person's own account (`users/{id}`): notices to people reach them in-app.
    user: str = ""


@dataclass(frozen=True)
class PersonChanges:
    """A partial update: None leaves a field as it is."""

    name: str | None = None
    id_number: str | None = None
    phone: str | None = None
    kind: str | None = None
    address: str | None = None
    building: str | None = None
    grid_cell: str | None = None
    tags: tuple[str, ...] | None = None
    carer: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class Person:
    """A person as a caller sees it: `masked` says whether name, ID and phone are masked."""

    id: str
    tenant: str
    kind: Kind
    name: str
    id_number: str
    phone: str
    gender: Gender
    birth_date: date
    address: str
    building: str
    grid_cell: str
    tags: tuple[str, ...]
    create_time: datetime
    update_time: datetime
    version: int
    masked: bool
    carer: str = ""
    user: str = ""

    @property
    def resource_name(self) -> str:
        return person_name(self.tenant, self.id)

    @property
    def etag(self) -> str:
        return person_etag(self.id, self.version)


@dataclass(frozen=True)
class PersonRecord:
    """A person as stored: sealed name, ID number and phone, plus their blind indexes."""

    id: str
    tenant: str
    kind: str
    name_sealed: str
    id_number_sealed: str
    id_number_index: str
    phone_sealed: str
    phone_index: str
    gender: str
    birth_date: date
    address: str
    building: str
    grid_cell: str
    tags: tuple[str, ...]
    create_time: datetime
    update_time: datetime
    version: int = 1
    carer: str = ""
    user: str = ""


@dataclass(frozen=True)
class PersonFilter:
    """Exact matches a store applies; empty strings match anything."""

    id_number_index: str = ""
    phone_index: str = ""
    kind: str = ""
    building: str = ""
    grid_cell: str = ""


@dataclass(frozen=True)
class PersonPage:
    people: list[Person]
    next_page_token: str


def person_etag(person_id: str, version: int) -> str:
    """Changes with every stored version: callers send it back to update safely."""
    return hashlib.sha256(f"{person_id}|{version}".encode()).hexdigest()[:16]


def person_name(tenant: str, person_id: str) -> str:
    """`tenants/{tenant_id}/people/{id}`."""
    return f"{tenancy.tenant_name(tenant)}/{COLLECTION}/{person_id}"


def parse_person_name(name: str, field: str = "name") -> tuple[str | None, str]:
    """(tenant path, or None for `tenants/-/people/{id}`, person id)."""
    return tenancy.parse_child_name(name, COLLECTION, field)


# --- the audit log ---------------------------------------------------------------


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
_UNREADABLE = "unreadable"


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding), as the stores keep time."""
    return (moment - EPOCH) // ONE_US


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True)
class AuditEntry:
    """One read of personal data, linked to the entry before it."""

    sequence: int
    time: datetime
    subject: str
    app: str
    tenant: str
    action: str
    purpose: str
    records: tuple[str, ...]
    fields: tuple[str, ...]
    prev_hash: str = GENESIS_HASH
    entry_hash: str = ""

    def canonical(self) -> bytes:
        """Every field but the hashes, as sorted compact JSON: the bytes the hash covers."""
        body = {
            "action": self.action,
            "app": self.app,
            "fields": list(self.fields),
            "purpose": self.purpose,
            "records": list(self.records),
            "sequence": self.sequence,
            "subject": self.subject,
            "tenant": self.tenant,
            "time_us": to_us(self.time),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def computed_hash(self) -> str:
        """sha256(prev_hash || canonical JSON), hex."""
        return hashlib.sha256(self.prev_hash.encode() + self.canonical()).hexdigest()


def link(entry: AuditEntry, sequence: int, prev_hash: str) -> AuditEntry:
    """The entry placed after `prev_hash` at `sequence`, with its own hash."""
    placed = replace(entry, sequence=sequence, prev_hash=prev_hash, entry_hash="")
    return replace(placed, entry_hash=placed.computed_hash())


def unreadable_entry(sequence: int) -> AuditEntry:
    """What a store returns for a row it cannot decode: it never verifies."""
    return AuditEntry(
        sequence=sequence,
        time=EPOCH,
        subject="",
        app="",
        tenant="",
        action="",
        purpose="",
        records=(),
        fields=(),
        prev_hash=_UNREADABLE,
        entry_hash=_UNREADABLE,
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which entries a listing wants; None or empty means any."""

    subject: str = ""
    record: str = ""
    time_from: datetime | None = None  # inclusive
    time_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_page_token: str


@dataclass(frozen=True)
class VerifyResult:
    """`first_bad_sequence` is None when the chain is intact."""

    ok: bool
    checked: int
    first_bad_sequence: int | None = None

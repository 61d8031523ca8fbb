"""JSON shapes of the people registry and of the audit log of unmasked reads.

A person's name, ID number and phone come back masked unless the caller holds
`people:read_sensitive` and states a purpose; `masked` says which copy this is. The
service checks ID numbers, phones and references in detail; these shapes only bound
sizes and refuse unknown fields.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PersonKindName = Literal["resident", "elderly_alone", "care_recipient", "volunteer"]
Reference = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")]


class PersonCreate(BaseModel):
    """A person a village serves."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str = Field(..., min_length=1, max_length=64)
    id_number: str = Field(..., min_length=1, max_length=32, description="GB 11643, 18 characters")
    phone: str = Field(..., min_length=1, max_length=32, description="mobile, 11 digits")
    kind: PersonKindName
    gender: Literal["M", "F"] | None = Field(None, description="from the ID number when absent")
    # Not strict: FastAPI validates parsed JSON, where a date is still a string.
    birth_date: date | None = Field(
        None, strict=False, description="YYYY-MM-DD; from the ID number when absent"
    )
    address: str = Field("", max_length=200)
    building: Reference = Field("", description="building id on the map")
    grid_cell: Reference = Field("", description="grid cell id")
    tags: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, max_length=16, examples=[["lives-alone"]]
    )


class PersonOut(BaseModel):
    id: str
    name: str
    display_name: str
    id_number: str
    phone: str
    kind: PersonKindName
    gender: str | None
    birth_date: str | None = Field(description="YYYY-MM-DD")
    address: str
    building: str
    grid_cell: str
    tags: list[str]
    masked: bool = Field(description="whether name, ID number and phone are masked")
    create_time: datetime


class PersonList(BaseModel):
    people: list[PersonOut]
    next_page_token: str


class AuditEntryOut(BaseModel):
    """One unmasked read or administrative action, chained to the one before it by hash."""

    name: str
    sequence: int
    action: str = Field(
        description="people.read, people.lookup, or an administrative action such as "
        "identity.users.create"
    )
    subject: str
    app: str
    tenant: str
    records: list[str]
    fields: list[str]
    purpose: str
    create_time: datetime
    previous_hash: str
    entry_hash: str


class AuditEntryList(BaseModel):
    audit_entries: list[AuditEntryOut] = Field(description="oldest first")
    next_page_token: str


class AuditVerification(BaseModel):
    ok: bool
    checked: int = Field(description="how many entries were checked")
    first_bad_sequence: int | None = Field(description="the first entry that does not match")

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

from gateway.schemas.contract import item, limited
from grassroots.empower.v1 import people_service_pb2 as pb

PersonKindName = Literal["resident", "elderly_alone", "care_recipient", "volunteer"]


class PersonCreate(BaseModel):
    """A person a village serves."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str = limited(pb.Person, "display_name")
    id_number: str = limited(pb.Person, "id_number", description="GB 11643, 18 characters")
    phone: str = limited(pb.Person, "phone", description="mobile, 11 digits")
    kind: PersonKindName
    gender: Literal["M", "F"] | None = Field(None, description="from the ID number when absent")
    # Not strict: FastAPI validates parsed JSON, where a date is still a string.
    birth_date: date | None = Field(
        None, strict=False, description="YYYY-MM-DD; from the ID number when absent"
    )
    address: str = limited(pb.Person, "address", "")
    building: str = limited(pb.Person, "building", "", description="building id on the map")
    grid_cell: str = limited(pb.Person, "grid_cell", "", description="grid cell id")
    tags: list[Annotated[str, item(pb.Person, "tags")]] = limited(
        pb.Person, "tags", [], examples=[["lives-alone"]]
    )
    carer: str = limited(
        pb.Person,
        "carer",
        "",
        description="the user assigned to care for the person ('users/{id}'): the one "
        "caller besides holders of people:read_sensitive who reads them unmasked",
    )
    user: str = limited(
        pb.Person,
        "user",
        "",
        description="the person's own account ('users/{id}'): notices to people reach "
        "them in-app there",
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
    carer: str = Field("", description="the user assigned to care for the person")
    user: str = Field("", description="the person's own account, when they sign in")
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

"""gRPC adapter of the people registry and the audit log.

Masking, sealing, purposes and audit entries are decided in
`services.empower.domain.people` and `.audit`; this module only translates.
"""

from __future__ import annotations

from datetime import date

from grassroots.empower.v1 import people_service_pb2 as pb
from grassroots.empower.v1 import people_service_pb2_grpc as pb_grpc
from services.empower.domain.audit import AuditLog
from services.empower.domain.people import PeopleRegistry
from services.empower.domain.people_model import (
    AuditEntry,
    Gender,
    Kind,
    NewPerson,
    Person,
    parse_person_name,
)
from services.empower.identity_api import parent_path
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument, NotFound
from services.kit.timestamps import to_timestamp

MAX_BATCH = 1000
_KINDS = {
    Kind.RESIDENT: pb.Person.KIND_RESIDENT,
    Kind.ELDERLY_ALONE: pb.Person.KIND_ELDERLY_ALONE,
    Kind.CARE_RECIPIENT: pb.Person.KIND_CARE_RECIPIENT,
    Kind.VOLUNTEER: pb.Person.KIND_VOLUNTEER,
}
_KINDS_BACK = {v: k for k, v in _KINDS.items()}
_KINDS_BACK[pb.Person.KIND_UNSPECIFIED] = Kind.RESIDENT
_GENDERS = {Gender.MALE: "M", Gender.FEMALE: "F", Gender.UNSPECIFIED: ""}
_GENDERS_BACK = {"M": Gender.MALE, "F": Gender.FEMALE, "": Gender.UNSPECIFIED}


def person_to_proto(person: Person) -> pb.Person:
    return pb.Person(
        name=person.resource_name,
        display_name=person.name,
        id_number=person.id_number,
        phone=person.phone,
        kind=_KINDS[person.kind],
        gender=_GENDERS[person.gender],
        # The full date is 8 of the ID number's digits: masked copies keep the year only.
        birth_date=str(person.birth_date.year) if person.masked else person.birth_date.isoformat(),
        address=person.address,
        building=person.building,
        grid_cell=person.grid_cell,
        tags=list(person.tags),
        carer=person.carer,
        user=person.user,
        masked=person.masked,
        create_time=to_timestamp(person.create_time),
    )


def new_person(message: pb.Person, prefix: str = "person.") -> NewPerson:
    gender = _GENDERS_BACK.get(message.gender.upper())
    if gender is None:
        raise InvalidArgument.field(prefix + "gender", "must be 'M', 'F' or empty")
    birth: date | None = None
    if message.birth_date:
        try:
            birth = date.fromisoformat(message.birth_date)
        except ValueError as exc:
            raise InvalidArgument.field(prefix + "birth_date", "must be YYYY-MM-DD") from exc
    kind = _KINDS_BACK.get(message.kind)
    if kind is None:
        raise InvalidArgument.field(prefix + "kind", "is not a known kind")
    # Validated by the registry, which names fields below the batch entry.
    return NewPerson(
        name=message.display_name,
        id_number=message.id_number,
        phone=message.phone,
        kind=kind,
        gender=gender,
        birth_date=birth,
        address=message.address,
        building=message.building,
        grid_cell=message.grid_cell,
        tags=tuple(message.tags),
        carer=message.carer,
        user=message.user,
    )


def person_message(new: NewPerson) -> pb.Person:
    """The request form of a person to register (the inverse of `new_person`)."""
    return pb.Person(
        display_name=new.name,
        id_number=new.id_number,
        phone=new.phone,
        kind=_KINDS[Kind(new.kind)],
        gender=_GENDERS[Gender(new.gender)],
        birth_date=new.birth_date.isoformat() if new.birth_date else "",
        address=new.address,
        building=new.building,
        grid_cell=new.grid_cell,
        tags=list(new.tags),
        carer=new.carer,
        user=new.user,
    )


def audit_to_proto(entry: AuditEntry) -> pb.AuditEntry:
    return pb.AuditEntry(
        name=f"{tenancy.tenant_name(entry.tenant)}/auditEntries/{entry.sequence}",
        sequence=entry.sequence,
        subject=entry.subject,
        app=entry.app,
        tenant=entry.tenant,
        records=list(entry.records),
        fields=list(entry.fields),
        purpose=entry.purpose,
        create_time=to_timestamp(entry.time),
        previous_hash=entry.prev_hash,
        entry_hash=entry.entry_hash,
        action=entry.action,
    )


class PeopleServicer(pb_grpc.PeopleServiceServicer):
    def __init__(self, registry: PeopleRegistry, audit: AuditLog) -> None:
        self.registry = registry
        self.audit = audit

    async def CreatePerson(self, request: pb.CreatePersonRequest, context: object) -> pb.Person:
        created = await self.registry.create_person(
            require_principal(), parent_path(request.parent), new_person(request.person)
        )
        return person_to_proto(created)

    async def BatchCreatePeople(
        self, request: pb.BatchCreatePeopleRequest, context: object
    ) -> pb.BatchCreatePeopleResponse:
        if not 0 < len(request.requests) <= MAX_BATCH:
            raise InvalidArgument.field("requests", f"send 1 to {MAX_BATCH} people")
        parent = parent_path(request.parent)
        people = []
        for i, item in enumerate(request.requests):
            if item.parent and item.parent != request.parent:
                raise InvalidArgument.field(f"requests[{i}].parent", "must match the batch's")
            people.append(new_person(item.person, f"requests[{i}].person."))
        created = await self.registry.create_people(require_principal(), parent, people)
        return pb.BatchCreatePeopleResponse(people=[person_to_proto(p) for p in created])

    async def GetPerson(self, request: pb.GetPersonRequest, context: object) -> pb.Person:
        tenant, person_id = parse_person_name(request.name)
        found = await self.registry.get_person(
            require_principal(), tenant, person_id, request.purpose
        )
        return person_to_proto(found)

    async def ListPeople(
        self, request: pb.ListPeopleRequest, context: object
    ) -> pb.ListPeopleResponse:
        page = await self.registry.list_people(
            require_principal(),
            parent_path(request.parent),
            request.filter,
            request.page_size,
            request.page_token,
            request.purpose,
        )
        return pb.ListPeopleResponse(
            people=[person_to_proto(p) for p in page.people], next_page_token=page.next_page_token
        )

    async def ListAuditEntries(
        self, request: pb.ListAuditEntriesRequest, context: object
    ) -> pb.ListAuditEntriesResponse:
        page = await self.audit.list_entries(
            require_principal(),
            parent_path(request.parent),
            request.filter,
            request.page_size,
            request.page_token,
        )
        return pb.ListAuditEntriesResponse(
            audit_entries=[audit_to_proto(e) for e in page.entries],
            next_page_token=page.next_page_token,
        )

    async def VerifyAuditLog(
        self, request: pb.VerifyAuditLogRequest, context: object
    ) -> pb.VerifyAuditLogResponse:
        who = require_principal()
        parent = parent_path(request.parent)
        if not who.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        result = await self.audit.verify(who)
        return pb.VerifyAuditLogResponse(
            ok=result.ok, checked=result.checked, first_bad_sequence=result.first_bad_sequence or 0
        )

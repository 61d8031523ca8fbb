"""REST for the people a village serves, and for the audit log of unmasked reads.

Registering a person needs `people:write` and reading `people:read`. Personal fields
come back masked unless the caller also holds `people:read_sensitive` (or is the
person's assigned `carer`) and states a purpose, as the `purpose` query parameter or
the `X-Purpose` header (the parameter wins); the people service records each unmasked
read in a hash-chained audit log. That log can be listed and verified with `audit:read`
and nothing here changes it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, Path, Query, Request, Response, Security

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.schemas.identity import RESOURCE_ID_PATTERN, TENANT_ID_PATTERN
from gateway.schemas.notices import WeChatBindingIn, WeChatBindingOut
from gateway.schemas.people import (
    AuditEntryList,
    AuditEntryOut,
    AuditVerification,
    PersonCreate,
    PersonList,
    PersonOut,
)
from grassroots.empower.v1 import notices_service_pb2 as notices_pb
from grassroots.empower.v1 import people_service_pb2 as pb
from services.kit.principal import Principal

router = APIRouter(prefix="/v1/tenants")
SERVICE = "grassroots.empower.v1.PeopleService"
NOTICES_SERVICE = "grassroots.empower.v1.NoticesService"
Who = Annotated[Principal, Security(access("empower"))]
TenantId = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="tenant id")]
PersonId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN)]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]
Filter = Annotated[
    str,
    Query(
        max_length=2000,
        description="equality terms joined by AND on id_number, phone, kind, building, "
        'grid_cell: kind = "resident" AND building = "b12"',
    ),
]
PurposeQuery = Annotated[
    str | None, Query(max_length=500, description="why you read; needed to see unmasked data")
]
PurposeHeader = Annotated[
    str | None,
    Header(max_length=1500, description="the purpose, percent-encoded UTF-8 when not ASCII"),
]


def _purpose(query: str | None, header: str | None) -> str:
    """The stated purpose: the query parameter, else the header (HTTP headers are ASCII)."""
    if query is not None:
        return query
    return unquote(header) if header is not None else ""


def person_out(person: pb.Person) -> PersonOut:
    kind = pb.Person.Kind.Name(person.kind or pb.Person.KIND_RESIDENT)  # type: ignore[arg-type]
    return PersonOut(
        id=person.name.rsplit("/", 1)[-1],
        name=person.name,
        display_name=person.display_name,
        id_number=person.id_number,
        phone=person.phone,
        kind=kind.removeprefix("KIND_").lower(),  # type: ignore[arg-type]
        gender=person.gender or None,
        birth_date=person.birth_date or None,
        address=person.address,
        building=person.building,
        grid_cell=person.grid_cell,
        tags=list(person.tags),
        carer=person.carer,
        user=person.user,
        masked=person.masked,
        create_time=person.create_time.ToDatetime(tzinfo=UTC),
    )


def audit_entry_out(entry: pb.AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        name=entry.name,
        sequence=entry.sequence,
        action=entry.action,
        subject=entry.subject,
        app=entry.app,
        tenant=entry.tenant,
        records=list(entry.records),
        fields=list(entry.fields),
        purpose=entry.purpose,
        create_time=entry.create_time.ToDatetime(tzinfo=UTC),
        previous_hash=entry.previous_hash,
        entry_hash=entry.entry_hash,
    )


@router.post(
    "/{tenant}/people",
    status_code=201,
    response_model=PersonOut,
    tags=["people"],
    summary="Register a person",
)
@calls(SERVICE, "CreatePerson")
async def create_person(
    tenant: TenantId, body: PersonCreate, request: Request, response: Response, who: Who
) -> PersonOut:
    """Answers the person as the caller may see them (masked without read_sensitive)."""
    person = pb.Person(
        display_name=body.display_name,
        id_number=body.id_number,
        phone=body.phone,
        kind=pb.Person.Kind.Value(f"KIND_{body.kind.upper()}"),
        gender=body.gender or "",
        birth_date=body.birth_date.isoformat() if body.birth_date else "",
        address=body.address,
        building=body.building,
        grid_cell=body.grid_cell,
        tags=body.tags,
        carer=body.carer,
        user=body.user,
    )
    rpc = request.app.state.upstreams.people.CreatePerson(
        pb.CreatePersonRequest(parent=f"tenants/{tenant}", person=person),
        metadata=call_metadata(who),
    )
    created = person_out(await call(rpc, strip_prefix="person."))
    response.headers["Location"] = f"/v1/tenants/{tenant}/people/{created.id}"
    return created


@router.get("/{tenant}/people", response_model=PersonList, tags=["people"], summary="List people")
@calls(SERVICE, "ListPeople")
async def list_people(
    tenant: TenantId,
    request: Request,
    who: Who,
    filter: Filter = "",
    page_size: PageSize = 50,
    page_token: PageToken = "",
    purpose: PurposeQuery = None,
    x_purpose: PurposeHeader = None,
) -> PersonList:
    """People of the node and its subtree; `id_number = "..."` or `phone = "..."` find one
    (these need `people:read_sensitive` and a purpose, are audited and limited to 30 a
    minute per caller, since they would confirm guesses of a masked value)."""
    response = await call(
        request.app.state.upstreams.people.ListPeople(
            pb.ListPeopleRequest(
                parent=f"tenants/{tenant}",
                filter=filter,
                page_size=page_size,
                page_token=page_token,
                purpose=_purpose(purpose, x_purpose),
            ),
            metadata=call_metadata(who),
        )
    )
    return PersonList(
        people=[person_out(p) for p in response.people], next_page_token=response.next_page_token
    )


@router.get(
    "/{tenant}/people/{person}", response_model=PersonOut, tags=["people"], summary="Get a person"
)
@calls(SERVICE, "GetPerson")
async def get_person(
    tenant: TenantId,
    person: PersonId,
    request: Request,
    who: Who,
    purpose: PurposeQuery = None,
    x_purpose: PurposeHeader = None,
) -> PersonOut:
    rpc = request.app.state.upstreams.people.GetPerson(
        pb.GetPersonRequest(
            name=f"tenants/{tenant}/people/{person}", purpose=_purpose(purpose, x_purpose)
        ),
        metadata=call_metadata(who),
    )
    return person_out(await call(rpc))


@router.get(
    "/{tenant}/auditEntries",
    response_model=AuditEntryList,
    tags=["audit"],
    summary="List audit entries of unmasked reads",
)
@calls(SERVICE, "ListAuditEntries")
async def list_audit_entries(
    tenant: TenantId,
    request: Request,
    who: Who,
    filter: Annotated[
        str,
        Query(
            max_length=2000,
            description='terms joined by AND: subject = "...", record = "tenants/.../people/...", '
            "time >= / > / <= / < an RFC 3339 time",
        ),
    ] = "",
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> AuditEntryList:
    """Entries of reads in the node's subtree, oldest first."""
    response = await call(
        request.app.state.upstreams.people.ListAuditEntries(
            pb.ListAuditEntriesRequest(
                parent=f"tenants/{tenant}",
                filter=filter,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata=call_metadata(who),
        )
    )
    return AuditEntryList(
        audit_entries=[audit_entry_out(e) for e in response.audit_entries],
        next_page_token=response.next_page_token,
    )


@router.get(
    "/{tenant}/auditEntries:verify",
    response_model=AuditVerification,
    tags=["audit"],
    summary="Check the audit log's hash chain",
)
@calls(SERVICE, "VerifyAuditLog")
async def verify_audit_log(tenant: TenantId, request: Request, who: Who) -> AuditVerification:
    """Recomputes every entry's hash; `first_bad_sequence` names the first that breaks."""
    result = await call(
        request.app.state.upstreams.people.VerifyAuditLog(
            pb.VerifyAuditLogRequest(parent=f"tenants/{tenant}"), metadata=call_metadata(who)
        )
    )
    return AuditVerification(
        ok=result.ok, checked=result.checked, first_bad_sequence=result.first_bad_sequence or None
    )


@router.post(
    "/{tenant}/people/{person}:bindWeChat",
    response_model=WeChatBindingOut,
    tags=["people", "notices"],
    summary="Bind a person to their WeChat openid",
)
@calls(NOTICES_SERVICE, "BindWeChat")
async def bind_wechat(
    tenant: TenantId, person: PersonId, body: WeChatBindingIn, request: Request, who: Who
) -> WeChatBindingOut:
    """WeChat notices reach a registered person once they are bound (binding again
    replaces the openid). The openid is sealed at rest and never shown; the audit log
    records who bound whom. Needs `people:write`."""
    bound = await call(
        request.app.state.upstreams.notices.BindWeChat(
            notices_pb.BindWeChatRequest(
                person=f"tenants/{tenant}/people/{person}", openid=body.openid
            ),
            metadata=call_metadata(who),
        )
    )
    return WeChatBindingOut(person=bound.person, bind_time=bound.bind_time.ToDatetime(tzinfo=UTC))

"""The people registry: residents and the people care scenarios serve.

A village keeps its residents, the elderly living alone, care recipients and
volunteers here, so scenario apps share one list instead of each keeping its own
spreadsheet of ID numbers. Three rules shape the code:

* Names, ID numbers and phone numbers are sealed (encrypted) before they reach a
  store; exact lookups by ID number or phone go through blind indexes.
* Callers see them masked (`张*`, `310***********1234`, `138****5678`) unless they
  hold `people:read_sensitive`.
* Every unmasked read states a purpose and leaves one entry in the hash-chained
  audit log; if that entry cannot be written, nothing unmasked is returned.
* An exact lookup by a sealed value (`id_number`, `phone`) answers "is this the
  number?", which recovers a masked value by guessing: it needs the sensitive scope
  and a purpose, is audited even when nothing matches, and is rate limited.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime

from services.empower.domain.audit import LOOKUP_ACTION, READ_ACTION, AuditLog, check_purpose
from services.empower.domain.lookup_limit import LookupLimit
from services.empower.domain.people_model import (
    Gender,
    Kind,
    NewPerson,
    Person,
    PersonChanges,
    PersonFilter,
    PersonPage,
    PersonRecord,
    person_etag,
    person_name,
)
from services.empower.domain.people_ports import PeopleStore
from services.kit import gb11643, paging, tenancy
from services.kit.errors import (
    Aborted,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.kit.filtering import parse_equalities
from services.kit.ids import new_id
from services.kit.masking import SENSITIVE_SCOPE, mask_id_number, mask_name, mask_phone
from services.kit.principal import Principal
from services.kit.sealing import Sealer, SealingError

READ_SCOPE = "people:read"
WRITE_SCOPE = "people:write"
ID_PREFIX = "pe"
SENSITIVE_FIELDS = ("name", "id_number", "phone")
ELDERLY_AGE = 60

_ID_NUMBER = re.compile(r"^\d{17}[\dX]\Z")
_MOBILE = re.compile(r"^1\d{10}\Z")
_REFERENCE = re.compile(r"^[A-Za-z0-9_.-]*\Z")
_TAG = re.compile(r"^[a-z0-9_-]+\Z")
_CARER = re.compile(r"^users/[A-Za-z0-9_.-]{1,100}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- validation -----------------------------------------------------------------


def normalise_id_number(value: str, field: str = "id_number") -> str:
    """An 18-character ID number with upper-case X, or INVALID_ARGUMENT naming `field`."""
    text = value.strip().upper()
    if not _ID_NUMBER.match(text):
        raise InvalidArgument.field(
            field, "must be 18 characters: 17 digits and a check character (0-9 or X)"
        )
    if gb11643.check_character(text[:17]) != text[17]:
        raise InvalidArgument.field(field, "the check character does not match (GB 11643)")
    try:
        born = id_number_birth_date(text)
    except ValueError:
        raise InvalidArgument.field(field, "does not contain a valid birth date") from None
    if born > datetime.now(UTC).date() or born.year < 1900:
        raise InvalidArgument.field(field, "contains an impossible birth date")
    return text


def id_number_birth_date(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def id_number_gender(id_number: str) -> Gender:
    """The 17th digit is odd for men and even for women."""
    return Gender.MALE if int(id_number[16]) % 2 else Gender.FEMALE


def normalise_phone(value: str, field: str = "phone") -> str:
    """A mainland mobile number as 11 digits (spaces, dashes and +86 are dropped)."""
    digits = re.sub(r"[\s-]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MOBILE.match(digits):
        raise InvalidArgument.field(field, "must be a mainland mobile number (1 and 10 digits)")
    return digits


def _check_name(value: str) -> str:
    text = " ".join(value.split())
    if not text or _CONTROL.search(text):
        raise InvalidArgument.field("name", "printable characters, at least one")
    return text


def _check_kind(value: str, field: str = "kind") -> Kind:
    try:
        return Kind(value)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise InvalidArgument.field(field, f"unknown kind {value[:32]!r}; known: {known}") from None


def _check_reference(value: str, field: str) -> str:
    if not _REFERENCE.match(value):
        raise InvalidArgument.field(field, "letters, digits, '_', '.' or '-'")
    return value


def _check_address(value: str) -> str:
    text = value.strip()
    if _CONTROL.search(text):
        raise InvalidArgument.field("address", "printable characters only")
    return text


def _check_user_name(value: str, field: str) -> str:
    text = value.strip()
    if text and not _CARER.match(text):
        raise InvalidArgument.field(field, "a user's resource name: 'users/{id}'")
    return text


def _check_tags(values: Sequence[str]) -> tuple[str, ...]:
    tags = tuple(dict.fromkeys(values))
    for i, tag in enumerate(tags):
        if not _TAG.match(tag):
            raise InvalidArgument.field(f"tags[{i}]", "a-z, 0-9, '_' or '-'")
    return tags


@dataclass(frozen=True)
class _Valid:
    """A NewPerson after validation and normalisation."""

    name: str
    id_number: str
    phone: str
    kind: Kind
    gender: Gender
    birth_date: date
    address: str
    building: str
    grid_cell: str
    tags: tuple[str, ...]
    carer: str
    user: str


def validate(new: NewPerson) -> _Valid:
    """Check and normalise every field; errors name the field at fault."""
    name = _check_name(new.name)
    id_number = normalise_id_number(new.id_number)
    phone = normalise_phone(new.phone) if new.phone.strip() else ""
    born = id_number_birth_date(id_number)
    if new.birth_date is not None and new.birth_date != born:
        raise InvalidArgument.field("birth_date", "does not match the ID number")
    gender = id_number_gender(id_number)
    try:
        given = Gender(new.gender or Gender.UNSPECIFIED)
    except ValueError:
        raise InvalidArgument.field("gender", "male, female or unspecified") from None
    if given is not Gender.UNSPECIFIED and given is not gender:
        raise InvalidArgument.field("gender", "does not match the ID number")
    return _Valid(
        name=name,
        id_number=id_number,
        phone=phone,
        kind=_check_kind(new.kind),
        gender=gender,
        birth_date=born,
        address=_check_address(new.address),
        building=_check_reference(new.building, "building"),
        grid_cell=_check_reference(new.grid_cell, "grid_cell"),
        tags=_check_tags(new.tags),
        carer=_check_user_name(new.carer, "carer"),
        user=_check_user_name(new.user, "user"),
    )


# --- sealing --------------------------------------------------------------------


def seal_record(
    sealer: Sealer,
    person_id: str,
    tenant: str,
    valid: _Valid,
    now: datetime,
    *,
    create_time: datetime | None = None,
    version: int = 1,
) -> PersonRecord:
    """The stored form: sensitive values sealed for this person and field."""
    return PersonRecord(
        id=person_id,
        tenant=tenant,
        kind=valid.kind.value,
        name_sealed=sealer.seal(valid.name, record=person_id, field="name"),
        id_number_sealed=sealer.seal(valid.id_number, record=person_id, field="id_number"),
        id_number_index=sealer.blind_index(valid.id_number, field="id_number"),
        phone_sealed=sealer.seal(valid.phone, record=person_id, field="phone")
        if valid.phone
        else "",
        phone_index=sealer.blind_index(valid.phone, field="phone") if valid.phone else "",
        gender=valid.gender.value,
        birth_date=valid.birth_date,
        address=valid.address,
        building=valid.building,
        grid_cell=valid.grid_cell,
        tags=valid.tags,
        carer=valid.carer,
        user=valid.user,
        create_time=create_time or now,
        update_time=now,
        version=version,
    )


def open_record(sealer: Sealer, record: PersonRecord) -> Person:
    """The person in plain text (masked False); an unopenable value is an internal error."""
    try:
        name = sealer.open(record.name_sealed, record=record.id, field="name")
        id_number = sealer.open(record.id_number_sealed, record=record.id, field="id_number")
        phone = (
            sealer.open(record.phone_sealed, record=record.id, field="phone")
            if record.phone_sealed
            else ""
        )
    except SealingError as exc:
        # The message names the record and field, never a value.
        raise DomainError(str(exc), reason="SEALED_VALUE_UNREADABLE") from None
    return Person(
        id=record.id,
        tenant=record.tenant,
        kind=Kind(record.kind),
        name=name,
        id_number=id_number,
        phone=phone,
        gender=Gender(record.gender),
        birth_date=record.birth_date,
        address=record.address,
        building=record.building,
        grid_cell=record.grid_cell,
        tags=record.tags,
        carer=record.carer,
        user=record.user,
        create_time=record.create_time,
        update_time=record.update_time,
        version=record.version,
        masked=False,
    )


def masked(person: Person) -> Person:
    return replace(
        person,
        name=mask_name(person.name),
        id_number=mask_id_number(person.id_number),
        phone=mask_phone(person.phone) if person.phone else "",
        masked=True,
    )


# --- the registry ---------------------------------------------------------------


def cares_for(caller: Principal, record: PersonRecord) -> bool:
    """Whether the caller is the person's assigned carer (a user, never an app)."""
    return bool(record.carer) and caller.kind == "user" and caller.subject == record.carer


_FILTERABLE = ("id_number", "phone", "kind", "building", "grid_cell")
# Filters on sealed values: exact lookups that reveal whether a guess is right.
SEALED_FILTERS = ("id_number", "phone")


class PeopleRegistry:
    """Registers people and answers reads, masked or audited."""

    def __init__(
        self,
        store: PeopleStore,
        audit: AuditLog,
        sealer: Sealer,
        clock: Callable[[], datetime] | None = None,
        lookup_limit: LookupLimit | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.sealer = sealer
        self._clock = clock or (lambda: datetime.now(UTC))
        self.lookup_limit = lookup_limit or LookupLimit(self._clock)

    @staticmethod
    def _require(caller: Principal, scope: str, what: str) -> None:
        if not caller.has_scope(scope):
            raise PermissionDenied(f"{what} needs the {scope!r} scope")

    @staticmethod
    def _subtree(caller: Principal, tenant: str | None, field: str = "parent") -> str:
        """The subtree a call works in: the asked tenant (visible to the caller) or its own."""
        if tenant is None:
            return caller.tenant
        tenancy.validate_path(tenant, field)
        if not caller.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        return tenant

    async def create_person(self, caller: Principal, tenant: str, new: NewPerson) -> Person:
        """Register a person in `tenant`; the answer is masked (a write reveals nothing).

        Another person with the same ID number in the tenant is ALREADY_EXISTS.
        """
        self._require(caller, WRITE_SCOPE, "registering people")
        subtree = self._subtree(caller, tenant)
        valid = validate(new)
        record = seal_record(self.sealer, new_id(ID_PREFIX), subtree, valid, self._clock())
        await self.store.insert_people(subtree, [record])
        return masked(open_record(self.sealer, record))

    async def create_people(
        self, caller: Principal, tenant: str, news: Sequence[NewPerson]
    ) -> list[Person]:
        """Register many people in one transaction (imports); all or none.

        A bad entry is INVALID_ARGUMENT naming it (`requests[3].person.id_number`).
        """
        self._require(caller, WRITE_SCOPE, "registering people")
        subtree = self._subtree(caller, tenant)
        now = self._clock()
        records = []
        for i, new in enumerate(news):
            try:
                valid = validate(new)
            except InvalidArgument as exc:
                raise exc.under(f"requests[{i}].person.") from None
            records.append(seal_record(self.sealer, new_id(ID_PREFIX), subtree, valid, now))
        await self.store.insert_people(subtree, records)
        return [masked(open_record(self.sealer, record)) for record in records]

    async def get_person(
        self, caller: Principal, tenant: str | None, person_id: str, purpose: str = ""
    ) -> Person:
        """One person; `tenant` None is the wildcard (`tenants/-/people/{id}`).

        Unmasked (for `people:read_sensitive`) only with a purpose, after the audit
        entry is written. The person's assigned carer reads them unmasked the same way
        when stating a purpose, and masked without one.
        """
        self._require(caller, READ_SCOPE, "reading people")
        reveal = caller.has_scope(SENSITIVE_SCOPE)
        reason = check_purpose(purpose) if reveal else ""
        subtree = self._subtree(caller, tenant, "name")
        record = await self.store.get_person(subtree, person_id)
        if record is None or not caller.can_see(record.tenant):
            raise NotFound(f"person {person_id!r} not found")
        if not reveal and purpose.strip() and cares_for(caller, record):
            reveal, reason = True, check_purpose(purpose)
        if reveal:
            await self.audit.record_read(
                caller, [person_name(record.tenant, record.id)], SENSITIVE_FIELDS, reason
            )
        person = open_record(self.sealer, record)
        return person if reveal else masked(person)

    def _filters(self, terms: Mapping[str, str]) -> PersonFilter:
        id_index = phone_index = ""
        if "id_number" in terms:
            value = normalise_id_number(terms["id_number"], "filter")
            id_index = self.sealer.blind_index(value, field="id_number")
        if "phone" in terms:
            value = normalise_phone(terms["phone"], "filter")
            phone_index = self.sealer.blind_index(value, field="phone")
        kind = _check_kind(terms["kind"], "filter").value if "kind" in terms else ""
        return PersonFilter(
            id_number_index=id_index,
            phone_index=phone_index,
            kind=kind,
            building=terms.get("building", ""),
            grid_cell=terms.get("grid_cell", ""),
        )

    async def list_people(
        self,
        caller: Principal,
        parent: str,
        filter_text: str = "",
        page_size: int = 0,
        page_token: str = "",
        purpose: str = "",
    ) -> PersonPage:
        """People in `parent`'s subtree by id; filters: id_number, phone, kind, building,
        grid_cell (exact). An unmasked page writes one audit entry naming its people;
        a lookup by ID number or phone writes one even when nothing matches."""
        self._require(caller, READ_SCOPE, "reading people")
        reveal = caller.has_scope(SENSITIVE_SCOPE)
        terms = parse_equalities(filter_text, _FILTERABLE)
        sealed = [f for f in SEALED_FILTERS if f in terms]
        if sealed and not reveal:
            raise PermissionDenied(
                f"filtering by {' or '.join(sealed)} needs the {SENSITIVE_SCOPE!r} scope: "
                "an exact match would reveal the masked value"
            )
        reason = check_purpose(purpose) if reveal else ""
        subtree = self._subtree(caller, parent)
        filters = self._filters(terms)
        if sealed:
            self.lookup_limit.take(caller.subject)
        limit = paging.page_size(page_size)
        # The token is bound to the blind indexes, never to a plain ID number or phone.
        query = {"parent": subtree, "filter": asdict(filters)}
        cursor = paging.decode_token(page_token, query)
        after = None
        if cursor is not None:
            after = cursor.get("id")
            if not isinstance(after, str):
                raise InvalidArgument.field("page_token", "is not a token this service issued")
        records = await self.store.list_people(subtree, filters, limit + 1, after)
        token = ""
        if len(records) > limit:
            records = records[:limit]
            token = paging.encode_token({"id": records[-1].id}, query)
        if reveal and (records or sealed):
            names = [person_name(r.tenant, r.id) for r in records]
            await self.audit.record_read(
                caller,
                names,
                SENSITIVE_FIELDS if records else tuple(sealed),
                reason,
                action=LOOKUP_ACTION if sealed else READ_ACTION,
            )
        people = [open_record(self.sealer, r) for r in records]
        if reveal:
            return PersonPage(people, token)
        # A carer stating a purpose sees the people assigned to them, audited.
        theirs = [r for r in records if cares_for(caller, r)] if purpose.strip() else []
        if theirs:
            await self.audit.record_read(
                caller,
                [person_name(r.tenant, r.id) for r in theirs],
                SENSITIVE_FIELDS,
                check_purpose(purpose),
            )
        shown = {r.id for r in theirs}
        return PersonPage([p if p.id in shown else masked(p) for p in people], token)

    async def update_person(
        self,
        caller: Principal,
        tenant: str | None,
        person_id: str,
        changes: PersonChanges,
        etag: str = "",
    ) -> Person:
        """Change some fields (a stale `etag` is ABORTED); the answer is masked."""
        self._require(caller, WRITE_SCOPE, "changing people")
        subtree = self._subtree(caller, tenant, "name")
        sealer = self.sealer
        now = self._clock()

        def change(record: PersonRecord) -> PersonRecord:
            if etag and etag != person_etag(record.id, record.version):
                raise Aborted(
                    "the person changed since you read it; read it again and retry",
                    reason="ETAG_MISMATCH",
                    metadata={"current_etag": person_etag(record.id, record.version)},
                )
            current = open_record(sealer, record)
            new = NewPerson(
                name=current.name if changes.name is None else changes.name,
                id_number=current.id_number if changes.id_number is None else changes.id_number,
                phone=current.phone if changes.phone is None else changes.phone,
                kind=current.kind if changes.kind is None else changes.kind,
                address=current.address if changes.address is None else changes.address,
                building=current.building if changes.building is None else changes.building,
                grid_cell=current.grid_cell if changes.grid_cell is None else changes.grid_cell,
                tags=current.tags if changes.tags is None else changes.tags,
                carer=current.carer if changes.carer is None else changes.carer,
                user=current.user if changes.user is None else changes.user,
            )
            return seal_record(
                sealer,
                record.id,
                record.tenant,
                validate(new),
                now,
                create_time=record.create_time,
                version=record.version + 1,
            )

        record = await self.store.update_person(subtree, person_id, change)
        return masked(open_record(sealer, record))

    async def delete_person(self, caller: Principal, tenant: str | None, person_id: str) -> None:
        self._require(caller, WRITE_SCOPE, "removing people")
        subtree = self._subtree(caller, tenant, "name")
        if not await self.store.delete_person(subtree, person_id):
            raise NotFound(f"person {person_id!r} not found")

"""Who a notice reaches: users from identity, people from the registry, resolved in-service.

The notice board (domain) asks this adapter to turn an audience into recipients and,
when a channel sends, for one recipient's contact. Phones are opened from their sealed
form only at that moment and never stored with the notice or the delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from services.empower.domain.identity_ports import IdentityStore
from services.empower.domain.model import User
from services.empower.domain.notices_model import Audience, Contact, Recipient, RecipientKind
from services.empower.domain.people_model import PersonFilter, parse_person_name
from services.empower.domain.people_ports import PeopleStore
from services.kit import tenancy
from services.kit.errors import InvalidArgument
from services.kit.sealing import Sealer

PAGE = 1000
OPENID_FIELD = "wechat_openid"


class WeChatBindings(Protocol):
    """Where sealed openids are kept (the notices store)."""

    async def bind_wechat(self, tenant: str, person: str, sealed: str, at: datetime) -> None: ...

    async def wechat_of(self, person: str) -> str | None: ...


MAX_AUDIENCE = 50_000


class RegistryAudience:
    """AudienceDirectory over the identity and people stores of this service."""

    def __init__(
        self,
        identity: IdentityStore,
        people: PeopleStore,
        sealer: Sealer,
        bindings: WeChatBindings | None = None,
    ) -> None:
        self.identity = identity
        self.people = people
        self.sealer = sealer
        self.bindings = bindings

    async def resolve(self, tenant: str, audience: Audience) -> list[Recipient]:
        if audience.recipients:
            return [r for r in [await self._named(tenant, n) for n in audience.recipients] if r]
        if audience.role:
            users = await self._users(tenant)
            return [
                Recipient(f"users/{u.id}", RecipientKind.USER)
                for u in users
                if audience.role in u.roles and not u.disabled
            ]
        subtree = tenancy.parse_parent(audience.tenant) if audience.tenant else tenant
        found = await self._people(
            subtree, PersonFilter(grid_cell=audience.grid_cell, kind=audience.person_kind)
        )
        if audience.tenant and not audience.person_kind:
            found += [
                Recipient(f"users/{u.id}", RecipientKind.USER)
                for u in await self._users(subtree)
                if not u.disabled
            ]
        # A person with their own account is that user: one delivery, read in-app.
        return list({r.name: r for r in found}.values())

    async def _named(self, tenant: str, name: str) -> Recipient | None:
        if name.startswith("users/"):
            user = await self.identity.get_user(tenant, name.removeprefix("users/"))
            return Recipient(name, RecipientKind.USER) if user and not user.disabled else None
        try:
            person_tenant, person_id = parse_person_name(name)
        except InvalidArgument:
            return None
        if person_tenant is None or not tenancy.contains(tenant, person_tenant):
            return None
        person = await self.people.get_person(tenant, person_id)
        return Recipient(name, RecipientKind.PERSON) if person else None

    async def _users(self, tenant: str) -> list[User]:
        users: list[User] = []
        after: str | None = None
        while len(users) < MAX_AUDIENCE:
            page = await self.identity.list_users(tenant, tenant, PAGE, after)
            users.extend(page)
            if len(page) < PAGE:
                break
            after = page[-1].id
        return users

    async def _people(self, tenant: str, filters: PersonFilter) -> list[Recipient]:
        """People as recipients: their own account when they have one, else the person
        (reached by SMS or WeChat)."""
        found: list[Recipient] = []
        after: str | None = None
        while len(found) < MAX_AUDIENCE:
            page = await self.people.list_people(tenant, filters, PAGE, after)
            found.extend(
                Recipient(p.user, RecipientKind.USER)
                if p.user
                else Recipient(
                    tenancy.tenant_name(p.tenant) + f"/people/{p.id}", RecipientKind.PERSON
                )
                for p in page
            )
            if len(page) < PAGE:
                break
            after = page[-1].id
        return found

    async def contact(self, recipient: Recipient) -> Contact:
        if recipient.kind is RecipientKind.USER:
            return Contact(recipient.name)
        tenant, person_id = parse_person_name(recipient.name)
        record = await self.people.get_person(tenant or tenancy.ALL_TENANTS, person_id)
        if record is None:
            return Contact(recipient.name)
        phone = ""
        if record.phone_sealed:
            phone = self.sealer.open(record.phone_sealed, record=record.id, field="phone")
        openid = ""
        sealed = await self.bindings.wechat_of(recipient.name) if self.bindings else None
        if sealed:
            openid = self.sealer.open(sealed, record=recipient.name, field=OPENID_FIELD)
        return Contact(recipient.name, phone=phone, wechat_openid=openid)

    async def bind_wechat(self, tenant: str, person: str, openid: str) -> bool:
        person_tenant, person_id = parse_person_name(person)
        if self.bindings is None or person_tenant is None:
            return False
        record = await self.people.get_person(tenant, person_id)
        if record is None or record.tenant != person_tenant:
            return False
        sealed = self.sealer.seal(openid, record=person, field=OPENID_FIELD)
        await self.bindings.bind_wechat(person_tenant, person, sealed, datetime.now(UTC))
        return True

"""The notice board: send notices to an audience, deliver them through channels, receipts.

Why it is built this way:

* A notice's audience is resolved once, when it is sent, into one delivery per
  recipient and channel: in-app for users (who sign in), SMS and WeChat for the people
  a village registered. An audience that reaches nobody on the chosen channels is
  refused (INVALID_ARGUMENT on `notice.audience`), never sent into the void; only a
  platform service's notice (a scenario's push on install, to whoever qualifies) is
  kept with no deliveries, as a record that nobody qualified then.
* Deliveries move through GovStack's messaging states: pending -> queued -> sent ->
  delivered, or failed. A failed attempt that may succeed later is retried with a
  growing back-off for up to 24 hours after the notice was sent, then given up.
* The audit log records who sent which notice and when, never its title or text;
  read receipts are kept on the delivery (who read it and when).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.empower.domain import facts
from services.empower.domain.audit import AuditLog
from services.empower.domain.notices_model import (
    Audience,
    Channel,
    ChannelError,
    Delivery,
    DeliveryState,
    Notice,
    Recipient,
    RecipientKind,
)
from services.empower.domain.notices_ports import AudienceDirectory, NoticeChannel, NoticesStore
from services.empower.domain.people_model import Kind
from services.empower.domain.roles import ROLES
from services.kit import paging, tenancy
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.principal import Principal

NOTICE_PREFIX = "nt"
DELIVERY_PREFIX = "dl"
SEND_ACTION = "notices.send"
MAX_TITLE = 100
MAX_BODY = 2000
MAX_RECIPIENTS = 1000
RETRY_FOR = timedelta(hours=24)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
# Which kind of recipient each channel reaches.
REACHES = {
    Channel.IN_APP: RecipientKind.USER,
    Channel.SMS: RecipientKind.PERSON,
    Channel.WECHAT: RecipientKind.PERSON,
}

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")
_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_REFERENCE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_RECIPIENT = re.compile(
    r"^(users/[A-Za-z0-9_-]{1,64}|tenants/[a-z0-9-]{1,250}/people/[A-Za-z0-9_-]{1,64})$"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, ... minutes after each failed attempt, at most an hour."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)


def _text(value: str, field: str, maximum: int) -> str:
    text = value.strip()
    if not text or len(text) > maximum or _CONTROL.search(text):
        raise InvalidArgument.field(field, f"1 to {maximum} printable characters")
    return text


def _content(notice: Notice) -> tuple[object, ...]:
    """What a retry must repeat: the words, who it goes to and how."""
    a = notice.audience
    audience = (a.tenant, a.grid_cell, a.role, tuple(a.recipients), a.person_kind)
    return (notice.title, notice.body, audience, tuple(notice.channels))


def _check_audience(audience: Audience) -> Audience:
    given = [
        bool(audience.tenant),
        bool(audience.grid_cell),
        bool(audience.role),
        bool(audience.recipients),
    ]
    if sum(given) != 1:
        raise InvalidArgument.field(
            "notice.audience", "name exactly one of tenant, grid_cell, role or recipients"
        )
    if audience.person_kind:
        if audience.person_kind not in {k.value for k in Kind}:
            raise InvalidArgument.field(
                "notice.audience.person_kind",
                f"unknown kind; known: {', '.join(k.value for k in Kind)}",
            )
        if not (audience.tenant or audience.grid_cell):
            raise InvalidArgument.field(
                "notice.audience.person_kind", "narrows a tenant or grid_cell audience only"
            )
    if audience.tenant:
        tenancy.parse_parent(audience.tenant, "notice.audience.tenant")
    if audience.grid_cell and not _REFERENCE.match(audience.grid_cell):
        raise InvalidArgument.field("notice.audience.grid_cell", "a grid cell id")
    if audience.role and audience.role not in ROLES:
        raise InvalidArgument.field(
            "notice.audience.role", f"unknown role; known: {', '.join(sorted(ROLES))}"
        )
    if len(audience.recipients) > MAX_RECIPIENTS:
        raise InvalidArgument.field("notice.audience.recipients", f"at most {MAX_RECIPIENTS}")
    for i, name in enumerate(audience.recipients):
        if not _RECIPIENT.match(name):
            raise InvalidArgument.field(
                f"notice.audience.recipients[{i}]",
                "a user ('users/{id}') or a person ('tenants/{tenant}/people/{id}')",
            )
    return audience


class NoticeBoard:
    """Sends notices, delivers them through the channels it was given, takes receipts."""

    def __init__(
        self,
        store: NoticesStore,
        directory: AudienceDirectory,
        channels: Mapping[Channel, NoticeChannel],
        audit: AuditLog,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.channels = dict(channels)
        self.audit = audit
        self._clock = clock or (lambda: datetime.now(UTC))

    async def send(
        self,
        caller: Principal,
        tenant: str,
        *,
        title: str,
        body: str,
        audience: Audience,
        channels: Sequence[Channel],
        request_id: str,
    ) -> Notice:
        if not caller.can_see(tenant):
            raise NotFound(f"tenant {tenancy.tenant_name(tenant)!r} not found")
        if not _REQUEST_ID.match(request_id):
            raise InvalidArgument.field(
                "request_id", "required: 1 to 128 letters, digits, '_', '.', ':' or '-'"
            )
        wanted = tuple(dict.fromkeys(channels or (Channel.IN_APP,)))
        for channel in wanted:
            if channel not in self.channels:
                raise InvalidArgument.field(
                    "notice.channels", f"{channel.value} is not configured on this platform"
                )
        audience = _check_audience(audience)
        if audience.tenant:
            target = tenancy.parse_parent(audience.tenant, "notice.audience.tenant")
            if not tenancy.contains(tenant, target):
                raise InvalidArgument.field(
                    "notice.audience.tenant", "must be the sending node or below it"
                )
        recipients = await self.directory.resolve(tenant, audience)
        now = self._clock()
        notice = Notice(
            id=new_id(NOTICE_PREFIX),
            tenant=tenant,
            title=_text(title, "notice.title", MAX_TITLE),
            body=_text(body, "notice.body", MAX_BODY),
            audience=audience,
            channels=wanted,
            sender=caller.subject,
            request_id=request_id,
            create_time=now,
        )
        deliveries = [
            Delivery(
                id=new_id(DELIVERY_PREFIX),
                notice_id=notice.id,
                tenant=tenant,
                recipient=recipient.name,
                channel=channel,
                state=DeliveryState.PENDING,
                attempts=0,
                last_error="",
                next_attempt_time=now,
                read_time=None,
                create_time=now,
                update_time=now,
            )
            for recipient in recipients
            for channel in wanted
            if REACHES[channel] is recipient.kind
        ]
        if not deliveries and caller.kind != "service":
            reached = "/".join(c.value for c in wanted)
            raise InvalidArgument.field(
                "notice.audience", f"reaches nobody by {reached}: the audience is empty"
            )
        stored = await self.store.insert_notice(caller.tenant, notice, deliveries)
        if stored.id != notice.id and _content(stored) != _content(notice):
            # Not a retry: answering the first notice would hide that this one was not sent.
            raise FailedPrecondition(
                "this request_id was already used for another notice; use a new one",
                reason="REQUEST_ID_REUSED",
            )
        if stored.id == notice.id:
            # Who sent what notice to how many, and when; never its title or text.
            await self.audit.record_action(
                caller, SEND_ACTION, [stored.resource_name], [f"deliveries:{len(deliveries)}"]
            )
        return stored

    async def get(self, caller: Principal, tenant: str, notice_id: str) -> Notice:
        if not caller.can_see(tenant):
            raise NotFound(f"notice {notice_id!r} not found")
        found = await self.store.get_notice(caller.tenant, tenant, notice_id)
        if found is None:
            raise NotFound(f"notice {notice_id!r} not found")
        return found

    async def list_notices(
        self, caller: Principal, parent: str, page_size: int, page_token: str
    ) -> tuple[list[Notice], str]:
        if not caller.can_see(parent):
            raise NotFound(f"tenant {tenancy.tenant_name(parent)!r} not found")
        size = paging.page_size(page_size)
        query = {"parent": parent}
        cursor = paging.decode_token(page_token, query)
        before = cursor.get("b") if cursor else None
        if before is not None and not isinstance(before, str):
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        found = await self.store.list_notices(parent, size + 1, before)
        token = paging.encode_token({"b": found[size - 1].id}, query) if len(found) > size else ""
        return found[:size], token

    async def deliveries(
        self, caller: Principal, tenant: str, notice_id: str, page_size: int, page_token: str
    ) -> tuple[list[Delivery], str]:
        notice = await self.get(caller, tenant, notice_id)
        size = paging.page_size(page_size)
        query = {"notice": notice.resource_name}
        cursor = paging.decode_token(page_token, query)
        after = cursor.get("a") if cursor else None
        if after is not None and not isinstance(after, str):
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        found = await self.store.list_deliveries(tenant, notice.id, size + 1, after)
        token = paging.encode_token({"a": found[size - 1].id}, query) if len(found) > size else ""
        return found[:size], token

    # --- the recipient's side ------------------------------------------------------

    async def my_notices(self, caller: Principal, limit: int) -> list[tuple[Delivery, Notice]]:
        """The caller's in-app notices; those sent become delivered as they are listed."""
        found = await self.store.deliveries_to(
            caller.subject, Channel.IN_APP, paging.page_size(limit)
        )
        now = self._clock()
        shown = []
        for delivery, notice in found:
            if delivery.state is DeliveryState.SENT:
                delivery = replace(delivery, state=DeliveryState.DELIVERED, update_time=now)
                await self.store.update_delivery(delivery, facts.NOTICE_DELIVERED)
            shown.append((delivery, notice))
        return shown

    async def mark_read(
        self, caller: Principal, tenant: str, delivery_id: str, notice_id: str = ""
    ) -> Delivery:
        """A read receipt from the recipient themselves; reading again changes nothing.
        The name must be the delivery's own: another notice's id in it is not found."""
        found = await self.store.get_delivery(tenancy.ALL_TENANTS, delivery_id)
        if (
            found is None
            or found.tenant != tenant
            or found.recipient != caller.subject
            or (notice_id and found.notice_id != notice_id)
        ):
            raise NotFound(f"delivery {delivery_id!r} not found")
        if found.read_time is not None:
            return found
        if found.state in (DeliveryState.PENDING, DeliveryState.QUEUED, DeliveryState.FAILED):
            raise FailedPrecondition("this notice has not reached you yet")
        now = self._clock()
        read = replace(found, state=DeliveryState.DELIVERED, read_time=now, update_time=now)
        await self.store.update_delivery(read, facts.NOTICE_READ)
        return read

    async def bind_wechat(self, caller: Principal, person: str, openid: str) -> datetime:
        """Bind a registered person to their WeChat openid, so WeChat notices reach them.

        The audit chain records who bound whom, never the openid."""
        if not _OPENID.match(openid):
            raise InvalidArgument.field("openid", "1 to 64 letters, digits, '_' or '-'")
        tenant = tenancy.parse_child_name(person, "people", "person")[0]
        if tenant is None or not caller.can_see(tenant):
            raise NotFound(f"person {person!r} not found")
        if not await self.directory.bind_wechat(tenant, person, openid):
            raise NotFound(f"person {person!r} not found")
        await self.audit.record_action(caller, "notices.bind_wechat", [person], ["wechat_openid"])
        return self._clock()

    # --- delivery ----------------------------------------------------------------

    async def dispatch_due(self, limit: int = 200) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        now = self._clock()
        due = await self.store.due_deliveries(now, limit)
        for delivery, notice in due:
            await self._attempt(delivery, notice, now)
        return len(due)

    async def _attempt(self, delivery: Delivery, notice: Notice, now: datetime) -> None:
        channel = self.channels.get(delivery.channel)
        attempts = delivery.attempts + 1
        queued = replace(delivery, state=DeliveryState.QUEUED, update_time=now)
        await self.store.update_delivery(queued)
        try:
            if channel is None:
                raise ChannelError(
                    f"{delivery.channel.value} is no longer configured", retryable=False
                )
            user = delivery.recipient.startswith("users/")
            kind = RecipientKind.USER if user else RecipientKind.PERSON
            contact = await self.directory.contact(Recipient(delivery.recipient, kind))
            confirmed = await channel.send(contact, notice.title, notice.body)
        except ChannelError as exc:
            gave_up = not exc.retryable or now - notice.create_time >= RETRY_FOR
            await self.store.update_delivery(
                replace(
                    queued,
                    state=DeliveryState.FAILED if gave_up else DeliveryState.QUEUED,
                    attempts=attempts,
                    last_error=str(exc)[:200],
                    next_attempt_time=now + retry_delay(attempts),
                ),
                facts.NOTICE_FAILED if gave_up else "",
            )
            return
        await self.store.update_delivery(
            replace(
                queued,
                state=DeliveryState.DELIVERED if confirmed else DeliveryState.SENT,
                attempts=attempts,
                last_error="",
            ),
            facts.NOTICE_DELIVERED if confirmed else facts.NOTICE_SENT,
        )

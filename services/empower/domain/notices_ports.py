"""What the notice board needs: storage, the audience's directory, and channels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.empower.domain.notices_model import (
    Audience,
    Channel,
    Contact,
    Delivery,
    Notice,
    Recipient,
)


class NoticesStore(Protocol):
    async def insert_notice(
        self, subtree: str, notice: Notice, deliveries: Sequence[Delivery]
    ) -> Notice:
        """Store the notice and its deliveries in one transaction; when the tenant already
        has a notice with its request_id, return that one and store nothing."""
        ...

    async def get_notice(self, subtree: str, tenant: str, notice_id: str) -> Notice | None:
        """With `counts` filled in: deliveries per state, and "read"."""
        ...

    async def list_notices(self, subtree: str, limit: int, before_id: str | None) -> list[Notice]:
        """Notices of the subtree, newest first (without counts)."""
        ...

    async def list_deliveries(
        self, subtree: str, notice_id: str, limit: int, after_id: str | None
    ) -> list[Delivery]: ...

    async def get_delivery(self, subtree: str, delivery_id: str) -> Delivery | None: ...

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, Notice]]:
        """Pending or queued deliveries whose next attempt is due, oldest first."""
        ...

    async def update_delivery(self, delivery: Delivery, fact: str = "") -> None:
        """Store the delivery's new state and, when `fact` names one, its fact in the
        outbox, in one transaction."""
        ...

    async def bind_wechat(self, tenant: str, person: str, sealed: str, at: datetime) -> None:
        """Keep the person's sealed openid, replacing an earlier one."""
        ...

    async def wechat_of(self, person: str) -> str | None:
        """The person's sealed openid, if bound."""
        ...

    async def deliveries_to(
        self, recipient: str, channel: Channel, limit: int
    ) -> list[tuple[Delivery, Notice]]:
        """One recipient's deliveries on a channel, newest first."""
        ...


class AudienceDirectory(Protocol):
    async def resolve(self, tenant: str, audience: Audience) -> list[Recipient]:
        """The users and people an audience names inside `tenant`'s subtree. Named
        recipients that do not exist there are left out."""
        ...

    async def contact(self, recipient: Recipient) -> Contact:
        """The recipient's phone or WeChat binding, read when a channel sends."""
        ...

    async def bind_wechat(self, tenant: str, person: str, openid: str) -> bool:
        """Bind a person of `tenant`'s subtree to a WeChat openid; False when there is
        no such person there."""
        ...


class NoticeChannel(Protocol):
    """One way of reaching people: in-app, SMS, WeChat. `send` raises ChannelError."""

    channel: Channel

    async def send(self, contact: Contact, title: str, body: str) -> bool:
        """Hand the message over; True when the channel confirms delivery already."""
        ...

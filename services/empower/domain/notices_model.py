"""Notices and their deliveries, with the delivery states of GovStack's messaging block."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.kit import tenancy

NOTICES = "notices"
DELIVERIES = "deliveries"


class Channel(StrEnum):
    IN_APP = "in_app"
    SMS = "sms"
    WECHAT = "wechat"


class DeliveryState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class RecipientKind(StrEnum):
    USER = "user"  # signs in: reads in-app notices
    PERSON = "person"  # registered by the village: reached by SMS or WeChat


@dataclass(frozen=True)
class Audience:
    """Exactly one of: a tenant node, a grid cell, a role, or named recipients; a person
    kind may narrow the first two."""

    tenant: str = ""
    grid_cell: str = ""
    role: str = ""
    recipients: tuple[str, ...] = ()
    # Narrows a tenant or grid cell audience to the people registered as this kind.
    person_kind: str = ""


@dataclass(frozen=True)
class Recipient:
    name: str  # `users/{id}` or `tenants/{tenant}/people/{id}`
    kind: RecipientKind


@dataclass(frozen=True)
class Notice:
    id: str
    tenant: str
    title: str
    body: str
    audience: Audience
    channels: tuple[Channel, ...]
    sender: str
    request_id: str
    create_time: datetime
    counts: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{NOTICES}/{self.id}"


@dataclass(frozen=True)
class Delivery:
    id: str
    notice_id: str
    tenant: str
    recipient: str
    channel: Channel
    state: DeliveryState
    attempts: int
    last_error: str
    next_attempt_time: datetime
    read_time: datetime | None
    create_time: datetime
    update_time: datetime

    @property
    def resource_name(self) -> str:
        return (
            f"{tenancy.tenant_name(self.tenant)}/{NOTICES}/{self.notice_id}/{DELIVERIES}/{self.id}"
        )


@dataclass(frozen=True)
class Contact:
    """How a channel reaches one recipient: opened only to send, never stored here."""

    recipient: str
    phone: str = ""
    wechat_openid: str = ""


class ChannelError(Exception):
    """A channel could not send; `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable

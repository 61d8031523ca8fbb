"""JSON shapes of notices and their deliveries (GovStack messaging states)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.contract import limited
from grassroots.empower.v1 import notices_service_pb2 as pb

ChannelName = Literal["in_app", "sms", "wechat"]
DeliveryStateName = Literal["pending", "queued", "sent", "delivered", "failed"]


class AudienceIn(BaseModel):
    """Exactly one of the four (the service says which is wrong)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tenant: str = Field("", description="everyone registered in this node: tenants/{tenant}")
    grid_cell: str = Field("", description="everyone registered in this grid cell")
    role: str = Field("", description="every user with this role, e.g. grid_worker")
    recipients: list[str] = Field(
        default_factory=list, description="users/{id} or tenants/{tenant}/people/{id}"
    )
    person_kind: str = limited(
        pb.Audience,
        "person_kind",
        "",
        description="with tenant or grid_cell: only the people registered as this kind, "
        "e.g. elderly_alone",
    )


class NoticeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str
    body: str
    audience: AudienceIn
    channels: list[ChannelName] = Field(default_factory=list, description="empty: in_app")
    request_id: str


class NoticeOut(BaseModel):
    id: str
    name: str
    title: str
    body: str
    audience: AudienceIn
    channels: list[ChannelName]
    sender: str
    create_time: datetime
    delivery_counts: dict[str, int]


class NoticeList(BaseModel):
    notices: list[NoticeOut]
    next_page_token: str


class DeliveryOut(BaseModel):
    id: str
    name: str
    recipient: str
    channel: ChannelName
    state: DeliveryStateName
    attempts: int
    last_error: str
    read_time: datetime | None
    update_time: datetime


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    next_page_token: str


class MyNoticeOut(DeliveryOut):
    """One of the caller's own in-app deliveries, with its notice's title and text."""

    notice: str = Field(description="the notice's resource name")
    title: str
    body: str


class MyNoticeList(BaseModel):
    notices: list[MyNoticeOut] = Field(
        description="the caller's in-app deliveries, newest first; listing marks them delivered"
    )


class WeChatBindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    openid: str = limited(
        pb.BindWeChatRequest, "openid", description="the person's openid under the official account"
    )


class WeChatBindingOut(BaseModel):
    person: str
    bind_time: datetime

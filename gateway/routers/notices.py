"""REST for notices: send to a node, a grid cell, a role or named people; follow delivery.

Sending needs `notices:send`, reading `empower:read`. A recipient reads their own in-app
notices at `/v1/me/notices` and gives a read receipt with `...deliveries/{delivery}:markRead`
(any signed-in caller; the service answers only the caller's own deliveries).
Deliveries move through pending, queued, sent, delivered and failed (retried for up to
24 hours); the audit log keeps who sent which notice and when, never its text.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, Security

from gateway.auth import access, call_metadata, calls
from gateway.errors import call
from gateway.paths import TenantId, parent, rest_path
from gateway.schemas.notices import (
    AudienceIn,
    DeliveryList,
    DeliveryOut,
    MyNoticeList,
    MyNoticeOut,
    NoticeCreate,
    NoticeList,
    NoticeOut,
)
from grassroots.empower.v1 import notices_service_pb2 as pb
from services.kit.principal import Principal

SERVICE = "grassroots.empower.v1.NoticesService"
router = APIRouter(prefix="/v1/tenants/{tenant}/notices", tags=["notices"])
# The caller's own notices, whatever their tenant: `/v1/me` is the caller (ADR 9).
me_router = APIRouter(prefix="/v1/me", tags=["notices"])
Who = Annotated[Principal, Security(access("empower"))]
DeliveryId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="delivery id")]
NoticeId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="notice id")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
PageToken = Annotated[str, Query(max_length=512)]

_CHANNELS = {
    "in_app": pb.Notice.CHANNEL_IN_APP,
    "sms": pb.Notice.CHANNEL_SMS,
    "wechat": pb.Notice.CHANNEL_WECHAT,
}
_CHANNEL_NAMES = {v: k for k, v in _CHANNELS.items()}
_STATE_NAMES = {
    pb.Delivery.STATE_PENDING: "pending",
    pb.Delivery.STATE_QUEUED: "queued",
    pb.Delivery.STATE_SENT: "sent",
    pb.Delivery.STATE_DELIVERED: "delivered",
    pb.Delivery.STATE_FAILED: "failed",
}


def notice_out(notice: pb.Notice) -> NoticeOut:
    return NoticeOut(
        id=notice.name.rsplit("/", 1)[-1],
        name=notice.name,
        title=notice.title,
        body=notice.body,
        audience=AudienceIn(
            tenant=notice.audience.tenant,
            grid_cell=notice.audience.grid_cell,
            role=notice.audience.role,
            recipients=list(notice.audience.recipients),
            person_kind=notice.audience.person_kind,
        ),
        channels=[_CHANNEL_NAMES[c] for c in notice.channels],  # type: ignore[misc]
        sender=notice.sender,
        create_time=notice.create_time.ToDatetime(tzinfo=UTC),
        delivery_counts=dict(notice.delivery_counts),
    )


def delivery_out(delivery: pb.Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.name.rsplit("/", 1)[-1],
        name=delivery.name,
        recipient=delivery.recipient,
        channel=_CHANNEL_NAMES[delivery.channel],  # type: ignore[arg-type]
        state=_STATE_NAMES[delivery.state],  # type: ignore[arg-type]
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        read_time=delivery.read_time.ToDatetime(tzinfo=UTC)
        if delivery.HasField("read_time")
        else None,
        update_time=delivery.update_time.ToDatetime(tzinfo=UTC),
    )


@router.post("", status_code=201, response_model=NoticeOut, summary="Send a notice")
@calls(SERVICE, "CreateNotice")
async def create_notice(
    tenant: TenantId, body: NoticeCreate, request: Request, response: Response, who: Who
) -> NoticeOut:
    """One delivery per recipient and channel; an audience that reaches nobody is 400
    naming `audience`."""
    created = await call(
        request.app.state.upstreams.notices.CreateNotice(
            pb.CreateNoticeRequest(
                parent=parent(tenant),
                notice=pb.Notice(
                    title=body.title,
                    body=body.body,
                    audience=pb.Audience(
                        tenant=body.audience.tenant,
                        grid_cell=body.audience.grid_cell,
                        role=body.audience.role,
                        recipients=body.audience.recipients,
                        person_kind=body.audience.person_kind,
                    ),
                    channels=[_CHANNELS[c] for c in body.channels],
                ),
                request_id=body.request_id,
            ),
            metadata=call_metadata(who),
        ),
        strip_prefix="notice.",
    )
    response.headers["Location"] = rest_path(created.name)
    return notice_out(created)


@router.get("", response_model=NoticeList, summary="List notices sent")
@calls(SERVICE, "ListNotices")
async def list_notices(
    tenant: TenantId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> NoticeList:
    listed = await call(
        request.app.state.upstreams.notices.ListNotices(
            pb.ListNoticesRequest(
                parent=parent(tenant), page_size=page_size, page_token=page_token
            ),
            metadata=call_metadata(who),
        )
    )
    return NoticeList(
        notices=[notice_out(n) for n in listed.notices], next_page_token=listed.next_page_token
    )


@router.get("/{notice}", response_model=NoticeOut, summary="Get a notice and its counts")
@calls(SERVICE, "GetNotice")
async def get_notice(tenant: TenantId, notice: NoticeId, request: Request, who: Who) -> NoticeOut:
    found = await call(
        request.app.state.upstreams.notices.GetNotice(
            pb.GetNoticeRequest(name=f"{parent(tenant)}/notices/{notice}"),
            metadata=call_metadata(who),
        )
    )
    return notice_out(found)


@router.get("/{notice}/deliveries", response_model=DeliveryList, summary="Its deliveries")
@calls(SERVICE, "ListDeliveries")
async def list_deliveries(
    tenant: TenantId,
    notice: NoticeId,
    request: Request,
    who: Who,
    page_size: PageSize = 50,
    page_token: PageToken = "",
) -> DeliveryList:
    """Each recipient and channel with its state, attempts, last error and read time."""
    listed = await call(
        request.app.state.upstreams.notices.ListDeliveries(
            pb.ListDeliveriesRequest(
                parent=f"{parent(tenant)}/notices/{notice}",
                page_size=page_size,
                page_token=page_token,
            ),
            metadata=call_metadata(who),
        )
    )
    return DeliveryList(
        deliveries=[delivery_out(d) for d in listed.deliveries],
        next_page_token=listed.next_page_token,
    )


@me_router.get("/notices", response_model=MyNoticeList, summary="Your own in-app notices")
@calls(SERVICE, "ListMyNotices")
async def list_my_notices(
    request: Request, who: Who, page_size: Annotated[int, Query(ge=1, le=200)] = 50
) -> MyNoticeList:
    """The in-app notices sent to you (by name, role, grid cell or node), newest first,
    with their title and text; listing them marks them delivered. Others' never appear."""
    listed = await call(
        request.app.state.upstreams.notices.ListMyNotices(
            pb.ListMyNoticesRequest(page_size=page_size), metadata=call_metadata(who)
        )
    )
    return MyNoticeList(
        notices=[
            MyNoticeOut(
                **delivery_out(d).model_dump(),
                notice=d.name.rsplit("/deliveries/", 1)[0],
                title=d.title,
                body=d.body,
            )
            for d in listed.deliveries
        ]
    )


@router.post(
    "/{notice}/deliveries/{delivery}:markRead",
    response_model=DeliveryOut,
    summary="Mark a notice sent to you as read",
)
@calls(SERVICE, "MarkNoticeRead")
async def mark_notice_read(
    tenant: TenantId, notice: NoticeId, delivery: DeliveryId, request: Request, who: Who
) -> DeliveryOut:
    """A read receipt: only the delivery's recipient may give one (another caller gets
    404). The delivery's `name` is in your list at `/v1/me/notices`."""
    marked = await call(
        request.app.state.upstreams.notices.MarkNoticeRead(
            pb.MarkNoticeReadRequest(
                name=f"{parent(tenant)}/notices/{notice}/deliveries/{delivery}"
            ),
            metadata=call_metadata(who),
        )
    )
    return delivery_out(marked)

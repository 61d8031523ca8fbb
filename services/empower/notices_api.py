"""gRPC adapter of the notice board: messages in, board calls, messages out."""

from __future__ import annotations

from grassroots.empower.v1 import notices_service_pb2 as pb
from grassroots.empower.v1 import notices_service_pb2_grpc as pb_grpc
from services.empower.domain.notices import NoticeBoard
from services.empower.domain.notices_model import (
    Audience,
    Channel,
    Delivery,
    DeliveryState,
    Notice,
)
from services.empower.forms_api import parse_nested
from services.kit import tenancy
from services.kit.context import require_principal
from services.kit.errors import InvalidArgument
from services.kit.timestamps import to_timestamp

_CHANNELS = {
    Channel.IN_APP: pb.Notice.CHANNEL_IN_APP,
    Channel.SMS: pb.Notice.CHANNEL_SMS,
    Channel.WECHAT: pb.Notice.CHANNEL_WECHAT,
}
_CHANNELS_BACK = {v: k for k, v in _CHANNELS.items()}
_STATES = {
    DeliveryState.PENDING: pb.Delivery.STATE_PENDING,
    DeliveryState.QUEUED: pb.Delivery.STATE_QUEUED,
    DeliveryState.SENT: pb.Delivery.STATE_SENT,
    DeliveryState.DELIVERED: pb.Delivery.STATE_DELIVERED,
    DeliveryState.FAILED: pb.Delivery.STATE_FAILED,
}


def _notice_name(name: str, field: str = "name") -> tuple[str, str]:
    tenant, notice_id = tenancy.parse_child_name(name, "notices", field)
    if tenant is None:
        raise InvalidArgument.field(field, "name the notice's tenant, not '-'")
    return tenant, notice_id


def notice_to_proto(notice: Notice) -> pb.Notice:
    return pb.Notice(
        name=notice.resource_name,
        title=notice.title,
        body=notice.body,
        audience=pb.Audience(
            tenant=notice.audience.tenant,
            grid_cell=notice.audience.grid_cell,
            role=notice.audience.role,
            recipients=list(notice.audience.recipients),
            person_kind=notice.audience.person_kind,
        ),
        channels=[_CHANNELS[c] for c in notice.channels],
        sender=notice.sender,
        create_time=to_timestamp(notice.create_time),
        delivery_counts=dict(notice.counts),
    )


def delivery_to_proto(delivery: Delivery, notice: Notice | None = None) -> pb.Delivery:
    return pb.Delivery(
        name=delivery.resource_name,
        recipient=delivery.recipient,
        channel=_CHANNELS[delivery.channel],
        state=_STATES[delivery.state],
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        read_time=to_timestamp(delivery.read_time),
        update_time=to_timestamp(delivery.update_time),
        title=notice.title if notice else "",
        body=notice.body if notice else "",
    )


class NoticesServicer(pb_grpc.NoticesServiceServicer):
    def __init__(self, board: NoticeBoard) -> None:
        self.board = board

    async def CreateNotice(self, request: pb.CreateNoticeRequest, context: object) -> pb.Notice:
        given = request.notice
        channels = []
        for i, channel in enumerate(given.channels):
            known = _CHANNELS_BACK.get(channel)
            if known is None:
                raise InvalidArgument.field(f"notice.channels[{i}]", "is not a known channel")
            channels.append(known)
        notice = await self.board.send(
            require_principal(),
            tenancy.parse_parent(request.parent),
            title=given.title,
            body=given.body,
            audience=Audience(
                tenant=given.audience.tenant,
                grid_cell=given.audience.grid_cell,
                role=given.audience.role,
                recipients=tuple(given.audience.recipients),
                person_kind=given.audience.person_kind,
            ),
            channels=channels,
            request_id=request.request_id,
        )
        tenant, notice_id = _notice_name(notice.resource_name)
        return notice_to_proto(await self.board.get(require_principal(), tenant, notice_id))

    async def GetNotice(self, request: pb.GetNoticeRequest, context: object) -> pb.Notice:
        tenant, notice_id = _notice_name(request.name)
        return notice_to_proto(await self.board.get(require_principal(), tenant, notice_id))

    async def ListNotices(
        self, request: pb.ListNoticesRequest, context: object
    ) -> pb.ListNoticesResponse:
        notices, token = await self.board.list_notices(
            require_principal(),
            tenancy.parse_parent(request.parent),
            request.page_size,
            request.page_token,
        )
        return pb.ListNoticesResponse(
            notices=[notice_to_proto(n) for n in notices], next_page_token=token
        )

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: object
    ) -> pb.ListDeliveriesResponse:
        tenant, notice_id = _notice_name(request.parent, "parent")
        deliveries, token = await self.board.deliveries(
            require_principal(), tenant, notice_id, request.page_size, request.page_token
        )
        return pb.ListDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in deliveries], next_page_token=token
        )

    async def ListMyNotices(
        self, request: pb.ListMyNoticesRequest, context: object
    ) -> pb.ListMyNoticesResponse:
        found = await self.board.my_notices(require_principal(), request.page_size)
        return pb.ListMyNoticesResponse(deliveries=[delivery_to_proto(d, n) for d, n in found])

    async def MarkNoticeRead(
        self, request: pb.MarkNoticeReadRequest, context: object
    ) -> pb.Delivery:
        tenant, notice_id, delivery_id = parse_nested(request.name, "notices", "deliveries", "name")
        return delivery_to_proto(
            await self.board.mark_read(require_principal(), tenant, delivery_id, notice_id)
        )

    async def BindWeChat(self, request: pb.BindWeChatRequest, context: object) -> pb.WeChatBinding:
        bound = await self.board.bind_wechat(require_principal(), request.person, request.openid)
        return pb.WeChatBinding(person=request.person, bind_time=to_timestamp(bound))

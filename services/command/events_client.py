"""The events service as the command domain's EventsPort, over gRPC.

The command service moves events as itself (a service principal of the event's
tenant): a handler accepting a task may not hold `events:handle`, and the move is the
command component's decision. Every move sends the etag it read; a concurrent change
(ABORTED or FAILED_PRECONDITION on the etag) is read again and retried, never
overwritten.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC

import grpc

from grassroots.events.v1 import events_service_pb2 as pb
from grassroots.events.v1 import events_service_pb2_grpc as pb_grpc
from services.command.domain import event_sync
from services.command.domain.model import EventFacts, Position
from services.kit import tenancy
from services.kit.client import open_channel
from services.kit.errors import NotFound
from services.kit.principal import Principal
from services.kit.status import domain_error_from

log = logging.getLogger("grassroots.command.events")

SUBJECT = "services/command"
_SCOPES = frozenset({"events:read", "events:write", "events:handle", "events:manage"})
_RETRIES = 5
_STATE_NAMES: dict[int, str] = {
    value: name.removeprefix("STATE_").lower() for name, value in pb.Event.State.items()
}
_STATE_VALUES = {name: value for value, name in _STATE_NAMES.items()}
_RETRY_CODES = (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)


def facts_of(event: pb.Event) -> EventFacts:
    """What routing needs of an event message (as the bus and GetEvent carry it)."""
    tenant_id = event.name.split("/")[1]
    return EventFacts(
        event=event.name,
        tenant=event.village or tenancy.id_to_path(tenant_id),
        category=event.category,
        severity=event.severity or 2,
        grid_cell=event.grid_cell,
        location=Position(event.location.longitude, event.location.latitude),
        time=event.create_time.ToDatetime(tzinfo=UTC),
        grid_worker=event.grid_worker,
    )


def state_name(state: int) -> str:
    return _STATE_NAMES.get(state, "unspecified")


class EventsClient:
    def __init__(self, target: str, timeout: float) -> None:
        self.channel = open_channel(target, default_timeout=timeout)
        self.stub = pb_grpc.EventsServiceStub(self.channel)
        self._principals: dict[str, Principal] = {}

    def _as_service(self, tenant: str) -> tuple[tuple[str, bytes], ...]:
        found = self._principals.get(tenant)
        if found is None:
            if len(self._principals) > 10_000:
                self._principals.clear()
            found = self._principals[tenant] = Principal(SUBJECT, tenant, "service", scopes=_SCOPES)
        return tuple(found.to_metadata())

    @staticmethod
    def _tenant_of(event: str) -> str:
        return tenancy.id_to_path(event.split("/")[1])

    async def _get(self, event: str) -> pb.Event:
        try:
            return await self.stub.GetEvent(
                pb.GetEventRequest(name=event), metadata=self._as_service(self._tenant_of(event))
            )
        except grpc.aio.AioRpcError as exc:
            raise domain_error_from(exc, "events") from None

    async def facts(self, event: str) -> EventFacts:
        if not event.startswith("tenants/") or event.count("/") != 3:
            raise NotFound(f"event {event[:80]!r} not found")
        return facts_of(await self._get(event))

    async def move(self, event: str, target: str, note: str) -> None:
        """Walk the event to `target`; retried on concurrent changes (etag)."""
        metadata = self._as_service(self._tenant_of(event))
        for attempt in range(_RETRIES):
            current = await self._get(event)
            steps = event_sync.moves(state_name(current.state), target)
            if not steps:
                return
            etag = current.etag
            try:
                for step in steps:
                    moved = await self.stub.TransitionEvent(
                        pb.TransitionEventRequest(
                            name=event,
                            state=_STATE_VALUES[step],  # type: ignore[arg-type]
                            note=note,
                            etag=etag,
                        ),
                        metadata=metadata,
                    )
                    etag = moved.etag
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RETRY_CODES or attempt == _RETRIES - 1:
                    raise domain_error_from(exc, "events") from None
                log.info("event %s changed meanwhile; reading it again", event)
                await asyncio.sleep(0.05 * (attempt + 1))

    async def category_codes(self, tenant: str) -> list[str]:
        codes: list[str] = []
        token = ""
        metadata = self._as_service(tenant)
        while True:
            try:
                page = await self.stub.ListCategories(
                    pb.ListCategoriesRequest(
                        parent=tenancy.tenant_name(tenant), page_size=1000, page_token=token
                    ),
                    metadata=metadata,
                )
            except grpc.aio.AioRpcError as exc:
                raise domain_error_from(exc, "events") from None
            codes.extend(c.code for c in page.categories)
            token = page.next_page_token
            if not token:
                return codes

    async def close(self) -> None:
        await self.channel.close()

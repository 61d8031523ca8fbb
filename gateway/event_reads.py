"""Reads of one event that arrive together from one caller go to the events service as
one call (ADR 28's batching, for GET /v1/tenants/{tenant}/events/{event}).

Each read was its own GetEvent call, and per call the gateway and the events service
spent more CPU on gRPC (call objects, interceptors, metrics, a log line) than on
reading the event. Now reads for the same caller that arrive while a call for them is
in flight wait and go together in the next BatchGetEvents call. A lone read still goes
alone as GetEvent. A batch fails whole when one of its events is missing or hidden
from the caller; each of its reads is then sent again alone, so a read's error
(404 above all) is only ever its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway.coalescing import Coalescer
from grassroots.events.v1 import events_service_pb2 as pb

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass
class _Pending:
    name: str
    metadata: Metadata  # this request's own: its principal and request id
    future: asyncio.Future[pb.Event]


class EventReads(Coalescer[_Pending]):
    """Reads events through the events service, batching those that arrive together.

    `stub` is the gateway's grpc.aio EventsServiceStub (typed Any: the generated stubs
    are typed for the blocking API).
    """

    async def get(self, stub: Any, name: str, metadata: Metadata, caller: object) -> pb.Event:
        """The event named `name` as the caller may see it.

        `caller` tells callers apart (the signed principal's bytes): only one caller's
        reads share a call, since a call carries one principal.
        """
        future: asyncio.Future[pb.Event] = asyncio.get_running_loop().create_future()
        self._enqueue(stub, caller, _Pending(name, metadata, future))
        return await future

    async def _send(self, stub: Any, taken: list[_Pending]) -> None:
        if len(taken) == 1:
            await self._alone(stub, taken[0])
            return
        request = pb.BatchGetEventsRequest(names=[item.name for item in taken])
        response = await self._batch_answer(stub.BatchGetEvents, request, taken[0].metadata, taken)
        if response is None or len(response.events) != len(taken):
            await asyncio.gather(*(self._alone(stub, item) for item in taken))
            return
        for item, event in zip(taken, response.events, strict=True):
            if not item.future.done():
                item.future.set_result(event)

    @staticmethod
    async def _alone(stub: Any, item: _Pending) -> None:
        try:
            event = await stub.GetEvent(pb.GetEventRequest(name=item.name), metadata=item.metadata)
        except BaseException as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not item.future.done():
            item.future.set_result(event)

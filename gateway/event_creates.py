"""Reports that arrive together from one caller go to the events service as one call.

Each POST of a report was its own CreateEvent call, and per call the gateway and the
events service each spent more CPU on gRPC (call objects, interceptors, metrics, a log
line) than on the report itself. Now reports for the same caller and tenant that arrive
while a call for them is in flight wait and go together in the next BatchCreateEvents
call, which the events service stores in one transaction, as it stores a group of
concurrent single creates (ADR 7). A lone report still goes alone as CreateEvent, with
its own request id. When a batch fails (one report's place outside the tenant, a reused
key with another body), each of its reports is sent again alone, so a report's error is
only ever its own and the others are answered as if they had come alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway.coalescing import Coalescer
from grassroots.events.v1 import events_service_pb2 as pb

REPLAYED_KEY = "x-idempotent-replayed"
Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass
class _Pending:
    request: pb.CreateEventRequest
    metadata: Metadata  # this request's own: its principal and request id
    future: asyncio.Future[tuple[pb.Event, bool]]


class EventCreates(Coalescer[_Pending]):
    """Sends reports to the events service, batching those that arrive together.

    `stub` is the gateway's grpc.aio EventsServiceStub (typed Any: the generated stubs
    are typed for the blocking API).
    """

    async def create(
        self,
        stub: Any,
        request: pb.CreateEventRequest,
        metadata: Metadata,
        caller: object,
    ) -> tuple[pb.Event, bool]:
        """The stored event, and whether its key had been used before (a replay).

        `caller` tells callers apart (the signed principal's bytes): only one caller's
        reports share a call, since a call carries one principal.
        """
        future: asyncio.Future[tuple[pb.Event, bool]] = asyncio.get_running_loop().create_future()
        self._enqueue(stub, (caller, request.parent), _Pending(request, metadata, future))
        return await future

    async def _send(self, stub: Any, taken: list[_Pending]) -> None:
        if len(taken) == 1:
            await self._alone(stub, taken[0])
            return
        request = pb.BatchCreateEventsRequest(
            parent=taken[0].request.parent, requests=[item.request for item in taken]
        )
        response = await self._batch_answer(
            stub.BatchCreateEvents, request, taken[0].metadata, taken
        )
        if (
            response is None
            or len(response.events) != len(taken)
            or len(response.replayed) != len(taken)  # a service too old to say
        ):
            await asyncio.gather(*(self._alone(stub, item) for item in taken))
            return
        for item, event, replayed in zip(taken, response.events, response.replayed, strict=True):
            if not item.future.done():
                item.future.set_result((event, replayed))

    @staticmethod
    async def _alone(stub: Any, item: _Pending) -> None:
        try:
            rpc = stub.CreateEvent(item.request, metadata=item.metadata)
            event = await rpc
            trailing = await rpc.trailing_metadata()
        except BaseException as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        replayed = any(k == REPLAYED_KEY and v == "true" for k, v in trailing or ())
        if not item.future.done():
            item.future.set_result((event, replayed))

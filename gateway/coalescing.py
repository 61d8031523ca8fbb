"""Requests that arrive together for one upstream call go as one batch call.

Per gRPC call the gateway and the component each spend more CPU (call objects,
interceptors, metrics, a log line, a commit) than on a small request itself. A
`Coalescer` keeps what arrives for one key (one caller and tenant: a call carries one
principal) while a call for that key is in flight, and sends it together in the next
call; up to `in_flight` calls per key run at once. Subclasses say how a batch is sent
and how its answer is split (`_send`); each waiting request gets its own answer or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any, Generic, Protocol, TypeVar

import grpc


class Waiting(Protocol):
    """One request waiting to be sent: whoever sends it settles its future."""

    @property
    def future(self) -> asyncio.Future[Any]: ...


W = TypeVar("W", bound=Waiting)


class Coalescer(Generic[W]):
    def __init__(self, max_batch: int = 100, in_flight: int = 4) -> None:
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._waiting: dict[Hashable, list[W]] = {}
        self._senders: dict[Hashable, set[asyncio.Task[None]]] = {}
        self._starting: set[Hashable] = set()  # a sender is about to take

    def _enqueue(self, stub: Any, key: Hashable, item: W) -> None:
        """Queue `item` under `key`; start a sender unless enough run for that key."""
        self._waiting.setdefault(key, []).append(item)
        senders = self._senders.setdefault(key, set())
        if key not in self._starting and len(senders) < self.in_flight:
            self._starting.add(key)
            senders.add(asyncio.create_task(self._send_all(stub, key)))

    async def _send_all(self, stub: Any, key: Hashable) -> None:
        """Send what waits, a batch at a time, until nothing does; up to `in_flight`
        of these run for one key, so a batch need not wait for the one before."""
        await asyncio.sleep(0)  # let the requests that arrive in this turn join
        self._starting.discard(key)
        waiting = self._waiting[key]
        try:
            while waiting:
                taken = waiting[: self.max_batch]
                del waiting[: self.max_batch]
                await self._send(stub, taken)
        except BaseException as exc:  # cancelled: nobody waits in vain
            for item in waiting:
                if not item.future.done():
                    item.future.set_exception(exc)
            waiting.clear()
            raise
        finally:
            senders = self._senders[key]
            senders.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not senders:
                del self._senders[key]
                del self._waiting[key]

    async def _send(self, stub: Any, taken: list[W]) -> None:
        """Send `taken` (one call, or one each) and settle every future in it."""
        raise NotImplementedError

    @staticmethod
    async def _batch_answer(call: Any, request: Any, metadata: Any, taken: list[W]) -> Any:
        """The batch call's answer, or None when it failed and each must be sent alone.

        Anything but an RPC error (a cancellation) settles every future in `taken`.
        """
        try:
            return await call(request, metadata=metadata)
        except grpc.aio.AioRpcError:
            return None
        except BaseException as exc:
            for item in taken:
                if not item.future.done():
                    item.future.set_exception(exc)
            raise

"""Deadlines on reading a request, so slow clients cannot hold the gateway's connections.

uvicorn closes a connection idle between requests (keep-alive) but waits forever for
the rest of a request's headers or body: a client sending a byte now and then (slowloris)
held connections open past 35 s. This protocol adds the missing deadlines where the bytes
arrive, before any ASGI code runs:

* headers: from the connection (or the first byte of the next request on a kept-alive
  one) to the end of the headers;
* body: no byte for `body_idle_seconds`, or the whole body not in within
  `body_total_seconds`.

Either answers 408 and closes the connection (if the application has not answered yet;
otherwise it only closes). The count of open connections is bounded by uvicorn's own
`limit_concurrency` (503 beyond it), set next to these in `gateway.__main__`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.security.one_write import OneWriteProtocol

_TIMEOUT_BODY = b'{"error":{"code":408,"status":"REQUEST_TIMEOUT","message":"%s"}}'


@dataclass(frozen=True)
class ReadDeadlines:
    header_seconds: float
    body_idle_seconds: float
    body_total_seconds: float


class _DeadlineProtocol(HttpToolsProtocol):
    deadlines: ReadDeadlines  # set on the subclass `protocol_with` makes

    _header_timer: asyncio.TimerHandle | None = None
    _idle_timer: asyncio.TimerHandle | None = None
    _total_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_all()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_headers()

    def on_headers_complete(self) -> None:
        self._cancel("_header_timer")
        super().on_headers_complete()
        self._idle_timer = self.loop.call_later(
            self.deadlines.body_idle_seconds, self._idle_expired
        )
        self._total_timer = self.loop.call_later(
            self.deadlines.body_total_seconds, self._too_slow, "the request body took too long"
        )

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._cancel("_idle_timer")
        self._idle_timer = self.loop.call_later(
            self.deadlines.body_idle_seconds, self._idle_expired
        )

    def on_message_complete(self) -> None:
        self._cancel("_idle_timer")
        self._cancel("_total_timer")
        super().on_message_complete()

    def _arm_headers(self) -> None:
        self._header_timer = self.loop.call_later(
            self.deadlines.header_seconds, self._too_slow, "the request headers took too long"
        )

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self.flow is not None and self.flow.read_paused:
            # We stopped reading (the application is behind), not the client: wait on.
            self._idle_timer = self.loop.call_later(
                self.deadlines.body_idle_seconds, self._idle_expired
            )
            return
        self._too_slow("no byte of the request body arrived in time")

    def _too_slow(self, why: str) -> None:
        self._cancel_all()
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started
        if not answered:
            body = _TIMEOUT_BODY % why.encode("ascii")
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _cancel(self, name: str) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _cancel_all(self) -> None:
        for name in ("_header_timer", "_idle_timer", "_total_timer"):
            self._cancel(name)


def protocol_with(deadlines: ReadDeadlines) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with these read deadlines, sending each answer with
    one write (`gateway.security.one_write`); pass it as `http=`."""
    return type(
        "GatewayHttpProtocol", (_DeadlineProtocol, OneWriteProtocol), {"deadlines": deadlines}
    )

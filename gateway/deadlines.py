"""Which component let a request's call run out of time, for the 504's log line.

A component that does not answer within the gateway's deadline is a 504 for the caller;
the request middleware logs each one at WARNING with the route, the request id and the
components and RPCs that timed out, noted here by an interceptor on every channel.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import grpc

# Set per request by the middleware; the list is shared, so a call made in a task of its
# own (coalesced reads, the interceptor's) still notes into the request's.
TIMED_OUT: ContextVar[list[str] | None] = ContextVar("gateway_timed_out", default=None)


class NoteTimeouts(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, component: str) -> None:
        self.component = component

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        call = await continuation(client_call_details, request)
        noted = TIMED_OUT.get()
        if noted is None:
            return call
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                method = client_call_details.method
                if isinstance(method, bytes):
                    method = method.decode()
                noted.append(f"{self.component} {method}")
        return call  # the caller awaits it again: its answer or its error, as it was

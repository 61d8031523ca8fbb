"""Calls per component per tenant: how much each village uses the shelf.

Every gRPC call a route makes carries its caller's principal (`call_metadata`), which
notes the caller's tenant here; the channel to each component counts the call under
that component and tenant. The empower catalog reads the counter from /metrics for a
district's adoption view. Calls the gateway makes for itself (authenticating callers)
have no caller's tenant and are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import grpc
from prometheus_client import Counter

CALLER_TENANT: ContextVar[str] = ContextVar("gateway_caller_tenant", default="")
COMPONENT_CALLS = Counter(
    "gateway_component_calls",
    "gRPC calls the gateway made to each component, by the caller's tenant.",
    ["component", "tenant"],
)


def _count(component: str) -> None:
    tenant = CALLER_TENANT.get()
    if tenant:
        COMPONENT_CALLS.labels(component, tenant).inc()


class CountUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, component: str) -> None:
        self.component = component

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        _count(self.component)
        return await continuation(client_call_details, request)


class CountStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, component: str) -> None:
        self.component = component

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        _count(self.component)
        return await continuation(client_call_details, request)


def counters(component: str) -> list[grpc.aio.ClientInterceptor]:
    return [CountUnary(component), CountStream(component)]

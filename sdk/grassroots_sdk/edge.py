"""gRPC straight to the components, through the gateway's edge (ADR 13), with your key.

    from grassroots.map.v1 import map_service_pb2 as map_pb, map_service_pb2_grpc as map_grpc
    with edge_channel(api_key=KEY) as channel:
        layer = map_grpc.MapServiceStub(channel).GetLayer(
            map_pb.GetLayerRequest(name="tenants/sh-jiading-anting-xingming/layers/pois"),
            timeout=5)

The channel adds `x-api-key` (or `authorization: Bearer`) and a fresh `x-request-id` to
every call, so stubs are used as they are generated. Needs `grpcio` (the `grpc` extra)
and stubs generated from the platform's `proto/` (its `grassroots` package).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import grpc

DEFAULT_EDGE = "127.0.0.1:50050"
EDGE_VARIABLE = "GRASSROOTS_EDGE_ADDRESS"


class _Credentials(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        metadata = [
            (k, v) for k, v in (details.metadata or ()) if k not in ("x-api-key", "authorization")
        ]
        if not any(k == "x-request-id" for k, _ in metadata):
            metadata.append(("x-request-id", f"sdk-{uuid.uuid4().hex}"))
        return _Details(
            details.method,
            details.timeout,
            [*metadata, *self._metadata],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details), request)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: list[tuple[str, str]],
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata: Any = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def edge_channel(
    address: str | None = None,
    *,
    api_key: str | None = None,
    access_token: str | None = None,
) -> grpc.Channel:
    """A channel to the edge (`GRASSROOTS_EDGE_ADDRESS`, else 127.0.0.1:50050) that sends
    your key (`GRASSROOTS_API_KEY` when none is given) or access token with every call."""
    target = address or os.environ.get(EDGE_VARIABLE) or DEFAULT_EDGE
    if access_token:
        metadata = [("authorization", f"Bearer {access_token}")]
    else:
        key = api_key or os.environ.get("GRASSROOTS_API_KEY")
        if not key:
            raise ValueError("an API key or access token is needed for the edge")
        metadata = [("x-api-key", key)]
    return grpc.intercept_channel(grpc.insecure_channel(target), _Credentials(metadata))

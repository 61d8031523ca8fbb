"""Outbound gRPC: channels that always carry a deadline, the request id and a principal.

Every client call in the platform goes through `open_channel`, so no call can hang
forever on a peer that is down, and every hop carries the caller's identity and
the request id the gateway minted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from services.kit import context as ctx
from services.kit import discovery, metrics, tracing
from services.kit.principal import PRINCIPAL_METADATA_KEY

# Reconnect quickly after a peer restarts: the default backoff grows to two minutes,
# which would keep a recovered service looking dead.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # Spread calls over every address a target resolves to (replicas behind a headless
    # Service, or a static `ipv4:host:port,host:port` list) instead of pinning one.
    ("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}'),
    ("grpc.dns_min_time_between_resolutions_ms", 5000),
)


def _with_context(
    details: grpc.aio.ClientCallDetails, default_timeout: float
) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata()
    for key, value in details.metadata or ():
        metadata.add(key, value)
    keys = {key for key, _ in metadata}
    request_id = ctx.current_request_id()
    if request_id and ctx.REQUEST_ID_HEADER not in keys:
        metadata.add(ctx.REQUEST_ID_HEADER, request_id)
    principal = ctx.current_principal()
    if principal is not None and PRINCIPAL_METADATA_KEY not in keys:
        for key, value in principal.to_metadata():
            metadata.add(key, value)
    timeout = details.timeout if details.timeout is not None else default_timeout
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


def _method_name(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        details = _with_context(client_call_details, self.default_timeout)
        call = await continuation(details, request)
        try:
            code = await call.code()
        except Exception:  # the call was cancelled before it finished
            code = grpc.StatusCode.CANCELLED
        metrics.record_client_call(_method_name(details), code.name)
        return call


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, default_timeout: float | None) -> None:
        self.default_timeout = default_timeout

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        # Streams are long-lived: they get a deadline only when the caller sets one.
        details = _with_context(client_call_details, self.default_timeout)  # type: ignore[arg-type]
        return await continuation(details, request)


def open_channel(
    target: str,
    *,
    default_timeout: float = 5.0,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """An insecure channel to a peer inside the cluster, with the platform interceptors
    (and the caller's own, which run first). A `consul:///<component>` target follows
    Consul's view of the component's passing instances (services.kit.discovery)."""
    chain = [
        *interceptors,
        *tracing.client_interceptors(),
        _UnaryUnary(default_timeout),
        _UnaryStream(None),
    ]

    def make(resolved: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(resolved, options=CHANNEL_OPTIONS, interceptors=chain)

    if target.startswith(discovery.CONSUL_SCHEME):
        service = target.removeprefix(discovery.CONSUL_SCHEME)
        return discovery.DiscoveredChannel(discovery.directory().watch(service), make)
    return make(target)

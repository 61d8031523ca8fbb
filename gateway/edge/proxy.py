"""The generic proxy: admit the caller, then forward the call's raw bytes to its component.

Requests and responses are never decoded: the edge reads only metadata (credentials,
request id) and the deadline, so it costs the same for every method and needs no
change when a contract grows. The caller's own principal metadata is never passed
on; the component sees only the principal the edge signed for the admitted caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc

from gateway.auth import Guard
from gateway.edge.routes import Route
from gateway.errors import ApiError
from gateway.security.client_address import grpc_peer_host
from services.kit import context as ctx
from services.kit import errors, interceptors, metrics, status
from services.kit.principal import Principal

log = logging.getLogger("grassroots.edge")

API_KEY_METADATA = "x-api-key"
AUTHORIZATION_METADATA = "authorization"
RETRY_AFTER_METADATA = "retry-after"
SERVICE = "edge"

# The gateway's refusals, in HTTP terms, as the gRPC errors a developer's stub expects.
_REFUSALS: dict[int, type[errors.DomainError]] = {
    401: errors.Unauthenticated,
    403: errors.PermissionDenied,
    429: errors.ResourceExhausted,
    503: errors.Unavailable,
}

Metadata = Sequence[tuple[str, str | bytes]]


def credentials(metadata: Metadata) -> tuple[str | None, str | None]:
    """(bearer token, API key) from the call's metadata; either may be absent."""
    bearer = api_key = None
    for key, value in metadata:
        if not isinstance(value, str):
            continue
        if key == API_KEY_METADATA:
            api_key = value.strip()
        elif key == AUTHORIZATION_METADATA:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer, api_key


def _refusal(exc: ApiError) -> tuple[grpc.StatusCode, str, Metadata]:
    kind = _REFUSALS.get(exc.http_status, errors.DomainError)
    error = kind(exc.message, reason=exc.reason or None)
    trailing: list[tuple[str, str | bytes]] = []
    retry_after = exc.headers.get("Retry-After")
    if retry_after:
        error.metadata["retry_after_seconds"] = retry_after
        trailing.append((RETRY_AFTER_METADATA, retry_after))
    rich = status.to_rich_status(error, SERVICE)
    trailing.append((status.STATUS_DETAILS_KEY, rich.SerializeToString()))
    return status.grpc_code(error.code), rich.message, trailing


class EdgeProxy(grpc.GenericRpcHandler):
    """Serves every public route by forwarding it; unknown methods are UNIMPLEMENTED."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        guard: Guard,
        channels: Mapping[str, grpc.aio.Channel],
        call_timeout_seconds: float,
    ) -> None:
        self.routes = routes
        self.guard = guard
        self.call_timeout_seconds = call_timeout_seconds
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {
            method: channels[route.component].unary_unary(method)
            for method, route in routes.items()
            if not route.server_streaming
        }
        self._streams: dict[str, grpc.aio.UnaryStreamMultiCallable] = {
            method: channels[route.component].unary_stream(method)
            for method, route in routes.items()
            if route.server_streaming
        }
        # Built once: grpc asks for a method's handler on every call.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {
            method: grpc.unary_stream_rpc_method_handler(self._stream(route))
            if route.server_streaming
            else grpc.unary_unary_rpc_method_handler(self._unary_call(route))
            for method, route in routes.items()
        }

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(details.method)

    async def _admit(
        self, route: Route, context: grpc.aio.ServicerContext
    ) -> tuple[Principal, tuple[tuple[str, str | bytes], ...]]:
        """The signed principal and request id to forward, or the call is aborted."""
        metadata = tuple(context.invocation_metadata() or ())
        request_id = ctx.accept_request_id(
            next((str(v) for k, v in metadata if k == ctx.REQUEST_ID_HEADER), None)
        )
        ctx.request_id_var.set(request_id)
        bearer, api_key = credentials(metadata)
        try:
            source = grpc_peer_host(context.peer())
            principal = await self.guard.admit(bearer, api_key, (route.scope,), source)
        except ApiError as exc:
            code, message, trailing = _refusal(exc)
            _log(route, code, time.perf_counter(), None)
            await context.abort(
                code, message, trailing_metadata=(*trailing, (ctx.REQUEST_ID_HEADER, request_id))
            )
            raise AssertionError("unreachable") from None  # abort raises
        except errors.DomainError as exc:  # the identity service could not be asked
            rich = status.to_rich_status(exc, SERVICE)
            await context.abort(
                status.grpc_code(exc.code),
                rich.message,
                trailing_metadata=(
                    (status.STATUS_DETAILS_KEY, rich.SerializeToString()),
                    (ctx.REQUEST_ID_HEADER, request_id),
                ),
            )
            raise AssertionError("unreachable") from None
        return principal, (*principal.to_metadata(), (ctx.REQUEST_ID_HEADER, request_id))

    def _unary_call(self, route: Route) -> Callable[[bytes, Any], Awaitable[bytes]]:
        forward = self._unary[route.method]

        async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            started = time.perf_counter()
            principal, outbound = await self._admit(route, context)
            remaining = context.time_remaining()
            call = forward(
                request,
                timeout=self.call_timeout_seconds if remaining is None else remaining,
                metadata=outbound,
            )
            request_id = outbound[-1]
            try:
                response: bytes = await call
            except grpc.aio.AioRpcError as exc:
                _log(route, exc.code(), started, principal)
                await context.abort(
                    exc.code(),
                    exc.details() or "",
                    trailing_metadata=(*_pairs(exc.trailing_metadata()), request_id),
                )
                raise AssertionError("unreachable") from None
            context.set_trailing_metadata((*_pairs(await call.trailing_metadata()), request_id))
            _log(route, grpc.StatusCode.OK, started, principal)
            return response

        return unary

    def _stream(self, route: Route) -> Callable[[bytes, Any], AsyncIterator[bytes]]:
        forward = self._streams[route.method]

        async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            started = time.perf_counter()
            principal, outbound = await self._admit(route, context)
            # A stream lives as long as the caller wants: its deadline, or none.
            call = forward(request, timeout=context.time_remaining(), metadata=outbound)
            request_id = outbound[-1]
            code = grpc.StatusCode.OK
            try:
                async for item in call:
                    yield item
                context.set_trailing_metadata((*_pairs(await call.trailing_metadata()), request_id))
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                await context.abort(
                    exc.code(),
                    exc.details() or "",
                    trailing_metadata=(*_pairs(exc.trailing_metadata()), request_id),
                )
            finally:
                call.cancel()  # the caller went away: stop the component's stream too
                _log(route, code, started, principal)

        return stream


def _pairs(metadata: Any) -> tuple[tuple[str, str | bytes], ...]:
    return tuple((key, value) for key, value in (metadata or ()))


def _log(route: Route, code: grpc.StatusCode, started: float, principal: Principal | None) -> None:
    """One line per forwarded call, a WARNING for a unary call over the services' own
    SLOW_CALL_SECONDS (a stream lasts as long as its caller wants)."""
    seconds = time.perf_counter() - started
    metrics.record_server_call(route.method, code.name, seconds)
    slow = not route.server_streaming and seconds > interceptors.SLOW_CALL_SECONDS
    log.log(
        logging.WARNING if slow else logging.INFO,
        "rpc %s %s%s",
        route.method,
        code.name,
        f" slow: {seconds:.1f} s (over {interceptors.SLOW_CALL_SECONDS:g} s)" if slow else "",
        extra={
            "method": route.method,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "subject": principal.subject if principal else None,
        },
    )

"""The one server interceptor every service runs.

Per call it: adopts the request id (or mints one), reads and checks the principal
(UNAUTHENTICATED without one, except for health and reflection), turns domain
errors into rich status codes, hides unexpected exceptions behind INTERNAL, records
metrics and writes one access log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from services.kit import context as ctx
from services.kit import errors, limits, metrics, scopes, status
from services.kit.principal import PASSWORD_CHANGE_REQUIRED, Principal

log = logging.getLogger("grassroots.rpc")

# A unary call that takes longer than this is logged at WARNING, not INFO: the gateway
# gives up after 5 s (its deadline), and a call still running then holds the component's
# event loop or store for every tenant. Server streams (watches) last as long as their
# client, so only unary calls are held to it.
SLOW_CALL_SECONDS = 2.0

PUBLIC_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class _CallScope:
    """Everything done before and after one call, shared by unary and streaming paths."""

    def __init__(
        self,
        service: str,
        method: str,
        context: grpc.aio.ServicerContext,
        method_scopes: Mapping[str, str],
        *,
        streaming: bool = False,
    ) -> None:
        self.service = service
        self.streaming = streaming
        self.method = method
        self.context = context
        self.started = time.perf_counter()
        self.code = "OK"
        metadata = tuple(context.invocation_metadata() or ())
        self.request_id = ctx.accept_request_id(
            next((str(v) for k, v in metadata if k == ctx.REQUEST_ID_HEADER), None)
        )
        self.tokens: list[contextvars.Token[Any]] = [ctx.request_id_var.set(self.request_id)]
        self.principal: Principal | None = None
        if not method.startswith(PUBLIC_METHOD_PREFIXES):
            principal = Principal.from_metadata(metadata)
            _check_scope(method, principal, method_scopes)
            self.principal = principal
            self.tokens.append(ctx.principal_var.set(principal))

    async def fail(self, exc: BaseException) -> None:
        """Abort the call with the status that `exc` stands for."""
        if isinstance(exc, errors.DomainError):
            rich = status.to_rich_status(exc, self.service)
            code = status.grpc_code(exc.code)
            if exc.code is errors.Code.INTERNAL:
                log.error("domain error %s", exc.message, extra={"method": self.method})
        else:
            log.exception("unhandled error in %s", self.method)
            rich = status.internal_status(f"internal error (request id {self.request_id})")
            code = grpc.StatusCode.INTERNAL
        self.code = code.name
        await self.context.abort(
            code,
            rich.message,
            trailing_metadata=((status.STATUS_DETAILS_KEY, rich.SerializeToString()),),
        )

    def cancelled(self) -> None:
        """The call's task was cancelled: its deadline passed or its caller went away.
        Said so in the log and metrics instead of OK."""
        clock = getattr(self.context, "time_remaining", None)
        remaining = clock() if clock is not None else None
        self.code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"

    def finish(self) -> None:
        seconds = time.perf_counter() - self.started
        code = self.code
        context_code = self.context.code() if hasattr(self.context, "code") else None
        if code == "OK" and isinstance(context_code, grpc.StatusCode):
            code = context_code.name
        metrics.record_server_call(self.method, code, seconds)
        if not self.method.startswith(PUBLIC_METHOD_PREFIXES):
            slow = not self.streaming and seconds > SLOW_CALL_SECONDS
            log.log(
                logging.WARNING if slow else logging.INFO,
                "rpc %s %s%s",
                self.method,
                code,
                f" slow: {seconds:.1f} s (over {SLOW_CALL_SECONDS:g} s)" if slow else "",
                extra={
                    "method": self.method,
                    "code": code,
                    "duration_ms": round(seconds * 1000, 3),
                    "subject": self.principal.subject if self.principal else None,
                },
            )
        for token in reversed(self.tokens):
            # A server stream the client closed is finalised by the event loop in a task
            # of its own, another Context: the call's values went with the call's Context.
            with contextlib.suppress(ValueError):
                token.var.reset(token)


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises grpc's own exception after setting the status.
    return type(exc).__name__ == "AbortError"


def _check_scope(method: str, principal: Principal, method_scopes: Mapping[str, str]) -> None:
    """Refuse a call whose principal lacks the method's scope, or a method without one."""
    required = method_scopes.get(method)
    if required is None:
        raise errors.PermissionDenied(f"{method} declares no scope and is refused")
    if required and not principal.has_scope(required):
        raise errors.PermissionDenied(f"{method} needs the {required!r} scope")
    if principal.only_changes_password and not scopes.before_password_change(method):
        raise errors.PermissionDenied(
            "the password of this account must be changed first",
            reason=PASSWORD_CHANGE_REQUIRED,
        )


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Request id, principal, scopes, the contract's field limits, errors, metrics and
    access logs for every method."""

    def __init__(self, service: str, method_scopes: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.method_scopes: Mapping[str, str] = dict(method_scopes or {})

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client- and bidi-streaming methods are not used by the platform

    def _wrap_unary(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        service = self.service
        method_scopes = self.method_scopes

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                scope = _CallScope(service, method, context, method_scopes)
            except errors.DomainError as exc:
                metrics.record_server_call(method, exc.code.name, 0.0)
                rich = status.to_rich_status(exc, service)
                await context.abort(
                    status.grpc_code(exc.code),
                    rich.message,
                    trailing_metadata=((status.STATUS_DETAILS_KEY, rich.SerializeToString()),),
                )
                return None
            try:
                limits.check(request)
                return await behavior(request, context)
            except asyncio.CancelledError:
                scope.cancelled()
                raise
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await scope.fail(exc)
            finally:
                scope.finish()

        return unary

    def _wrap_stream(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        service = self.service
        method_scopes = self.method_scopes

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                scope = _CallScope(service, method, context, method_scopes, streaming=True)
            except errors.DomainError as exc:
                rich = status.to_rich_status(exc, service)
                await context.abort(
                    status.grpc_code(exc.code),
                    rich.message,
                    trailing_metadata=((status.STATUS_DETAILS_KEY, rich.SerializeToString()),),
                )
                return
            try:
                limits.check(request)
                result = behavior(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                elif inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                scope.cancelled()
                raise
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await scope.fail(exc)
            finally:
                scope.finish()

        return stream

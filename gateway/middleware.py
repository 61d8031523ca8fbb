"""ASGI middleware: request ids, body size limits, HTTP metrics.

Plain ASGI (not BaseHTTPMiddleware) so the request id set here is the one every
gRPC call made by the endpoint carries, and bodies are limited while streaming.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.deadlines import TIMED_OUT
from gateway.errors import ApiError
from services.kit import context as ctx
from services.kit.errors import FieldViolation

log = logging.getLogger("grassroots.gateway")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class _BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    """Adopt or mint X-Request-ID, echo it back, and count the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope.get("headers", []):
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
        request_id = ctx.accept_request_id(incoming)
        token = ctx.request_id_var.set(request_id)
        timed_out: list[str] = []
        noting = TIMED_OUT.set(timed_out)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = 1
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by the app's outermost handler, so the 500 still carries
            # the request id (body and header) a caller can quote to district IT.
            if status.get("sent"):
                raise  # the answer has begun: nothing better can be sent now
            log.exception("unhandled error")
            await ApiError(500, "internal error").response()(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], template, str(status["code"])).inc()
            HTTP_LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
            if status["code"] == 504:
                backend = ", ".join(dict.fromkeys(timed_out)) or "unknown"
                log.warning(
                    "504 %s %s: %s did not answer in time",
                    scope["method"],
                    template,
                    backend,
                    extra={"route": template, "backend": backend, "request_id": request_id},
                )
            TIMED_OUT.reset(noting)
            ctx.request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit with 413, by header or while reading the stream.

    File imports (paths ending in `:import`) and photo uploads (with or without an
    account) get the larger limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        # Photos are bounded again, by the contract's limit, where they are read.
        upload = path.endswith((":import", "/attachments", "events:attachAnonymously"))
        limit = self.upload_bytes if upload else self.default_bytes
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit or declared < 0:
                    await self._refuse(scope, receive, send, limit)
                    return
        received = 0
        started = {"sent": False}

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["sent"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started["sent"]:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"exceeds the limit of {limit} bytes"
        response = ApiError(
            413, f"body: {message}", violations=[FieldViolation("body", message)]
        ).response()
        await response(scope, receive, send)

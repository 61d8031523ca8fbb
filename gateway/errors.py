"""One error shape for every failure, and gRPC status mapped to HTTP by the canonical table.

Body: {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "...",
"reason": "...", "field_violations": [{"field": "location.latitude", "description": "..."}],
"request_id": "..."}}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.ngsi_ld.problems import NgsiLdError
from services.kit.context import current_request_id
from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.status import failure_of

log = logging.getLogger("grassroots.gateway")
NGSI_LD_PREFIX = "/ngsi-ld/"

T = TypeVar("T")

# google.rpc.Code -> HTTP, as in Google's API design guide (code.proto), except CANCELLED.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    # The gateway never cancels its own calls, so an upstream CANCELLED means the
    # component dropped the call (it was shutting down): retryable, like UNAVAILABLE.
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_STATUS_NAME = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ABORTED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Reasons whose HTTP answer is more specific than the canonical table's. A plan with an
# active level is a conflict with its current state, which standing it down resolves.
# A key sent again with another body is 422 wherever it is checked (ADR 3): the
# gateway's Idempotency-Key, an event's or a plan's request_id (IDEMPOTENCY_KEY_REUSED),
# a posting's, record's, notice's or consent's (REQUEST_ID_REUSED).
REASON_STATUS = {
    "IDEMPOTENCY_KEY_REUSED": 422,
    "REQUEST_ID_REUSED": 422,
    "EMERGENCY_LEVEL_ACTIVE": 409,
    "HANDLER_HAS_OPEN_TASKS": 409,
}


# What FastAPI raises for a JSON body it could not decode at all (not a JSON error).
BODY_UNREADABLE = "There was an error parsing the body"


class ApiError(Exception):
    """An error the gateway answers with, already in HTTP terms."""

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        status: str | None = None,
        reason: str = "",
        violations: list[FieldViolation] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.status = status or _STATUS_NAME.get(http_status, "UNKNOWN")
        self.reason = reason
        self.violations = violations or []
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "code": self.http_status,
            "status": self.status,
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.violations:
            body["field_violations"] = [
                {"field": v.field, "description": v.description} for v in self.violations
            ]
        request_id = current_request_id()
        if request_id:
            body["request_id"] = request_id
        return JSONResponse({"error": body}, status_code=self.http_status, headers=self.headers)


def from_rpc_error(exc: grpc.aio.AioRpcError, *, strip_prefix: str = "") -> ApiError:
    """Translate a component's failure; field paths lose the gRPC request's wrapper."""
    failure = failure_of(exc)
    violations = [
        FieldViolation(v.field.removeprefix(strip_prefix), v.description)
        for v in failure.violations
    ]
    http_status = REASON_STATUS.get(failure.reason, HTTP_STATUS.get(failure.code, 500))
    message = failure.message
    if failure.code == grpc.StatusCode.UNAVAILABLE and not failure.reason:
        message = "a component needed for this request is unavailable; retry shortly"
    elif failure.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = "a component did not answer in time"
    headers = {"Retry-After": "1"} if http_status == 503 else {}
    wait = failure.metadata.get("retry_after_seconds", "")
    if http_status == 429 and wait.isdigit():
        # A component's own limit (e.g. people lookups) says how long to wait.
        headers["Retry-After"] = wait
    return ApiError(
        http_status,
        message,
        status=failure.code.name,
        reason=failure.reason,
        violations=violations,
        headers=headers,
    )


async def call(awaitable: Awaitable[T], *, strip_prefix: str = "") -> T:
    """Await a gRPC call; its failure becomes an ApiError the handlers render."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, strip_prefix=strip_prefix) from None


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


# How pydantic names a union's branch in an error's location: a scalar type, a
# parametrised or constrained one (`list[int]`, `literal['a']`, `constrained-str`) or a
# model class. Names the caller never wrote, so they are cut from the field.
_UNION_BRANCH = re.compile(
    r"(?:constrained-)?(?:int|float|str|bool|bytes|none|date|datetime|time|timedelta"
    r"|decimal|uuid|url|list|dict|set|frozenset|tuple|json|any)"
    r"|[a-z]+(?:-[a-z]+)*\[.*\]|[A-Z][A-Za-z0-9_]*"
)


def _branch_at(loc: tuple[Any, ...], locs: list[tuple[Any, ...]]) -> int | None:
    """Where `loc` enters a branch of a union: the first step that names a type, beside
    another error's step naming another type under the same field; else None."""
    for i, step in enumerate(loc):
        if not (isinstance(step, str) and _UNION_BRANCH.fullmatch(step)):
            continue
        branches = {
            other[i]
            for other in locs
            if len(other) > i
            and other[:i] == loc[:i]
            and isinstance(other[i], str)
            and _UNION_BRANCH.fullmatch(other[i])
        }
        if len(branches) >= 2:
            return i
    return None


def _validation_violations(found: list[dict[str, Any]]) -> list[FieldViolation]:
    """One violation per field the caller wrote; a union's failed branches become one."""
    locs = [tuple(error["loc"]) for error in found if error.get("type") != "json_invalid"]
    violations: list[FieldViolation] = []
    unions: dict[str, list[str]] = {}
    for error in found:
        if error.get("type") == "json_invalid":
            violations.append(FieldViolation("body", "is not valid JSON"))
            continue
        loc = tuple(error["loc"])
        cut = _branch_at(loc, locs)
        if cut is None:
            violations.append(FieldViolation(_loc_to_field(loc), error["msg"]))
            continue
        field = _loc_to_field(loc[:cut])
        if field not in unions:
            unions[field] = []
            violations.append(FieldViolation(field, ""))
        if loc[cut] not in unions[field]:
            unions[field].append(str(loc[cut]))
    return [
        FieldViolation(v.field, f"must be one of: {', '.join(unions[v.field])}")
        if v.field in unions and not v.description
        else v
        for v in violations
    ]


def _shaped(request: Request, error: ApiError) -> JSONResponse:
    """The platform's error shape, or NGSI-LD's under /ngsi-ld/ (its clients parse that)."""
    if request.url.path.startswith(NGSI_LD_PREFIX):
        detail = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        return NgsiLdError(error.http_status, detail or error.message).response(error.headers)
    return error.response()


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _shaped(request, exc)

    @app.exception_handler(NgsiLdError)
    async def ngsi_ld_error(_: Request, exc: NgsiLdError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        violations = _validation_violations(list(exc.errors()))
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return _shaped(request, ApiError(400, message, violations=violations))

    @app.exception_handler(InvalidArgument)
    async def invalid_argument(request: Request, exc: InvalidArgument) -> JSONResponse:
        # The kit's parsers (times, tenant paths) raise the domain's error in the
        # gateway too: it is the caller's bad input, never an internal error.
        error = ApiError(400, exc.message, reason=exc.reason, violations=exc.violations)
        return _shaped(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == BODY_UNREADABLE:
            # FastAPI's answer to a body json cannot even start on (bytes that are not
            # UTF-8, nesting deeper than the parser's stack): the body is the field.
            why = "is not valid JSON in UTF-8"
            error = ApiError(400, f"body: {why}", violations=[FieldViolation("body", why)])
            return _shaped(request, error)
        return _shaped(
            request,
            ApiError(
                exc.status_code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None
            ),
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return ApiError(500, "internal error").response()

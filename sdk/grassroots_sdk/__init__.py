"""Grassroots SDK: a typed client for the gateway of the Grassroots platform.

`Client` (sync) and `AsyncClient` take an app key (`X-API-Key`) or a person's sign-in,
retry 429 and 503 as `Retry-After` says, send an Idempotency-Key with every create, page
through lists and resume server-sent event streams after `Last-Event-ID`. Failures are
`GrassrootsError`s carrying the HTTP status, the field at fault and the request id.
"""

__version__ = "0.1.0"

from grassroots_sdk import models, ops
from grassroots_sdk.aio import AsyncClient
from grassroots_sdk.auth import ApiKey, TokenSession
from grassroots_sdk.client import Client
from grassroots_sdk.errors import (
    AuthError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    FieldViolation,
    GrassrootsError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from grassroots_sdk.retry import NO_RETRY, Retry
from grassroots_sdk.sse import ServerSentEvent

__all__ = [
    "NO_RETRY",
    "ApiKey",
    "AsyncClient",
    "AuthError",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "FieldViolation",
    "GrassrootsError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Retry",
    "ServerError",
    "ServerSentEvent",
    "TokenSession",
    "Unauthenticated",
    "Unavailable",
    "Unprocessable",
    "__version__",
    "models",
    "ops",
]

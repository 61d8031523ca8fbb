"""The gateway's failures as exceptions that say what to fix and how to ask about it.

The gateway answers every failure in one JSON shape (`{"error": {"code", "status",
"message", "reason", "field_violations", "request_id"}}`), and the token endpoint in
OAuth's (`{"error": "invalid_grant", "error_description": ...}`). Both become a
`GrassrootsError` carrying the HTTP status, the field at fault and the request id, so a
program can branch on the class and a person can quote the request id to district IT.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class GrassrootsError(Exception):
    """A call the gateway refused or could not answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        reason: str = "",
        field_violations: tuple[FieldViolation, ...] = (),
        request_id: str = "",
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the HTTP status; 0 when no answer came
        self.code = code  # the canonical status name, e.g. INVALID_ARGUMENT
        self.reason = reason  # a stable machine-readable cause, e.g. ILLEGAL_TRANSITION
        self.field_violations = field_violations
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    @property
    def field(self) -> str | None:
        """The (first) field at fault, e.g. `location.latitude`, if the answer named one."""
        return self.field_violations[0].field if self.field_violations else None

    def __str__(self) -> str:
        head = f"{self.status} {self.code}".strip() if self.status else (self.code or "error")
        text = f"{head}: {self.message}"
        if self.field_violations:
            text += " (" + "; ".join(f"{v.field}: {v.description}" for v in self.field_violations)
            text += ")"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text


class BadRequest(GrassrootsError):
    """400: a field is wrong, or the move is not allowed in the resource's state."""


class AuthError(GrassrootsError):
    """The token endpoint refused: wrong password, used or revoked refresh token (OAuth)."""


class Unauthenticated(GrassrootsError):
    """401: no, expired, forged or revoked credentials."""


class PermissionDenied(GrassrootsError):
    """403: the key or role lacks the scope, or the domain forbids the move."""


class NotFound(GrassrootsError):
    """404: unknown, or outside your tenant subtree (the gateway does not say which)."""


class Conflict(GrassrootsError):
    """409: a concurrent change (etag) or a retry racing its original."""


class Unprocessable(GrassrootsError):
    """422: an idempotency key reused with another body, or no reading accepted."""


class RateLimited(GrassrootsError):
    """429: over your app's or tenant's quota; `retry_after` says when to come back."""


class Unavailable(GrassrootsError):
    """503 (or 502/504): a component is down or busy; retrying later is right."""


class ServerError(GrassrootsError):
    """500: a fault in the platform; quote the request id."""


class ConnectionFailed(GrassrootsError):
    """No answer: the gateway could not be reached or the connection broke."""


_BY_STATUS: dict[int, type[GrassrootsError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> GrassrootsError:
    """The exception for a non-2xx answer, from its body when it is the gateway's shape."""
    status = response.status_code
    request_id = response.headers.get("x-request-id", "")
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        violations = tuple(
            FieldViolation(str(v.get("field", "")), str(v.get("description", "")))
            for v in error.get("field_violations") or ()
            if isinstance(v, dict)
        )
        kind = _BY_STATUS.get(status, ServerError if status >= 500 else GrassrootsError)
        return kind(
            str(error.get("message") or response.reason_phrase),
            status=status,
            code=str(error.get("status", "")),
            reason=str(error.get("reason", "")),
            field_violations=violations,
            request_id=str(error.get("request_id") or request_id),
            retry_after=retry_after,
            body=body,
        )
    if isinstance(error, str):  # OAuth 2.0 (RFC 6749 section 5.2) from /v1/auth/token
        return AuthError(
            str(body.get("error_description") or error),
            status=status,
            code=error,
            reason=error,
            request_id=request_id,
            retry_after=retry_after,
            body=body,
        )
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else GrassrootsError)
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    return kind(
        text or response.reason_phrase or "no answer body",
        status=status,
        code=response.reason_phrase.upper().replace(" ", "_"),
        request_id=request_id,
        retry_after=retry_after,
        body=body,
    )

"""Per-call context (request id, principal) that follows a call across awaits and hops."""

from __future__ import annotations

import contextvars
import re
import uuid
from typing import TYPE_CHECKING

from services.kit.errors import Unauthenticated

if TYPE_CHECKING:
    from services.kit.principal import Principal

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Keep a caller's request id when it is well formed, otherwise mint one.

    A request id ends up in every log line, so it must not carry log-injection text.
    """
    if candidate and _REQUEST_ID_PATTERN.match(candidate):
        return candidate
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()


def current_principal() -> Principal | None:
    return principal_var.get()


def require_principal() -> Principal:
    """The call's principal; the interceptor sets one for every non-public method."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("the call carries no principal")
    return principal

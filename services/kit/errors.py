"""Domain errors that carry their wire mapping.

Domain code raises these; one server interceptor turns them into gRPC status codes
with `google.rpc.ErrorInfo` and, for bad input, `google.rpc.BadRequest` field
violations. Domain code never imports grpc.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ERROR_DOMAIN = "grassroots.dev"


class Code(Enum):
    """Canonical status codes (google.rpc.Code) used by the platform."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class FieldViolation:
    """One wrong field: its path (for example `event.location.latitude`) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a service reports on purpose."""

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})

    def __reduce__(self) -> tuple[object, ...]:
        """Picklable whatever a subclass's constructor takes: a map import decodes files
        in a worker process and its refusals come back across the process boundary."""
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(
    cls: type[DomainError], args: tuple[object, ...], state: dict[str, object]
) -> DomainError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidArgument(DomainError):
    """The request is malformed; `violations` name the fields at fault."""

    code = Code.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: list[FieldViolation] | FieldViolation,
        message: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        items = [violations] if isinstance(violations, FieldViolation) else list(violations)
        if not items:
            raise ValueError("InvalidArgument needs at least one field violation")
        text = message or "; ".join(f"{v.field}: {v.description}" for v in items)
        super().__init__(text, reason=reason)
        self.violations = items

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(FieldViolation(field, description))

    def under(self, prefix: str) -> InvalidArgument:
        """The same violations with field paths below `prefix`, e.g. `requests[3].`."""
        return InvalidArgument(
            [FieldViolation(prefix + v.field, v.description) for v in self.violations],
            reason=self.reason,
        )


class NotFound(DomainError):
    """The resource does not exist, or the caller may not know that it exists."""

    code = Code.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = Code.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = Code.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    code = Code.ABORTED
    reason = "ABORTED"


class PermissionDenied(DomainError):
    code = Code.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = Code.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class Unavailable(DomainError):
    """A dependency cannot be reached; the caller may retry."""

    code = Code.UNAVAILABLE
    reason = "UNAVAILABLE"


class Unimplemented(DomainError):
    code = Code.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


class ResourceExhausted(DomainError):
    code = Code.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"

"""Between domain errors and gRPC rich status (google.rpc.Status with details).

Servers turn a `DomainError` into a status with `ErrorInfo` and, for bad input,
`BadRequest` field violations; clients read those details back, so a field named
by a service three hops away still reaches the resident's screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.kit import errors

STATUS_DETAILS_KEY = "grpc-status-details-bin"

_GRPC_CODES = {c.value[0]: c for c in grpc.StatusCode}


def grpc_code(code: errors.Code) -> grpc.StatusCode:
    return _GRPC_CODES[code.value]


def to_rich_status(error: errors.DomainError, service: str) -> status_pb2.Status:
    status = status_pb2.Status(code=error.code.value, message=error.message)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=errors.ERROR_DOMAIN, metadata={"service": service}
    )
    info.metadata.update(error.metadata)
    status.details.add().Pack(info)
    if isinstance(error, errors.InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        status.details.add().Pack(bad)
    return status


def internal_status(message: str = "internal error") -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message)


@dataclass
class RpcFailure:
    """What a client learns from a failed call, transport-neutral."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    violations: list[errors.FieldViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def read_failure(
    code: grpc.StatusCode, details: str | None, trailing: Iterable[tuple[str, str | bytes]] | None
) -> RpcFailure:
    failure = RpcFailure(code=code, message=details or code.name)
    for key, value in trailing or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value if isinstance(value, bytes) else value.encode())
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                failure.reason = info.reason
                failure.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                failure.violations = [
                    errors.FieldViolation(v.field, v.description) for v in bad.field_violations
                ]
    return failure


def failure_of(exc: grpc.aio.AioRpcError) -> RpcFailure:
    return read_failure(exc.code(), exc.details(), exc.trailing_metadata())


def domain_error_from(exc: grpc.aio.AioRpcError, peer: str) -> errors.DomainError:
    """Re-raise a peer's failure as our own domain error, keeping fields and reason.

    A peer that is down or too slow becomes UNAVAILABLE: the caller may retry, and
    the gateway answers 503 at once instead of hanging.
    """
    failure = failure_of(exc)
    code = failure.code
    if code == grpc.StatusCode.INVALID_ARGUMENT and failure.violations:
        return errors.InvalidArgument(failure.violations, failure.message, reason=failure.reason)
    simple: dict[grpc.StatusCode, type[errors.DomainError]] = {
        grpc.StatusCode.INVALID_ARGUMENT: errors.FailedPrecondition,
        grpc.StatusCode.NOT_FOUND: errors.NotFound,
        grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
        grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
        grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
        grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
        grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
        grpc.StatusCode.ABORTED: errors.Aborted,
    }
    if code in simple:
        return simple[code](f"{peer}: {failure.message}", reason=failure.reason or None)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.Unavailable(
            f"the {peer} service is unavailable ({code.name.lower()})",
            metadata={"peer": peer},
        )
    return errors.DomainError(f"the {peer} service failed ({code.name})")

"""Times at the edges: `google.protobuf.Timestamp` for gRPC adapters, and the one
parser of the RFC 3339 times callers send in filters and query parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.errors import InvalidArgument


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    """The moment as a Timestamp; None (an unset field) for no moment."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# Moments a request may name. Far wider than any report's lifetime, yet far enough
# inside datetime's years 1-9999 that a bound plus a window (90 days, a microsecond)
# never overflows: `9999-12-31` would otherwise be a 500, not a 400.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_OUTSIDE = timedelta(days=1)


def parse_time(text: str, field: str, *, what: str = "time") -> datetime:
    """An RFC 3339 time with a zone, in UTC; anything else is INVALID_ARGUMENT on `field`."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument.field(
            field, f"{what} needs an RFC 3339 time such as 2026-01-31T08:00:00Z, not {text[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        raise InvalidArgument.field(field, f"{what} needs a time zone: Z or an offset")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past datetime's range
        moment = EARLIEST - _OUTSIDE if moment.year < EARLIEST.year else LATEST + _OUTSIDE
    if not EARLIEST <= moment <= LATEST:
        raise InvalidArgument.field(
            field, f"{what} must lie between the years {EARLIEST.year} and {LATEST.year}"
        )
    return moment
